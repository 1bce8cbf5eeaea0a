"""Issue 13: a replay's filter is pushed into the query (type, severity, correlation), so
only matching rows are read and decoded; the filter stays the exact check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import tracebus as tb
from tracebus import Event, SqliteEventStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteEventStore:
    s = SqliteEventStore(tmp_path / "p.db")
    sev = ["debug", "info", "warn", "error"]
    for i in range(40):
        t = ["health.check", "system.error", "user.action", "config.change"][i % 4]
        s.append(
            Event(
                t,
                f"src-{i % 3}",
                severity=sev[i % 4 if i % 5 else 0],
                correlation_id=f"job-{i % 2}",
            )
        )
    yield s
    s.close()


FILTERS = [
    tb.filter_by_type("system.error"),
    tb.filter_by_type("system.error", "user.action") & tb.filter_by_severity("WARN"),
    tb.filter_by_type("system.error") & tb.filter_by_type("user.action"),
    tb.filter_by_type("health.check") | tb.filter_by_source("src-1"),
    ~tb.filter_by_type("health.check"),
    tb.filter_by_correlation("job-1") & tb.filter_by_source("src-2"),
    tb.filter_by_severity("warning") & tb.filter_by(lambda e: e.source != "src-0"),
]


@pytest.mark.parametrize("flt", FILTERS, ids=repr)
def test_pushdown_gives_what_the_filter_gives(store: SqliteEventStore, flt: tb.Filter) -> None:
    want = [e.event_id for e in store.replay() if flt.matches(e)]
    assert [e.event_id for e in store.replay(filter=flt)] == want
    assert [r.event.event_id for r in store.records(0, flt)] == want
    got = [r.event.event_id for r in store.records(0, flt, correlation_id="job-0")]
    assert got == [
        e.event_id for e in store.replay() if flt.matches(e) and e.correlation_id == "job-0"
    ]


def test_pushdown_parts() -> None:
    f = tb.filter_by_type("system.error", "user.action") & tb.filter_by_severity("warn")
    assert f._pushdown == {"types": ["system.error", "user.action"], "min_severity": "warn"}
    assert (tb.filter_by_type("user.action") | tb.filter_by_source("x"))._pushdown == {}
    assert tb.filter_by_correlation("c")._pushdown == {"correlation_id": "c"}


def test_only_matching_rows_are_read(tmp_path: Path) -> None:
    """A damaged row of another type is never decoded by a selective replay (a full replay
    filtered in Python would fail on it)."""
    path = tmp_path / "d.db"
    with SqliteEventStore(path) as s:
        s.append(Event("health.check", "a"))
        s.append(Event("system.error", "b", severity="error"))
        s.append(Event("health.check", "c"))
    with sqlite3.connect(path) as c:
        c.execute("UPDATE events SET data = '{broken' WHERE type = 'health.check' AND seq = 1")
    with SqliteEventStore(path) as s:
        with pytest.raises(tb.EventStoreError, match="cannot decode"):
            list(s.replay(on_error="raise"))
        assert [e.source for e in s.replay(filter=tb.filter_by_type("system.error"))] == ["b"]
        assert [e.source for e in s.replay(filter=tb.filter_by_severity("error"))] == ["b"]
