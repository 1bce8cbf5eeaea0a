"""The bench leaves the process-global event type registry as it found it: the cases that
register custom types ((c), (c') and (l)) run in a child process."""

from __future__ import annotations

import dataclasses

from tracebus import registered_event_types
from tracebus.bench import CASES, measure_case


def test_cases_with_custom_types_leave_the_registry_unchanged() -> None:
    before = registered_event_types()
    isolated = [c for c in CASES if c.isolated]
    assert {c.key for c in isolated} == {"c", "c'", "l"}
    lines: list[str] = []
    for case in isolated:
        tiny = dataclasses.replace(case, n=400, n_quick=400)
        results = measure_case(tiny, quick=True, repeats=1, log=lines.append)
        tb = results["tracebus"]
        assert tb.error is None and len(tb.runs) == 1 and tb.ops == 400
        # Every contender ran, except peers whose package is not installed.
        assert all(r.error is None or r.error.endswith(" not installed") for r in results.values())
    assert len(registered_event_types()) == len(before)
    assert registered_event_types() == before
    assert not any(str(t).startswith("bench.") for t in registered_event_types())
    assert lines == [
        "  c: repeat 1/1",
        "  c': repeat 1/1",
        "  l: repeat 1/1",
    ]  # the child's log, relayed
