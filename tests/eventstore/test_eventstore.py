"""The SQLite event store: sequence, streams and optimistic concurrency, replay, attach,
event sourcing, crash durability and damaged files."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from tracebus import (
    ConcurrencyError,
    DependencyEvent,
    Event,
    EventBus,
    EventBusAdapter,
    EventStoreError,
    EventType,
    HealthEvent,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    Severity,
    SqliteEventStore,
    StateStore,
    SystemEvent,
    TracebusError,
    UserActionEvent,
    correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    new_correlation_id,
    rebuild_state,
)
from tracebus.eventstore import StoredRecord


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def es(db: Path):  # type: ignore[no-untyped-def]
    s = SqliteEventStore(db)
    yield s
    s.close()


def ev(source: str = "svc", i: int = 0, type: str = EventType.CONFIG_CHANGE) -> Event:
    return Event(type, source, metadata={"i": i})


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


# -- schema, settings -------------------------------------------------------------------


def test_wal_mode_and_default_synchronous(es: SqliteEventStore, db: Path) -> None:
    assert es.journal_mode == "WAL"
    assert es.synchronous == "NORMAL"
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


@pytest.mark.parametrize(("mode", "level"), [("off", 0), ("NORMAL", 1), ("full", 2), ("EXTRA", 3)])
def test_synchronous_is_configurable(db: Path, mode: str, level: int) -> None:
    with SqliteEventStore(db, synchronous=mode) as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == level
        assert s.synchronous == mode.upper()


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"synchronous": "sometimes"}, ValueError, "synchronous"),
        ({"synchronous": 1}, ValueError, "synchronous"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": True}, ValueError, "timeout"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": 1.5}, TypeError, "chunk_size"),
    ],
)
def test_bad_settings_name_the_parameter(
    db: Path, kwargs: dict[str, object], exc: type, param: str
) -> None:
    with pytest.raises(exc, match=param):
        SqliteEventStore(db, **kwargs)  # type: ignore[arg-type]


def test_path_must_be_a_path() -> None:
    with pytest.raises(TypeError, match="path"):
        SqliteEventStore(42)  # type: ignore[arg-type]


def test_errors_are_tracebus_errors() -> None:
    assert issubclass(ConcurrencyError, EventStoreError)
    assert issubclass(EventStoreError, TracebusError)


# -- appending, sequence, streams ---------------------------------------------------------


def test_append_assigns_a_global_sequence(es: SqliteEventStore) -> None:
    assert es.append(ev("a")) == 1
    assert es.append(ev("b")) == 2
    assert es.append_many([ev("a"), ev("c"), ev("a")]) == [3, 4, 5]
    assert es.append_many([]) == []
    assert len(es) == 5
    assert es.last_seq() == 5
    assert [(r.seq, r.stream, r.version) for r in es.records()] == [
        (1, "a", 1),
        (2, "b", 1),
        (3, "a", 2),
        (4, "c", 1),
        (5, "a", 3),
    ]
    assert es.stream_version("a") == 3
    assert es.stream_version("nobody") == 0


def test_explicit_stream(es: SqliteEventStore) -> None:
    es.append(ev("x"), stream="order-1")
    es.append_many([ev("y"), ev("z")], stream="order-1")
    assert es.stream_version("order-1") == 3
    assert es.stream_version("x") == 0
    assert [r.version for r in es.records(stream="order-1")] == [1, 2, 3]


def test_stream_reads_follow_each_streams_chain(db: Path) -> None:
    """A stream is read by walking its events' links back from its head: interleaved
    streams, ``since`` inside a stream, chunks smaller than the stream, other conditions
    and ``limit`` all give what a full scan would."""

    def key(records: Iterable[StoredRecord]) -> list[tuple[int, str, int, str]]:
        return [(r.seq, r.stream, r.version, r.event.event_id) for r in records]

    rng = random.Random(7)
    with SqliteEventStore(db, chunk_size=3) as s:
        events = [ev(rng.choice("abc"), i) for i in range(60)]
        for i in range(0, 60, 7):
            s.append_many(events[i : i + 7])
        s.append(ev("a", 99, EventType.USER_ACTION), stream="b")  # explicit stream
        everything = list(s.records())
        for stream in ["a", "b", "c", "nobody"]:
            for since in [0, 1, 17, 40, 61]:
                want = [r for r in everything if r.stream == stream and r.seq > since]
                got = list(s.records(since, stream=stream))
                assert key(got) == key(want), (stream, since)
                if got:  # contiguous versions up to the stream's head
                    assert [r.version for r in got] == list(
                        range(got[0].version, s.stream_version(stream) + 1)
                    )
                assert [e.event_id for e in s.records(since, stream=stream, _records=False)] == [
                    r.event.event_id for r in want
                ]
        # combined with a filter, a correlation and a limit
        b_user = [r for r in everything if r.stream == "b" and r.event.type == "user.action"]
        assert len(b_user) == 1
        by_type = s.records(stream="b", filter=filter_by_type(EventType.USER_ACTION))
        assert key(by_type) == key(b_user)
        r5 = everything[5]
        same_corr = [
            r
            for r in everything
            if r.stream == r5.stream and r.event.correlation_id == r5.event.correlation_id
        ]
        assert key(s.records(stream=r5.stream, correlation_id=r5.event.correlation_id)) == key(
            same_corr
        )
        a = [r for r in everything if r.stream == "a"]
        assert key(s.records(stream="a", limit=4)) == key(a[:4])


def test_expected_version_accepts_and_rejects(es: SqliteEventStore) -> None:
    es.append(ev("s"), expected_version=0)
    es.append(ev("s"), expected_version=1)
    with pytest.raises(ConcurrencyError) as info:
        es.append(ev("s"), expected_version=1)
    assert info.value.stream == "s"
    assert info.value.expected_version == 1
    assert info.value.actual_version == 2
    assert "'s' is at version 2, expected 1" in str(info.value)
    assert len(es) == 2
    es.append_many([ev("s"), ev("s")], expected_version=2)
    assert es.stream_version("s") == 4


def test_conflicting_batch_stores_nothing(es: SqliteEventStore) -> None:
    es.append_many([ev("a"), ev("b")])
    with pytest.raises(ConcurrencyError):
        es.append_many([ev("a"), ev("b")], expected_version={"a": 1, "b": 0})
    assert len(es) == 2
    assert es.append_many([ev("a"), ev("b")], expected_version={"a": 1, "b": 1}) == [3, 4]
    # the caches were not corrupted by the failed attempt
    assert [r.version for r in es.records(stream="a")] == [1, 2]


def test_expected_version_argument_checks(es: SqliteEventStore) -> None:
    with pytest.raises(ValueError, match="one stream"):
        es.append_many([ev("a"), ev("b")], expected_version=0)
    with pytest.raises(TypeError, match="expected_version"):
        es.append(ev("a"), expected_version=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected_version"):
        es.append(ev("a"), expected_version=-1)
    with pytest.raises(TypeError, match="stream names"):
        es.append_many([ev("a")], expected_version={1: 0})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"events\[1\]"):
        es.append_many([ev("a"), "not an event"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="use append"):
        es.append_many(ev("a"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stream"):
        es.append(ev("a"), stream="")
    assert len(es) == 0


def test_duplicate_event_is_refused_and_nothing_stored(es: SqliteEventStore) -> None:
    e = ev("a")
    es.append(e)
    with pytest.raises(EventStoreError, match=f"{e.event_id} is already stored"):
        es.append_many([ev("a"), e])
    other = ev("b")
    with pytest.raises(EventStoreError, match="twice"):
        es.append_many([other, other])
    assert len(es) == 1
    assert es.append(ev("a")) == 2  # sequence continues without a gap


class _Stateful(Event):
    """An event subclass with instance attributes."""


def test_unencodable_event_names_field_and_stores_nothing(es: SqliteEventStore) -> None:
    with pytest.raises(TypeError, match=r"metadata\['when'\]"):  # refused when made
        Event(EventType.CONFIG_CHANGE, "x", metadata={"when": object()})
    bad = _Stateful(EventType.CONFIG_CHANGE, "x")
    bad.__dict__["when"] = object()
    with pytest.raises(TypeError, match=r"attribute when"):
        es.append_many([ev("x"), bad])
    assert len(es) == 0


def test_concurrent_writers_one_winner_per_version(db: Path) -> None:
    """Several writers (each with its own connection) append to one stream with expected
    versions: every version is won exactly once, the others get ConcurrencyError, and the
    versions stay contiguous."""
    SqliteEventStore(db).close()
    writers, per_writer = 4, 25
    won: list[list[int]] = [[] for _ in range(writers)]
    conflicts = [0] * writers
    barrier = threading.Barrier(writers)

    def work(w: int) -> None:
        with SqliteEventStore(db, timeout=30) as s:
            barrier.wait()
            while len(won[w]) < per_writer:
                v = s.stream_version("shared")
                try:
                    s.append(ev("shared", w), expected_version=v)
                    won[w].append(v + 1)
                except ConcurrencyError:
                    conflicts[w] += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    all_won = sorted(v for w in won for v in w)
    assert all_won == list(range(1, writers * per_writer + 1))
    with SqliteEventStore(db) as s:
        assert s.integrity_check() == "ok"  # links and head of the stream included
        records = list(s.records(stream="shared"))
        assert [r.version for r in records] == list(range(1, writers * per_writer + 1))
        assert [r.seq for r in records] == sorted(r.seq for r in records)
        # each writer's own wins are in its event order
        for w in range(writers):
            mine = [r.version for r in records if r.event.metadata["i"] == w]
            assert mine == won[w]


def test_two_stores_interleave_without_gaps(db: Path) -> None:
    a = SqliteEventStore(db)
    b = SqliteEventStore(db)
    try:
        assert a.append(ev("s")) == 1
        assert b.append(ev("s")) == 2  # b sees a's commit
        assert a.append(ev("s")) == 3  # a's cached version/sequence are invalidated
        assert a.stream_version("s") == 3
        assert [r.version for r in b.records(stream="s")] == [1, 2, 3]
    finally:
        a.close()
        b.close()


# -- replay ------------------------------------------------------------------------------


def mixed_events(n: int) -> list[Event]:
    out: list[Event] = []
    corrs = [new_correlation_id() for _ in range(7)]
    for i in range(n):
        with correlation(f"op{i % 7}", correlation_id=corrs[i % 7]):
            k = i % 5
            if k == 0:
                u = ManagedServiceUpdate(
                    ServiceType.PORT_FORWARD, f"pf-{i % 3}", ServiceState.RUNNING, pid=i
                )
                out.append(ServiceStateEvent.from_update(u, ServiceState.STARTING))
            elif k == 1:
                out.append(HealthEvent("ctx", "golem", True, i % 2 == 0, 1, 3))
            elif k == 2:
                out.append(DependencyEvent("k8s", ServiceType.KUBE_OPERATION, ["pf-0"], "stop"))
            elif k == 3:
                out.append(UserActionEvent("restart", ServiceType.MCP_SERVER, "mcp"))
            else:
                out.append(SystemEvent("orchestrator", "error", f"boom {i}"))
    return out


def test_replay_returns_exactly_what_was_stored_in_order(es: SqliteEventStore) -> None:
    events = mixed_events(500)
    es.append_many(events[:200])
    for e in events[200:300]:
        es.append(e)
    es.append_many(events[300:])
    for _ in range(2):  # twice: replay does not consume anything
        back = list(es.replay())
        assert ids(back) == ids(events)
        for a, b in zip(events, back, strict=True):
            assert type(a) is type(b)
            assert a.__getnewargs_ex__() == b.__getnewargs_ex__()


def test_replay_since_and_resume_lose_nothing(es: SqliteEventStore) -> None:
    events = mixed_events(100)
    es.append_many(events)
    seen: list[str] = []
    pos = 0
    # a consumer that stops ("crashes") after every 13 events and resumes from its position
    while True:
        batch = list(es.records(pos, limit=13))
        if not batch:
            break
        seen += [r.event.event_id for r in batch]
        pos = batch[-1].seq
    assert seen == ids(events)
    assert ids(list(es.replay(since=60))) == ids(events[60:])
    assert list(es.replay(since=100)) == []


def test_replay_filter(es: SqliteEventStore) -> None:
    events = mixed_events(100)
    es.append_many(events)
    errors = list(es.replay(filter=filter_by_severity(Severity.ERROR)))
    assert ids(errors) == [e.event_id for e in events if e.severity >= Severity.ERROR]
    user = list(es.replay(filter=filter_by_type(EventType.USER_ACTION) & filter_by_source("user")))
    assert len(user) == 20
    assert list(es.records(limit=0)) == []
    assert [r.seq for r in es.records(filter=filter_by_type(EventType.USER_ACTION), limit=3)] == [
        4,
        9,
        14,
    ]


def test_replay_is_lazy(db: Path) -> None:
    with SqliteEventStore(db, chunk_size=10) as s:
        s.append_many(mixed_events(1000))
        selects: list[str] = []
        s._conn.set_trace_callback(
            # the chunk queries (plain replay selects the data column alone)
            lambda q: selects.append(q) if q.startswith(("SELECT seq", "SELECT data")) else None
        )
        it = s.replay()
        first = [next(it) for _ in range(15)]
        assert len(first) == 15
        assert len(selects) == 2  # two chunks of 10 fetched, not 1000 rows
        rest = list(it)
        assert len(first) + len(rest) == 1000
        assert len(selects) == 101  # 100 full chunks + the empty one that ends it


def test_replay_argument_checks(es: SqliteEventStore) -> None:
    with pytest.raises(ValueError, match="since"):
        list(es.replay(since=-1))
    with pytest.raises(TypeError, match="since"):
        list(es.replay(since="0"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="filter"):
        list(es.replay(filter=lambda e: True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        es.records(limit=-2)


def test_replay_into_bus(es: SqliteEventStore) -> None:
    events = mixed_events(50)
    es.append_many(events)
    bus = EventBus()
    got: list[Event] = []
    bus.subscribe(None, got.append)
    assert es.replay_into(bus) == 50
    assert ids(got) == ids(events)
    got.clear()
    assert es.replay_into(bus, since=40, filter=filter_by_type(EventType.SYSTEM_ERROR)) == 2
    assert ids(got) == [events[44].event_id, events[49].event_id]
    with pytest.raises(TypeError, match="bus"):
        es.replay_into(object())
    bus.close()


def test_replay_into_an_attached_bus_stores_nothing_twice(es: SqliteEventStore) -> None:
    events = mixed_events(30)
    es.append_many(events)
    bus = EventBus()
    es.attach(bus)
    es.replay_into(bus)
    bus.publish(ev("new"))
    es.detach()
    assert len(es) == 31
    assert ids(list(es.replay()))[:30] == ids(events)
    bus.close()


# -- attach --------------------------------------------------------------------------------


def test_attach_persists_everything_published(es: SqliteEventStore) -> None:
    bus = EventBus()
    commits: list[str] = []
    es._conn.set_trace_callback(lambda q: commits.append(q) if q == "COMMIT" else None)
    es.attach(bus, batch_size=64)
    assert es.attached
    per_thread = 500

    def publish(t: int) -> None:
        for i in range(per_thread):
            bus.publish(ev(f"t{t}", i))

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert es.flush(30)
    assert len(es) == 4 * per_thread
    stored = es.detach()
    assert stored == 4 * per_thread
    # batched: at most 64 events per transaction, and far fewer transactions than events
    assert 4 * per_thread / 64 <= len(commits) < 4 * per_thread / 2
    assert not es.attached
    # each publisher's events are stored in its order, with contiguous stream versions
    for t in range(4):
        rs = list(es.records(stream=f"t{t}"))
        assert [r.event.metadata["i"] for r in rs] == list(range(per_thread))
        assert [r.version for r in rs] == list(range(1, per_thread + 1))
    bus.publish(ev("after"))
    assert len(es) == 4 * per_thread  # detached
    bus.close()


def test_attach_stores_handler_follow_ups_after_their_cause(es: SqliteEventStore) -> None:
    bus = EventBus()
    es.attach(bus)  # attached before the handler: causes are stored before effects

    def react(e: Event) -> None:
        bus.publish(DependencyEvent(e.source, ServiceType.PORT_FORWARD, ["mcp"], "stop"))

    bus.subscribe(filter_by_type(EventType.SERVICE_FAILED), react)
    with correlation("failure") as ctx:
        u = ManagedServiceUpdate(
            ServiceType.PORT_FORWARD, "pf", ServiceState.FAILED, error_detail="x"
        )
        bus.publish(ServiceStateEvent.from_update(u, ServiceState.RUNNING))
    es.detach()
    trace = es.trace(ctx.correlation_id)
    assert len(trace) == 2
    assert [str(e.type) for e in trace.events()] == ["service.failed", "cascade.stop"]
    assert trace.roots[0].children[0].event.parent_id == trace.roots[0].event.event_id
    assert [str(r.event.type) for r in es.records()] == ["service.failed", "cascade.stop"]
    bus.close()


def test_attach_filter_and_errors(es: SqliteEventStore) -> None:
    bus = EventBus()
    es.attach(bus, filter_by_severity(Severity.WARN))
    with pytest.raises(EventStoreError, match="already attached"):
        es.attach(bus)
    bus.publish(ev("quiet"))
    bus.publish(SystemEvent("x", "shutdown"))
    bad = _Stateful(EventType.CONFIG_CHANGE, "bad", severity="error")
    bad.__dict__["f"] = object()
    bus.publish(bad)
    bus.publish(SystemEvent("x", "error"))
    assert es.flush(10)
    st = es.stats()
    assert st["attach_failed"] == 1
    assert st["attach_persisted"] == 2
    assert es.detach() == 2
    assert es.detach() == 0
    assert [str(e.type) for e in es.replay()] == ["system.shutdown", "system.error"]
    with pytest.raises(TypeError, match="bus"):
        es.attach("bus")
    with pytest.raises(ValueError, match="batch_size"):
        es.attach(bus, batch_size=0)
    bus.close()


def test_close_detaches_and_flushes(db: Path) -> None:
    bus = EventBus()
    s = SqliteEventStore(db)
    s.attach(bus)
    bus.publish_many([ev("a", i) for i in range(100)])
    s.close()
    s.close()  # idempotent
    with pytest.raises(EventStoreError, match="closed"):
        s.append(ev("a"))
    with SqliteEventStore(db) as again:
        assert len(again) == 100
    bus.close()


# -- event sourcing, trace, stats ---------------------------------------------------------


def test_rebuild_state_equals_the_live_store(es: SqliteEventStore) -> None:
    bus = EventBus()
    es.attach(bus)
    live = StateStore()
    adapter = EventBusAdapter(bus, live)
    rng = random.Random(5)
    states = [s for s in ServiceState if s != ServiceState.UNKNOWN]
    last: dict[str, ServiceState] = {}
    for i in range(600):
        label = f"svc-{rng.randrange(30)}"
        state = rng.choice([s for s in states if s != last.get(label)])
        last[label] = state
        stype = ServiceType.PORT_FORWARD if label < "svc-2" else "CustomType"
        adapter.report(
            ManagedServiceUpdate(
                stype,
                label,
                state,
                error_detail="boom" if state == ServiceState.FAILED else None,
                proxy_port=rng.randrange(0, 65536),
                pid=rng.randrange(0, 2**32),
            )
        )
        bus.publish(ev("noise", i))  # other events are ignored by rebuild_state
    es.detach()
    rebuilt = rebuild_state(es)
    assert len(rebuilt) == len(live) == 30
    assert rebuilt.get_all_service_states() == live.get_all_service_states()
    for label, snap in live.get_all_service_states().items():
        assert rebuilt.get_service_state(label).to_dict() == snap.to_dict()
    with pytest.raises(TypeError, match="event_store"):
        rebuild_state(live)  # type: ignore[arg-type]
    bus.close()


def test_trace_matches_the_bus_trace(es: SqliteEventStore) -> None:
    bus = EventBus()
    es.attach(bus)

    def cascade(e: Event) -> None:
        if e.source == "k8s":
            for pf in ("pf-1", "pf-2"):
                u = ManagedServiceUpdate(ServiceType.PORT_FORWARD, pf, ServiceState.STOPPED)
                bus.publish(ServiceStateEvent.from_update(u, ServiceState.RUNNING))

    bus.subscribe(filter_by_type(EventType.SERVICE_FAILED), cascade)
    with correlation("kube_failure") as ctx:
        u = ManagedServiceUpdate(ServiceType.KUBE_OPERATION, "k8s", ServiceState.FAILED)
        bus.publish(ServiceStateEvent.from_update(u, ServiceState.RUNNING))
    bus.publish(ev("elsewhere"))
    es.detach()
    stored = es.trace(ctx.correlation_id)
    memory = bus.trace(ctx.correlation_id)
    assert stored.render() == memory.render()
    assert len(stored) == 3
    assert [c.event.source for c in stored.roots[0].children] == ["pf-1", "pf-2"]
    assert len(es.trace("corr_0000000000000000")) == 0
    with pytest.raises(TypeError, match="correlation_id"):
        es.trace("")
    bus.close()


def test_stats(es: SqliteEventStore) -> None:
    assert es.stats()["events"] == 0
    es.append_many(mixed_events(50))
    st = es.stats()
    assert st["events"] == 50
    assert st["first_seq"] == 1 and st["last_seq"] == 50
    assert st["by_type"]["user.action"] == 10
    assert st["by_severity"]["error"] >= 10
    assert st["streams"] == len({r.stream for r in es.records()})
    assert st["correlations"] == 7
    assert st["size_bytes"] > 0
    assert st["journal_mode"] == "WAL" and st["synchronous"] == "NORMAL"
    assert st["first_timestamp"] <= st["last_timestamp"]
    assert es.integrity_check() == "ok"


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        ("UPDATE events SET prev_seq = NULL WHERE seq = 4", "1 events not linked"),
        ("UPDATE events SET prev_seq = 2 WHERE seq = 4", "1 events not linked"),
        ("UPDATE events SET version = 9 WHERE seq = 1", "events not linked"),
        ("UPDATE streams SET version = 7 WHERE stream = 'a'", "1 streams whose head"),
        ("UPDATE streams SET last_seq = 1 WHERE stream = 'a'", "1 streams whose head"),
        ("DELETE FROM streams WHERE stream = 'b'", "1 streams whose head"),
        ("INSERT INTO streams VALUES ('ghost', 1, 3)", "1 stream heads without events"),
    ],
)
def test_integrity_check_reports_broken_streams(db: Path, damage: str, reported: str) -> None:
    with SqliteEventStore(db) as s:
        s.append_many([ev("a"), ev("b"), ev("a"), ev("a"), ev("b")])  # a: 1,3,4  b: 2,5
        assert s.integrity_check() == "ok"
    c = sqlite3.connect(db)
    c.execute(damage)
    c.commit()
    c.close()
    with SqliteEventStore(db) as s:
        assert reported in s.integrity_check()


# -- durability: SIGKILL while appending ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from tracebus import Event, EventType, SqliteEventStore
    store = SqliteEventStore(sys.argv[1])
    i = 0
    while True:
        n = 1 + i % 7
        batch = [
            Event(EventType.CONFIG_CHANGE, f"w{i % 3}", metadata={"i": i + k}) for k in range(n)
        ]
        if n == 1:
            store.append(batch[0])
        else:
            store.append_many(batch)
        # acknowledged: the transaction has committed
        sys.stdout.write(" ".join(e.event_id for e in batch) + "\\n")
        sys.stdout.flush()
        i += n
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(1234)
    acked: list[str] = []
    rounds = 15
    for _ in range(rounds):
        with subprocess.Popen(
            [sys.executable, str(script), str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as p:
            assert p.stdout is not None and p.stderr is not None
            first = p.stdout.readline()  # the child is writing
            assert first, p.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(p.pid, signal.SIGKILL)
            rest = p.stdout.read()
            p.wait()
        assert p.returncode == -signal.SIGKILL
        lines = (first + rest).decode().splitlines()
        # a line cut by the kill is not an acknowledgement
        complete = [ln for ln in lines if ln and all(len(x) == 20 for x in ln.split())]
        acked += [x for ln in complete for x in ln.split()]
    assert len(acked) > rounds
    with SqliteEventStore(db) as s:
        assert s.integrity_check() == "ok"
        records = list(s.records())
        stored = [r.event.event_id for r in records]
        position = {eid: i for i, eid in enumerate(stored)}
        missing = [a for a in acked if a not in position]
        assert missing == []
        # acknowledged events are stored in acknowledgement order, sequence increasing
        assert [position[a] for a in acked] == sorted(position[a] for a in acked)
        assert [r.seq for r in records] == sorted(r.seq for r in records)
        for w in ("w0", "w1", "w2"):
            versions = [r.version for r in records if r.stream == w]
            assert versions == list(range(1, len(versions) + 1))
    print(
        f"[figures] sigkill: rounds={rounds} acknowledged={len(acked)} stored={len(records)} lost=0"
    )


# -- damaged and foreign files ------------------------------------------------------------------


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "garbage.db"
    p.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(EventStoreError, match="not a usable tracebus event store"):
        SqliteEventStore(p)


def test_foreign_sqlite_database_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    c.commit()
    c.close()
    with pytest.raises(EventStoreError, match="not a tracebus event store"):
        SqliteEventStore(p)


def test_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(EventStoreError, match="does not exist"):
        SqliteEventStore(tmp_path / "nope.db", create=False)
    assert not (tmp_path / "nope.db").exists()
    with pytest.raises(EventStoreError, match="directory"):
        SqliteEventStore(tmp_path)
    with pytest.raises(EventStoreError, match="no directory"):
        SqliteEventStore(tmp_path / "missing" / "x.db")


def test_newer_schema_is_refused(db: Path) -> None:
    SqliteEventStore(db).close()
    c = sqlite3.connect(db)
    c.execute("UPDATE tracebus_meta SET value = '99' WHERE key = 'schema_version'")
    c.commit()
    c.close()
    with pytest.raises(EventStoreError, match="schema version 99"):
        SqliteEventStore(db)


def test_corrupted_rows_give_a_clear_error(db: Path) -> None:
    with SqliteEventStore(db) as s:
        s.append_many([ev("a", i) for i in range(5)])
    c = sqlite3.connect(db)
    c.execute("UPDATE events SET data = '{broken' WHERE seq = 3")
    c.commit()
    c.close()
    with SqliteEventStore(db) as s:
        with pytest.raises(EventStoreError, match="cannot decode event seq 3"):
            list(s.replay(on_error="raise"))
        assert [r.seq for r in s.records(limit=2)] == [1, 2]


@pytest.mark.parametrize("seed", range(6))
def test_damaged_file_never_crashes(tmp_path: Path, seed: int) -> None:
    """Random bytes overwritten in a store file: opening and reading either work or raise
    EventStoreError (never another exception, never a crash)."""
    db = tmp_path / "damaged.db"
    with SqliteEventStore(db) as s:
        s.append_many(mixed_events(300))
    rng = random.Random(seed)
    data = bytearray(db.read_bytes())
    for _ in range(8):
        at = rng.randrange(0, len(data) - 64)
        data[at : at + rng.randrange(1, 64)] = rng.randbytes(64)[: rng.randrange(1, 64)]
    data = data[: len(data) - rng.randrange(0, 2) * 1000]  # sometimes truncated
    db.write_bytes(bytes(data))
    try:
        with SqliteEventStore(db, create=False) as s:
            s.integrity_check()
            list(s.replay())
            s.stats()
    except EventStoreError:
        pass


def test_background_checkpoints(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Appends never checkpoint themselves; a background thread checkpoints the WAL once it
    is big enough (here 64 KiB), without losing or reordering anything."""
    import tracebus.eventstore.checkpoint as mod

    monkeypatch.setattr(mod, "_CHECKPOINT_BYTES", 64 << 10)
    with SqliteEventStore(db) as s:
        assert s._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        events = mixed_events(3000)
        for i in range(0, 3000, 100):
            s.append_many(events[i : i + 100])
        cp = s._checkpointer
        assert cp is not None
        deadline = time.monotonic() + 30
        while cp.checkpoints == 0 and time.monotonic() < deadline:
            s.append(ev("more"))
            time.sleep(0.05)
        assert cp.checkpoints > 0
        assert ids(list(s.replay()))[:3000] == ids(events)
        assert s.integrity_check() == "ok"
    assert not cp.thread.is_alive()  # stopped by close()
