"""Issue 13: a replay's filter is pushed into the query (type, severity, source through the
events_bucket index, correlation through its own), so only matching rows are read and
decoded; the filter checks them unless the query is exact."""

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
    tb.filter_by_source("src-1"),
    tb.filter_by_source("src-1", "src-2") & tb.filter_by_type("user.action", "system.error"),
    tb.filter_by_source("src-0") & tb.filter_by_severity("warn"),
    tb.filter_by_type(*(["health.check", "system.error", "user.action", "config.change"]))
    & tb.filter_by_source("src-2"),
    tb.filter_by_source("nowhere"),
    tb.filter_by_correlation("job-1") & tb.filter_by_correlation("job-0"),
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
    assert f._pushdown == {
        "types": ["system.error", "user.action"],
        "min_severity": "warn",
        "exact": True,
    }
    assert (tb.filter_by_type("user.action") | tb.filter_by_source("x"))._pushdown == {
        "exact": False
    }
    assert tb.filter_by_correlation("c")._pushdown == {"correlation_id": "c", "exact": True}
    both = tb.filter_by_source("a", "b") & tb.filter_by_source("b", "c") & tb.combine_filters()
    assert both._pushdown == {"sources": ["b"], "exact": True}
    # a residual part: the filter stays the check
    f = tb.filter_by_type("user.action") & tb.filter_by(lambda e: True)
    assert f._pushdown == {"types": ["user.action"], "exact": False}
    assert (tb.filter_by_source("a") & ~tb.filter_by_type("user.action"))._pushdown == {
        "sources": ["a"],
        "exact": False,
    }
    # two different correlations: nothing passes, which the parts cannot say
    two = tb.filter_by_correlation("c") & tb.filter_by_correlation("d")
    assert two._pushdown == {"correlation_id": "c", "exact": False}
    same = tb.filter_by_correlation("c") & tb.filter_by_correlation("c")
    assert same._pushdown == {"correlation_id": "c", "exact": True}


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


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
@pytest.mark.parametrize(
    "flt",
    [
        tb.filter_by_type("system.error"),
        tb.filter_by_type(
            "system.error", "user.action", "config.change", "health.check", "cascade.stop"
        ),
        tb.filter_by_source("s-3"),
        tb.filter_by_severity("error"),
        tb.filter_by_type("user.action") & tb.filter_by_source("s-1", "s-2"),
    ],
    ids=repr,
)
def test_selective_reads_follow_the_density(
    tmp_path: Path, chunk_size: int, flt: tb.Filter
) -> None:
    """Matches dense, then absent for a long run, then rare, then dense again: the windows
    a selective read sizes by the density still give every match once, in order; with
    ``since``, ``limit`` and records too."""
    path = tmp_path / "w.db"
    with SqliteEventStore(path) as s:
        events = [Event("system.error", f"s-{i % 5}", severity="error") for i in range(300)]
        events += [Event("service.running", "s-0") for _ in range(3000)]
        events += [
            Event("user.action" if i % 97 else "system.error", f"s-{i % 7}") for i in range(2000)
        ]
        events += [Event("user.action", f"s-{i % 3}", severity="error") for i in range(500)]
        s.append_many(events)
    with SqliteEventStore(path, chunk_size=chunk_size) as s:
        want = [(seq, e.event_id) for seq, e in enumerate(events, 1) if flt.matches(e)]
        assert [e.event_id for e in s.replay(filter=flt)] == [w[1] for w in want]
        assert [(r.seq, r.event.event_id) for r in s.records(0, flt)] == want
        since = 3100
        assert [r.seq for r in s.records(since, flt, limit=7)] == [
            w[0] for w in want if w[0] > since
        ][:7]


def test_rows_appended_during_a_selective_read_are_read(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "a.db", chunk_size=2) as s:
        s.append_many([Event("user.action", "a") for _ in range(5)])
        got = []
        for e in s.replay(filter=tb.filter_by_source("a")):
            got.append(e)
            if len(got) == 3:
                s.append_many([Event("user.action", "b"), Event("user.action", "a")])
        assert len(got) == 6


def test_a_source_filter_reads_only_that_source(tmp_path: Path) -> None:
    """A damaged row of another source is never decoded by a replay by source."""
    path = tmp_path / "d.db"
    with SqliteEventStore(path) as s:
        s.append(Event("health.check", "a"))
        s.append(Event("health.check", "b"))
    with sqlite3.connect(path) as c:
        c.execute("UPDATE events SET data = '{broken' WHERE source = 'a'")
    with SqliteEventStore(path) as s:
        with pytest.raises(tb.EventStoreError, match="cannot decode"):
            list(s.replay(on_error="raise"))
        assert [e.source for e in s.replay(filter=tb.filter_by_source("b"))] == ["b"]
        assert [r.seq for r in s.records(_sources=("b",), on_error="raise")] == [2]


def test_an_exact_query_still_checks_what_the_python_codec_decodes(tmp_path: Path) -> None:
    """An exact push-down skips the filter's check, except for rows the native decoder
    declines: another class may decode with another type or source than the columns say
    (here a hand-edited row)."""
    path = tmp_path / "e.db"
    with SqliteEventStore(path) as s:
        s.append(Event("user.action", "a", metadata={"k": 1}))  # the Python codec's row
        s.append(Event("user.action", "a"))
    with sqlite3.connect(path) as c:
        c.execute("UPDATE events SET source = 'z', type = 'system.error'")
    with SqliteEventStore(path) as s:
        assert [e.source for e in s.replay(filter=tb.filter_by_source("z"))] == []
        assert [e.source for e in s.replay(filter=tb.filter_by_type("system.error"))] == []
        # a natively decoded row is taken as the columns say (the query is exact)
        f = tb.filter_by_type("user.action")
        assert list(s.replay(filter=f)) == []
        assert [r.seq for r in s.records(0, f & tb.filter_by(lambda e: True))] == []


def test_selective_queries_use_the_bucket_index(tmp_path: Path) -> None:
    """The queries a selective read makes are answered through events_bucket (no scan of
    the events table)."""
    path = tmp_path / "q.db"
    with SqliteEventStore(path) as s:
        s.append_many([Event("user.action", f"s-{i % 3}") for i in range(200)])
        plans: list[str] = []
        s._conn.set_trace_callback(plans.append)
        assert len(list(s.replay(filter=tb.filter_by_type("user.action")))) == 200
        assert len(list(s.replay(filter=tb.filter_by_source("s-1")))) == 67
        s._conn.set_trace_callback(None)
        queries = [q for q in plans if q.lstrip().upper().startswith("SELECT") and "data" in q]
        assert queries and all("INDEXED BY events_bucket" in q for q in queries)
        for q in {q.split(" WHERE ")[0] for q in queries}:
            assert "events_bucket" in q
