"""The SQLite event store against the ``eventsourcing`` library's SQLite recorder, and the
cost of attaching a store to a bus. Run with the other benches::

    python -m pytest benches/test_eventstore_bench.py --benchmark-only

Both stores write to a file in WAL mode with ``synchronous=NORMAL`` and in transactions of
500 events. Contenders:

- ``tracebus``: ``SqliteEventStore.append_many`` / ``replay`` with tracebus events (JSON
  encoding and decoding included).
- ``eventsourcing``: the same data as an ``eventsourcing`` domain event, through its
  ``Mapper`` (JSON transcoder) and ``SQLiteApplicationRecorder`` (``insert_events`` /
  ``select_notifications``) — the same job done the library's way.
- ``eventsourcing-raw``: the recorder alone with pre-encoded ``StoredEvent``s (no encoding or
  decoding): a floor, not the same job.

Every round checks the number of events written or read back. ``extra_info`` has events/s.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tracebus import (
    EventBus,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    SqliteEventStore,
    new_correlation_id,
)

BATCH = 500


def n_events(quick: bool) -> int:
    return 5_000 if quick else 20_000


def tracebus_events(n: int) -> list[ServiceStateEvent]:
    corrs = [new_correlation_id() for _ in range(n // 10 + 1)]
    out = []
    for i in range(n):
        u = ManagedServiceUpdate(
            ServiceType.PORT_FORWARD,
            f"pf-{i % 100}",
            ServiceState.RUNNING,
            proxy_port=8000 + i % 100,
            pid=1000 + i,
            correlation_id=corrs[i // 10],
            caused_by="bench",
        )
        out.append(ServiceStateEvent.from_update(u, ServiceState.STARTING))
    return out


def _es() -> Any:
    return pytest.importorskip("eventsourcing")


_ES_CLASS: list[Any] = []


def _es_class() -> Any:
    """The eventsourcing domain event carrying the same fields as a ServiceStateEvent
    (defined once: the library registers classes by topic)."""
    if not _ES_CLASS:
        _es()
        from eventsourcing.domain import DomainEvent

        @dataclass(frozen=True)
        class ServiceStateChanged(DomainEvent):
            service_type: str
            source: str
            old_state: str
            new_state: str
            is_ready: bool
            error: str | None
            proxy_port: int
            pid: int
            correlation_id: str
            caused_by: str
            parent_id: str | None
            event_id: str

        ServiceStateChanged.__qualname__ = "ServiceStateChanged"
        globals()["ServiceStateChanged"] = ServiceStateChanged  # resolved by topic
        _ES_CLASS.append(ServiceStateChanged)
    return _ES_CLASS[0]


def eventsourcing_parts(n: int) -> tuple[Any, list[Any]]:
    """An eventsourcing mapper and the same events as its domain events."""
    cls = _es_class()
    from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex

    tr = JSONTranscoder()
    tr.register(DatetimeAsISO())
    tr.register(UUIDAsHex())
    mapper = Mapper(transcoder=tr)
    streams = [uuid.uuid4() for _ in range(100)]
    now = datetime.datetime.now(datetime.UTC)
    events = []
    for i, e in enumerate(tracebus_events(n)):
        events.append(
            cls(
                originator_id=streams[i % 100],
                originator_version=i // 100 + 1,
                timestamp=now,
                service_type=str(e.service_type),
                source=e.source,
                old_state=str(e.old_state),
                new_state=str(e.new_state),
                is_ready=e.is_ready,
                error=e.error,
                proxy_port=e.proxy_port,
                pid=e.pid,
                correlation_id=e.correlation_id,
                caused_by=e.caused_by,
                parent_id=e.parent_id,
                event_id=e.event_id,
            )
        )
    return mapper, events


def eventsourcing_recorder(path: Path) -> Any:
    _es()
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    rec = SQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    rec.create_table()
    return rec


class Rounds:
    """A fresh database file for every round."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.i = 0

    def next(self) -> Path:
        self.i += 1
        return self.tmp_path / f"round{self.i}.db"


@pytest.mark.parametrize(
    "contender", ["tracebus", "tracebus (incl. close)", "eventsourcing", "eventsourcing-raw"]
)
def test_append(benchmark: Any, tmp_path: Path, bench_quick: bool, contender: str) -> None:
    n = n_events(bench_quick)
    benchmark.group = f"event store: append {n} events (transactions of {BATCH})"
    rounds = Rounds(tmp_path)
    state: dict[str, Any] = {}
    if contender.startswith("tracebus"):
        # tracebus checkpoints the WAL in a background thread (at 16 MiB) and at close;
        # "(incl. close)" also times closing, i.e. the final checkpoint of this run's WAL.
        events: list[Any] = tracebus_events(n)
        closing = contender.endswith("(incl. close)")

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            state["path"] = rounds.next()
            state["store"] = SqliteEventStore(state["path"])
            return (), {}

        def timed() -> None:
            s = state["store"]
            for i in range(0, n, BATCH):
                s.append_many(events[i : i + BATCH])
            if closing:
                s.close()

        def count() -> int:
            state["store"].close()
            with SqliteEventStore(state["path"]) as s:
                return len(s)

    else:
        mapper, es_events = eventsourcing_parts(n)
        stored = (
            [mapper.to_stored_event(e) for e in es_events] if contender.endswith("raw") else None
        )

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            state["rec"] = eventsourcing_recorder(rounds.next())
            return (), {}

        def timed() -> None:
            rec = state["rec"]
            for i in range(0, n, BATCH):
                if stored is not None:
                    rec.insert_events(stored[i : i + BATCH])
                else:
                    rec.insert_events([mapper.to_stored_event(e) for e in es_events[i : i + BATCH]])

        def count() -> int:
            return int(state["rec"].max_notification_id() or 0)

    counts: list[int] = []

    def run() -> None:
        timed()

    def teardown_check() -> None:
        counts.append(count())

    benchmark.pedantic(run, setup=setup, teardown=teardown_check, rounds=3 if bench_quick else 5)
    assert counts and all(c == n for c in counts), counts
    benchmark.extra_info.update(
        contender=contender, events=n, events_per_s=n / benchmark.stats["min"]
    )


@pytest.fixture(scope="module")
def replay_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {}


@pytest.mark.parametrize("contender", ["tracebus", "eventsourcing", "eventsourcing-raw"])
def test_replay(
    benchmark: Any, tmp_path: Path, bench_quick: bool, contender: str, replay_dbs: dict[str, Any]
) -> None:
    n = n_events(bench_quick)
    benchmark.group = f"event store: replay {n} events (all, in order, decoded)"
    if contender == "tracebus":
        store = SqliteEventStore(tmp_path / "replay.db")
        events = tracebus_events(n)
        for i in range(0, n, BATCH):
            store.append_many(events[i : i + BATCH])

        def run() -> int:
            return sum(1 for _ in store.replay())

    else:
        mapper, es_events = eventsourcing_parts(n)
        rec = eventsourcing_recorder(tmp_path / "replay.db")
        for i in range(0, n, BATCH):
            rec.insert_events([mapper.to_stored_event(e) for e in es_events[i : i + BATCH]])
        decode = not contender.endswith("raw")

        def run() -> int:
            got, start = 0, 1
            while True:
                page = rec.select_notifications(start, 1000)
                if not page:
                    return got
                if decode:
                    for x in page:
                        mapper.to_domain_event(x)
                got += len(page)
                start = page[-1].id + 1

    result = benchmark.pedantic(run, rounds=3 if bench_quick else 5, warmup_rounds=1)
    assert result == n
    benchmark.extra_info.update(
        contender=contender, events=n, events_per_s=n / benchmark.stats["min"]
    )
    if contender == "tracebus":
        store.close()


@pytest.mark.parametrize(
    "contender",
    ["bus", "bus + attached store (publish loop)", "bus + attached store (until stored)"],
)
def test_attach_overhead(benchmark: Any, tmp_path: Path, bench_quick: bool, contender: str) -> None:
    """Publishing pre-built events to a bus with one counting handler, with and without an
    attached store. "publish loop" times the publisher only (the store writes concurrently);
    "until stored" also waits for every event to be committed."""
    n = n_events(bench_quick)
    benchmark.group = f"event store: attach overhead, publishing {n} events"
    events = tracebus_events(n)
    rounds = Rounds(tmp_path)
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        bus = EventBus(history_size=0)
        count = [0]
        bus.subscribe(None, lambda e: count.__setitem__(0, count[0] + 1))
        state.update(bus=bus, count=count, store=None)
        if contender != "bus":
            s = SqliteEventStore(rounds.next())
            s.attach(bus)
            state["store"] = s
        return (), {}

    def run() -> None:
        bus = state["bus"]
        publish = bus.publish
        for e in events:
            publish(e)
        if contender.endswith("(until stored)"):
            state["store"].flush(None)

    stored: list[int] = []

    def teardown() -> None:
        s = state["store"]
        if s is not None:
            s.close()
            with SqliteEventStore(rounds.tmp_path / f"round{rounds.i}.db") as again:
                stored.append(len(again))
        assert state["count"][0] == n
        state["bus"].close()

    benchmark.pedantic(run, setup=setup, teardown=teardown, rounds=3 if bench_quick else 5)
    if contender != "bus":
        assert stored and all(c == n for c in stored), stored
    benchmark.extra_info.update(
        contender=contender, events=n, events_per_s=n / benchmark.stats["min"]
    )


# -- selective replay: the filter pushed into SQL (issue 13) ---------------------------------
#
# One type out of 20, interleaved (every page holds rows of each type). ``TRACEBUS_BENCH_
# SELECTIVE_N`` sets the store's size (default 20k quick, 100k otherwise; 1000000 by hand).
_SELECTIVE_TYPES = 20


def _selective_n(quick: bool) -> int:
    import os

    env = os.environ.get("TRACEBUS_BENCH_SELECTIVE_N")
    return int(env) if env else (20_000 if quick else 100_000)


@pytest.fixture(scope="module")
def selective_db(tmp_path_factory: pytest.TempPathFactory, bench_quick: bool) -> tuple[Path, int]:
    from tracebus import Event, register_event_type

    n = _selective_n(bench_quick)
    types = [register_event_type(f"bench.t{i}") for i in range(_SELECTIVE_TYPES)]
    path = tmp_path_factory.mktemp("selective") / "selective.db"
    with SqliteEventStore(path) as store:
        for start in range(0, n, 5000):
            store.append_many(
                [
                    Event(types[i % _SELECTIVE_TYPES], f"src-{i % 50}")
                    for i in range(start, min(n, start + 5000))
                ]
            )
    return path, n


@pytest.mark.parametrize("contender", ["sql-pushdown", "python-filter"])
def test_replay_one_type_of_20(
    benchmark: Any, selective_db: tuple[Path, int], bench_quick: bool, contender: str
) -> None:
    from tracebus import filter_by_type

    path, n = selective_db
    want = n // _SELECTIVE_TYPES + (1 if n % _SELECTIVE_TYPES > 7 else 0)
    benchmark.group = f"event store: replay 1 type of 20 from {n} events"
    flt = filter_by_type("bench.t7")
    store = SqliteEventStore(path)
    if contender == "sql-pushdown":

        def run() -> int:
            return sum(1 for _ in store.replay(filter=flt))

    else:  # what a full replay filtered in Python costs (the state before issue 13)

        def run() -> int:
            return sum(1 for e in store.replay() if flt.matches(e))

    result = benchmark.pedantic(run, rounds=3 if bench_quick else 5, warmup_rounds=1)
    store.close()
    assert result == want
    benchmark.extra_info.update(contender=contender, events=n, matching=want)
