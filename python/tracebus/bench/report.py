"""The bench's output: the table and the JSON."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from .framework import Result, _fmt_rate
from .measure import _Row, ratio


def _goal_text(desc: str, value: float | None, absolute: bool) -> str:
    if value is None:
        return f"{desc}: n/a"
    return f"{desc}: {_fmt_rate(value) + '/s' if absolute else f'{value:.3f}x'}"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("tracebus", "pyee", "blinker", "aiopubsub", "reactivex"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def _spread(r: Result) -> str:
    """Half the range of the runs, in percent of the median (how noisy the machine was)."""
    med = r.ops_per_s
    if med is None or len(r.runs) < 2:
        return ""
    return f"±{50 * (max(r.runs) - min(r.runs)) / med:.0f}%"


def _print_table(rows: list[_Row], machine: dict[str, Any], argv: list[str], out: Any) -> None:
    w = out.write
    vers = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    w(f"tracebus bench {' '.join(argv)}\n")
    w(f"{machine['date']}; {machine['python']}; {machine['cpu']} x{machine['cpus']}; {vers}\n")
    w(
        "ops/s: median of the runs (± half their range); tracebus/x: median over the repeats "
        "of tracebus ops/s / x ops/s (runs of a repeat are back to back); on the tracebus line "
        "x is the best peer\n\n"
    )
    hdr = (
        f"{'case':<46} {'contender':<22} {'ops/s':>9} {'':>5} {'tracebus/x':>10}  "
        f"{'goal':<36} met?\n"
    )
    w(hdr)
    w("-" * (len(hdr) + 2) + "\n")
    for row in rows:
        tb = row.results.get("tracebus")
        order = sorted(
            row.results.values(), key=lambda r: (r.kind != "tracebus", -(r.ops_per_s or 0.0))
        )
        goals = [
            (_goal_text(d, v, g.ref is None), "yes" if ok else "NO")
            for g, (d, v, ok) in zip(row.case.goals, row.goals, strict=True)
        ]
        lines = max(len(order), len(goals))
        for k in range(lines):
            title = row.case.title if k == 0 else ""
            goal, met = goals[k] if k < len(goals) else ("", "")
            if k >= len(order):
                w(f"{'':<46} {'':<22} {'':>9} {'':>5} {'':>10}  {goal:<36} {met}\n")
                continue
            r = order[k]
            if r.kind == "tracebus":
                rel = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
            else:
                x = ratio(tb, r)
                rel = f"{x:.2f}x" if x is not None else "-"
            name = r.name + (" (floor)" if r.kind == "floor" and "floor" not in r.name else "")
            rate = _fmt_rate(r.ops_per_s) if r.error is None else "error"
            w(f"{title:<46} {name:<22} {rate:>9} {_spread(r):>5} {rel:>10}  {goal:<36} {met}\n")
            if r.error is not None:
                w(f"{'':<46}   {r.error}\n")
        notes = [f"best peer: {row.best_peer}"] if row.best_peer else []
        for r in order:
            if r.extra and "p50_latency_us" in r.extra:
                p50, p99 = r.extra["p50_latency_us"], r.extra["p99_latency_us"]
                notes.append(f"{r.name}: end-to-end latency p50 {p50:.1f} us, p99 {p99:.1f} us")
        if row.case.note:
            notes.append(row.case.note)
        for e in notes:
            w(f"{'':<4}{e}\n")
        w("\n")
    missed = [
        f"{row.case.key}: {_goal_text(d, v, g.ref is None)}"
        for row in rows
        for g, (d, v, ok) in zip(row.case.goals, row.goals, strict=True)
        if not ok
    ]
    n_met = sum(1 for row in rows for _, _, ok in row.goals if ok)
    total = sum(len(row.goals) for row in rows)
    w(f"goals met: {n_met}/{total}" + (f"; missed: {'; '.join(missed)}" if missed else "") + "\n")


def _json(rows: list[_Row], machine: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    return {
        "argv": argv,
        "machine": machine,
        "cases": [
            {
                "key": row.case.key,
                "title": row.case.title,
                "unit": row.case.unit,
                "note": row.case.note,
                "results": {
                    name: {
                        "kind": r.kind,
                        "ops": r.ops,
                        "ops_per_s": r.ops_per_s,
                        "runs": r.runs,
                        "extra": r.extra,
                        "error": r.error,
                    }
                    for name, r in row.results.items()
                },
                "best_peer": row.best_peer,
                "ratio_vs_best_peer": row.ratio,
                "goals": [{"goal": d, "value": v, "met": m} for d, v, m in row.goals],
            }
            for row in rows
        ],
    }
