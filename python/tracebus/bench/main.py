"""``tracebus bench``'s arguments and run."""

from __future__ import annotations

import argparse
import json
import sys

from .cases import _BY_KEY, CASES
from .measure import _evaluate, _Row, measure_case
from .report import _json, _machine, _print_table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tracebus bench",
        description="Benchmarks tracebus against its Python peers, all in one process.",
    )
    p.add_argument("--quick", action="store_true", help="smaller inputs and 3 repeats (about 30 s)")
    p.add_argument(
        "--cases",
        default=None,
        help="comma-separated case keys (default: all): " + ",".join(c.key for c in CASES),
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per contender (default 5, quick 3)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--verbose", action="store_true", help="report progress on stderr")
    return p


def run(argv: list[str]) -> int:
    """Runs the benchmark cases named by ``argv`` (see ``tracebus bench --help``) and prints
    the table (or JSON). Returns 0, or 2 when a case could not run or a delivery check
    failed (a missed goal is reported in the table, not as a failure)."""
    args = _parser().parse_args(argv)
    if args.list:
        for c in CASES:
            sys.stdout.write(f"{c.key:<6} {c.title}\n")
        return 0
    if args.cases:
        keys = [k.strip() for k in args.cases.split(",") if k.strip()]
        unknown = [k for k in keys if k not in _BY_KEY]
        if unknown:
            sys.stderr.write(
                f"unknown case(s): {', '.join(unknown)}; known: {', '.join(_BY_KEY)}\n"
            )
            return 2
    else:
        keys = [c.key for c in CASES]
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        sys.stderr.write("--repeats must be at least 1\n")
        return 2
    log = (lambda s: sys.stderr.write(s + "\n")) if args.verbose else None
    rows: list[_Row] = []
    failed = False
    for key in keys:
        case = _BY_KEY[key]
        if log:
            log(f"{case.title} ...")
        results = measure_case(case, quick=args.quick, repeats=repeats, log=log)
        failed |= any(
            r.error is not None and "not installed" not in r.error for r in results.values()
        )
        rows.append(_evaluate(case, results))
    machine = _machine()
    if args.json:
        json.dump(_json(rows, machine, argv), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(rows, machine, argv, sys.stdout)
    sys.stdout.flush()
    return 2 if failed else 0
