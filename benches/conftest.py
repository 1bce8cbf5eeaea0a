"""pytest-benchmark suite: tracebus against its Python peers, side by side in one process.

Run it (from the repository root, after ``pip install .[bench]``) with exactly::

    python -m pytest benches --benchmark-only

Add ``--bench-quick`` for smaller inputs and 3 rounds. It is not part of the normal test run
(``testpaths = ["tests"]``). The same cases, with the ratio table and the goals of issue 4,
run as ``tracebus bench`` (``tracebus.bench.run``); ``cargo bench`` measures the Rust core.

Each test sets up one contender for one case, times ``Trial.run`` (one round = ``ops``
operations) and checks the deliveries of every round, so no contender can be fast by skipping
work. Slow peers run fewer operations per round (``Contender.n_div``), so the benchmark's timer
is divided by the round's operation count: the tables show **time per operation** and the
``OPS`` column is operations (events, updates, store ops) per second, comparable across
contenders of a group. ``extra_info`` has the case, contender, ``ops`` per round and latency
percentiles where measured (case g).
"""

from __future__ import annotations

import gc
import importlib
import time
from typing import Any

import pytest

from tracebus.bench import Case, Contender


class _PerOp:
    """``perf_counter() / ops``: makes pytest-benchmark report seconds per operation."""

    __name__ = "perf_counter_per_op"

    def __init__(self, ops: int) -> None:
        self.ops = ops

    def __call__(self) -> float:
        return time.perf_counter() / self.ops

    def __repr__(self) -> str:
        return f"perf_counter()/{self.ops}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        default=False,
        help="tracebus benches: a quarter of the inputs and 3 rounds",
    )


@pytest.fixture(scope="session")
def bench_quick(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--bench-quick"))


@pytest.fixture(scope="session")
def _inputs() -> dict[str, Any]:
    """Prepared inputs, one per case, shared by all its contenders."""
    return {}


@pytest.fixture
def run_case(benchmark: Any, bench_quick: bool, _inputs: dict[str, Any]) -> Any:
    """``run_case(case, contender)``: benchmarks one contender of one case."""

    def go(case: Case, contender: Contender) -> None:
        if contender.requires is not None:
            try:
                importlib.import_module(contender.requires)
            except ImportError:
                pytest.skip(f"{contender.requires} is not installed")
        n = case.n // 4 if bench_quick else case.n
        if case.key not in _inputs:
            _inputs.clear()  # one case's input at a time keeps memory flat
            _inputs[case.key] = case.prepare(n)
        trial = contender.setup(_inputs[case.key], max(n // contender.n_div, 1))
        last: list[Any] = []
        observed: list[int] = []

        def timed() -> None:
            last.append(trial.run())

        def collect() -> None:  # untimed, before every round
            gc.collect()

        def check() -> None:  # untimed, after every round; drops the round's output
            observed.append(trial.check(last.pop()))

        try:
            benchmark.group = case.title
            benchmark._timer = _PerOp(trial.ops)  # no public hook for per-operation time
            benchmark.pedantic(
                timed,
                setup=collect,
                teardown=check,
                rounds=3 if bench_quick else 5,
                warmup_rounds=1,
                iterations=1,
            )
            assert observed and all(o == trial.expected for o in observed), (
                f"delivery check failed: observed {observed}, expected {trial.expected} per round"
            )
        finally:
            trial.close()
        benchmark.extra_info.update(
            case=case.key,
            contender=contender.name,
            kind=contender.kind,
            unit=case.unit,
            ops=trial.ops,
            **trial.extra(),
        )

    return go
