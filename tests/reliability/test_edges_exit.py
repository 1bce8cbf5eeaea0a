"""Nothing acknowledged is lost at the exit (issue 14): an attached event store stores every
published event when the interpreter exits (normally, on an unhandled exception, on
``sys.exit``), when ``bus.close()`` returns and on ``detach()``; one event it cannot
encode is counted and the writer keeps going. Exit behaviour runs in child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tracebus as tb
from tracebus.eventstore import SqliteEventStore

N = 20_000

CHILD = """
import sys, tracebus as tb
from tracebus.eventstore import SqliteEventStore
bus = tb.EventBus()
store = SqliteEventStore(sys.argv[1])
store.attach(bus)
bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range({n})])
how = sys.argv[2]
if how == "raise":
    raise RuntimeError("boom")
if how == "sys.exit":
    sys.exit(3)
if how == "bus.close":
    bus.close()
    print(len(store))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("how", "code"), [("end", 0), ("raise", 1), ("sys.exit", 3), ("bus.close", 0)]
)
def test_an_attached_store_keeps_every_event_at_exit(tmp_path: Path, how: str, code: int) -> None:
    db = tmp_path / "exit.db"
    r = subprocess.run(
        [sys.executable, "-c", CHILD.format(n=N), str(db), how],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == code, r.stderr
    if how == "bus.close":
        assert r.stdout.split() == [str(N)]  # stored when bus.close() returned
    with SqliteEventStore(db) as s:
        assert len(s) == N


def test_bus_close_and_detach_flush_in_process(tmp_path: Path) -> None:
    bus = tb.EventBus()
    store = SqliteEventStore(tmp_path / "c.db")
    store.attach(bus, batch_size=100)
    bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(5000)])
    bus.close()
    assert len(store) == 5000 and not store.attached
    store.close()
    bus2 = tb.EventBus()
    store2 = SqliteEventStore(tmp_path / "d.db")
    store2.attach(bus2)
    bus2.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(3000)])
    assert store2.detach() == 3000
    bus2.close()  # the detached store's hook is gone: nothing runs twice
    store2.close()


class Loop(tb.Event):
    """An event subclass whose state can be made unencodable."""


@pytest.mark.timeout(60)
def test_one_unencodable_event_does_not_stop_the_writer(tmp_path: Path) -> None:
    bus = tb.EventBus()
    store = SqliteEventStore(tmp_path / "w.db")
    store.attach(bus, batch_size=50, buffer_size=64)
    bad = Loop("config.change", "x")
    bad.__dict__["me"] = bad.__dict__  # self-referencing: RecursionError when encoded
    bus.publish(bad)
    # Far more than the buffer: publishers would block for ever behind a dead writer.
    bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(2000)])
    assert store.flush(30)
    st = store.stats()
    assert st["attach_failed"] == 1 and st["attach_persisted"] == 2000
    store.close()
    bus.close()


def test_bus_aclose_flushes_an_attached_store(tmp_path: Path) -> None:
    import asyncio

    bus = tb.EventBus()
    store = SqliteEventStore(tmp_path / "a.db")
    store.attach(bus, batch_size=100)
    bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(3000)])
    asyncio.run(bus.aclose())
    assert len(store) == 3000 and not store.attached
    store.close()
