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


def _damaged(tmp_path: Path, events: list[Event], where: str) -> SqliteEventStore:
    """A store of ``events`` whose rows matching ``where`` are damaged (a full replay raises
    on them, checked here), opened again."""
    path = tmp_path / "d.db"
    with SqliteEventStore(path) as s:
        for e in events:
            s.append(e)
    with sqlite3.connect(path) as c:
        c.execute(f"UPDATE events SET data = '{{broken' WHERE {where}")
    s = SqliteEventStore(path)
    with pytest.raises(tb.EventStoreError, match="cannot decode"):
        list(s.replay(on_error="raise"))
    return s


def test_only_matching_rows_are_read(tmp_path: Path) -> None:
    """A damaged row of another type is never decoded by a selective replay (a full replay
    filtered in Python would fail on it)."""
    events = [
        Event("health.check", "a"),
        Event("system.error", "b", severity="error"),
        Event("health.check", "c"),
    ]
    with _damaged(tmp_path, events, "type = 'health.check' AND seq = 1") as s:
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
    events = [Event("health.check", "a"), Event("health.check", "b")]
    with _damaged(tmp_path, events, "stream = 'a'") as s:
        assert [e.source for e in s.replay(filter=tb.filter_by_source("b"))] == ["b"]
        assert [r.seq for r in s.records(_sources=("b",), on_error="raise")] == [2]


def test_an_exact_query_still_checks_what_the_python_codec_decodes(tmp_path: Path) -> None:
    """An exact push-down skips the filter's check, except for chunks with rows the native
    decoder declines: another class may decode with another type or source than was stored
    (here event_runs is edited by hand to say so)."""
    path = tmp_path / "e.db"
    with SqliteEventStore(path) as s:
        s.append(Event("user.action", "a", metadata={"k": 1}))  # the Python codec's row
        native = Event("user.action", "a")
        s.append(native)
    with sqlite3.connect(path) as c:
        c.execute("""UPDATE event_runs SET types = '{"system.error":[0]}', sources = '{"z":[0]}'""")
    with SqliteEventStore(path, chunk_size=1) as s:
        # the native row is taken as stored (the query is exact), the other one is checked
        assert [e.event_id for e in s.replay(filter=tb.filter_by_source("z"))] == [native.event_id]
        assert [r.seq for r in s.records(0, tb.filter_by_type("system.error"))] == [2]
        # a filter the query is not exact for checks every event
        f = tb.filter_by_type("system.error") & tb.filter_by(lambda e: True)
        assert list(s.replay(filter=f)) == []
    with SqliteEventStore(path) as s:  # one chunk: all of it is checked
        assert list(s.replay(filter=tb.filter_by_source("z"))) == []


def test_selective_reads_go_through_event_runs(tmp_path: Path) -> None:
    """A replay by type or source asks event_runs for the matching sequence numbers and
    reads only those rows (no scan of the events table); each append adds one run per
    512 events."""
    path = tmp_path / "q.db"
    with SqliteEventStore(path) as s:
        s.append_many([Event("user.action", f"s-{i % 3}") for i in range(1200)])
        s.append(Event("system.error", "s-9"))
        runs = s._conn.execute("SELECT first_seq FROM event_runs ORDER BY 1").fetchall()
        assert runs == [(1,), (513,), (1025,), (1201,)]
        statements: list[str] = []
        s._conn.set_trace_callback(statements.append)
        assert len(list(s.replay(filter=tb.filter_by_type("user.action")))) == 1200
        assert len(list(s.replay(filter=tb.filter_by_source("s-1")))) == 400
        assert [e.source for e in s.replay(filter=tb.filter_by_source("s-9"))] == ["s-9"]
        s._conn.set_trace_callback(None)
        reads = [q for q in statements if "FROM events" in q and "data" in q]
        assert reads and all("WHERE seq IN (SELECT value FROM json_each(" in q for q in reads)
        assert s.integrity_check() == "ok"
        s._conn.execute("DELETE FROM event_runs WHERE first_seq = 513")
        assert "more or fewer than event_runs" in s.integrity_check()


def test_sources_and_types_spelled_like_json_are_told_apart(tmp_path: Path) -> None:
    """event_runs lists sources as JSON keys: a source holding quotes, commas, brackets or
    backslashes (or one another source ends with) selects its own events only."""
    sources = ["a", 'x"a', 'a":[0]', ',"a":[', "a\\", "ü", 'b,"a']
    with SqliteEventStore(tmp_path / "j.db", chunk_size=2) as s:
        events = [
            Event("user.action", src, metadata={"k": 1} if i % 3 == 0 else None)
            for i, src in enumerate(sources * 3)
        ]
        s.append_many(events)
        for src in sources:
            want = [e.event_id for e in events if e.source == src]
            assert len(want) == 3
            assert [e.event_id for e in s.replay(filter=tb.filter_by_source(src))] == want
            flt = tb.filter_by_source(src) & tb.filter_by_type("user.action")
            assert [e.event_id for e in s.replay(filter=flt)] == want
