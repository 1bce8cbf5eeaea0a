"""The bench's building blocks: cases, contenders, trials, goals, results, and the counting
handlers every contender's deliveries are checked with."""

from __future__ import annotations

import importlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trial:
    """One contender set up for one case: ``run()`` is the timed part (``ops`` operations);
    ``check(run())`` (untimed) returns the deliveries observed, which must equal
    ``expected``."""

    ops: int
    expected: int
    run: Callable[[], Any]
    check: Callable[[Any], int] = int
    close: Callable[[], object] = lambda: None
    extra: Callable[[], dict[str, float]] = dict


@dataclass(frozen=True)
class Contender:
    """A way of doing a case's job. ``setup(shared, n)`` builds a ``Trial`` of ``n``
    operations; slow peers run ``n // n_div`` operations (ops/s is per operation anyway)."""

    name: str
    setup: Callable[[Any, int], Trial]
    kind: str = "peer"  # "tracebus", "peer", "floor" or "reference" (tracebus, other setup)
    requires: str | None = None
    n_div: int = 1


@dataclass(frozen=True)
class Goal:
    """``tracebus ops/s >= minimum x reference``: the reference is a contender of the same
    case (measured side by side), or 1 op/s for an absolute goal."""

    minimum: float
    ref: str | None = None

    def describe(self) -> str:
        if self.ref is not None:
            return f">= {self.minimum:g}x {self.ref}"
        return f">= {_fmt_rate(self.minimum)}/s"


@dataclass(frozen=True)
class Case:
    """A benchmark case: ``prepare(n)`` builds the input shared by all contenders.
    ``isolated``: ``prepare`` registers custom event types, so ``measure_case`` runs the
    case in a child process (the registry is process-global and never shrinks)."""

    key: str
    title: str
    unit: str
    n: int
    prepare: Callable[[int], Any]
    contenders: tuple[Contender, ...]
    goals: tuple[Goal, ...]
    n_quick: int | None = None
    note: str = ""
    isolated: bool = False


@dataclass
class Result:
    """Measured throughput of one contender in one case (median of the runs)."""

    name: str
    kind: str
    ops: int = 0
    runs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ops_per_s(self) -> float | None:
        return statistics.median(self.runs) if self.runs and self.error is None else None


class _Count:
    """A delivery counter shared by the counting handlers of one trial."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def _handler(c: _Count) -> Callable[[Any], None]:
    """A fresh counting handler (distinct object each call: some peers key by handler)."""

    def handler(_event: Any) -> None:
        c.n += 1

    return handler


def _handler2(c: _Count) -> Callable[[Any, Any], None]:
    """A counting handler with aiopubsub's (key, message) signature."""

    def handler(_key: Any, _message: Any) -> None:
        c.n += 1

    return handler


def _ahandler(c: _Count) -> Callable[[Any], Any]:
    async def handler(_event: Any) -> None:
        c.n += 1

    return handler


def _ahandler2(c: _Count) -> Callable[[Any, Any], Any]:
    async def handler(_key: Any, _message: Any) -> None:
        c.n += 1

    return handler


def _mod(name: str) -> Any:
    return importlib.import_module(name)


def _available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        _mod(module)
    except ImportError:
        return False
    return True


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"
