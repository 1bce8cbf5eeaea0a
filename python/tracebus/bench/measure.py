"""Measuring a case: every contender round-robin, deliveries checked, ratios."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .framework import Case, Result, Trial, _available


def measure_case(
    case: Case, *, quick: bool = False, repeats: int = 5, log: Callable[[str], object] | None = None
) -> dict[str, Result]:
    """Runs every available contender of ``case`` round-robin ``repeats`` times (after one
    warm-up run each) and returns their results, tracebus first. A case that registers
    custom event types (``case.isolated``) runs in a child process, so that its types never
    stay in the caller's registry (see ``isolation``)."""
    n = case.n_quick if (quick and case.n_quick) else (case.n // 4 if quick else case.n)
    if case.isolated:
        from .isolation import known_case, measure_in_child

        if known_case(case):
            return measure_in_child(case, n, repeats, log)
    return _measure(case, n, repeats, log)


def _measure(
    case: Case, n: int, repeats: int, log: Callable[[str], object] | None
) -> dict[str, Result]:
    """``measure_case`` in this process, with ``n`` operations."""
    results: dict[str, Result] = {}
    trials: dict[str, Trial] = {}
    shared = case.prepare(n)
    try:
        for c in case.contenders:
            res = results[c.name] = Result(c.name, c.kind)
            if not _available(c.requires):
                res.error = f"{c.requires} not installed"
                continue
            try:
                trials[c.name] = t = c.setup(shared, max(n // c.n_div, 1))
                res.ops = t.ops
                _verified(t, t.run())  # warm-up
            except Exception as exc:
                res.error = f"{type(exc).__name__}: {exc}"
                trials.pop(c.name, None)
        for r in range(repeats):
            for name, t in list(trials.items()):
                gc.collect()
                t0 = time.perf_counter_ns()
                out = t.run()
                dt = time.perf_counter_ns() - t0
                try:
                    _verified(t, out)
                except AssertionError as exc:
                    results[name].error = str(exc)
                    trials.pop(name)
                    continue
                results[name].runs.append(t.ops * 1e9 / max(dt, 1))
            if log is not None:
                log(f"  {case.key}: repeat {r + 1}/{repeats}")
        for name, t in trials.items():
            results[name].extra = t.extra()
    finally:
        for t in trials.values():
            try:
                t.close()
            except Exception:
                pass
        trials.clear()
        del shared
        gc.collect()
    return results


def _verified(t: Trial, out: Any) -> None:
    got = t.check(out)
    if got != t.expected:
        raise AssertionError(f"delivery check failed: observed {got}, expected {t.expected}")


@dataclass
class _Row:
    case: Case
    results: dict[str, Result]
    best_peer: str | None
    ratio: float | None
    goals: list[tuple[str, float | None, bool]]


def ratio(a: Result | None, b: Result | None) -> float | None:
    """``a`` over ``b``: the median of the per-repeat ratios (runs of one repeat are taken
    back to back, so load changes on a shared machine cancel out), or the ratio of the
    medians when the run counts differ."""
    if a is None or b is None or a.ops_per_s is None or b.ops_per_s is None:
        return None
    if len(a.runs) == len(b.runs):
        return statistics.median(x / y for x, y in zip(a.runs, b.runs, strict=True))
    return a.ops_per_s / b.ops_per_s


def _evaluate(case: Case, results: dict[str, Result]) -> _Row:
    tb = results.get("tracebus")
    tb_rate = tb.ops_per_s if tb else None
    peers = [r for r in results.values() if r.kind == "peer" and r.ops_per_s is not None]
    best = max(peers, key=lambda r: r.ops_per_s or 0.0, default=None)
    goals: list[tuple[str, float | None, bool]] = []
    for g in case.goals:
        if g.ref is not None:
            value = ratio(tb, results.get(g.ref))
        else:
            value = tb_rate
        goals.append((g.describe(), value, value is not None and value >= g.minimum))
    return _Row(case, results, best.name if best else None, ratio(tb, best), goals)
