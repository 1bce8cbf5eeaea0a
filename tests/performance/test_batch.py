"""EventBatchProcessor: order, flush on stop, size/time triggers, restartability, many
producers, bad arguments, re-entrancy from handlers. No timed asserts: waits only bound
how long a condition may take to become true."""

from __future__ import annotations

import logging
import math
import threading

import pytest
from tb_support import WAIT, run_threads, wait_until

from tracebus import BusClosedError, EventBatchProcessor, EventBus, SystemEvent

LONG = 3600.0  # a flush interval that never fires during a test


def ev(i: int, component: str = "c") -> SystemEvent:
    return SystemEvent(component, "startup", str(i))


class Recorder:
    """A sync handler recording the details of each event and the delivering thread."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.threads: set[int] = set()

    def __call__(self, e: SystemEvent) -> None:
        self.items.append(e.details)
        self.threads.add(threading.get_ident())


class CountingBus(EventBus):
    """A bus subclass: the processor must call its publish_many."""

    __slots__ = ()
    calls: list[int] = []

    def publish_many(self, events, *, timeout=None):  # type: ignore[no-untyped-def,override]
        type(self).calls.append(len(events))
        return super().publish_many(events, timeout=timeout)


@pytest.fixture
def rec(bus: EventBus) -> Recorder:
    r = Recorder()
    bus.subscribe(None, r)
    return r


def test_order_is_kept_and_stop_flushes_what_is_queued(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus, batch_size=7, flush_interval=LONG)
    p.start()
    for i in range(100):
        p.queue_event(ev(i))
    p.stop()
    assert rec.items == [str(i) for i in range(100)]
    s = p.stats()
    assert (s["enqueued"], s["flushed"], s["published"], s["queued"]) == (100, 100, 100, 0)
    assert s["max_batch"] <= 7
    assert s["running"] is False
    assert not p.running


def test_flush_returns_after_everything_queued_is_published(bus: EventBus, rec: Recorder) -> None:
    with EventBatchProcessor(bus, batch_size=1000, flush_interval=LONG) as p:
        for i in range(25):
            p.queue_event(ev(i))
        p.flush()
        assert rec.items == [str(i) for i in range(25)]
        p.flush()  # nothing queued: returns at once
        assert p.stats()["queued"] == 0


def test_full_batch_is_published_from_the_batch_thread(bus: EventBus, rec: Recorder) -> None:
    with EventBatchProcessor(bus, batch_size=10, flush_interval=LONG) as p:
        for i in range(10):
            p.queue_event(ev(i))
        # No flush, no stop: only the size trigger can publish these.
        assert wait_until(lambda: len(rec.items) == 10)
        assert threading.get_ident() not in rec.threads
        assert len(rec.threads) == 1


def test_partial_batch_is_published_after_the_interval(bus: EventBus, rec: Recorder) -> None:
    with EventBatchProcessor(bus, batch_size=1000, flush_interval=0.01) as p:
        for i in range(3):
            p.queue_event(ev(i))
        assert wait_until(lambda: len(rec.items) == 3)
        assert rec.items == ["0", "1", "2"]


def test_batches_go_through_the_bus_publish_many_one_call_per_batch() -> None:
    CountingBus.calls = []
    b = CountingBus()
    r = Recorder()
    b.subscribe(None, r)
    p = EventBatchProcessor(b, batch_size=5, flush_interval=LONG)
    p.start()
    for i in range(23):
        p.queue_event(ev(i))
    p.stop()
    b.close()
    assert sum(CountingBus.calls) == 23
    assert all(1 <= n <= 5 for n in CountingBus.calls)
    assert len(CountingBus.calls) == p.stats()["batches"]
    assert r.items == [str(i) for i in range(23)]


def test_not_started_publishes_directly_in_the_caller(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus)
    p.queue_event(ev(1))
    assert rec.items == ["1"]  # delivered before queue_event returned
    assert rec.threads == {threading.get_ident()}
    assert p.stats()["direct"] == 1
    p.flush()
    p.stop()  # stopping a stopped processor is harmless


def test_restartable_and_start_is_idempotent(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus, batch_size=4, flush_interval=LONG)
    for rnd in range(3):
        p.start()
        p.start()
        assert p.running
        for i in range(10):
            p.queue_event(ev(rnd * 10 + i))
        p.stop()
        assert not p.running
        p.queue_event(ev(1000 + rnd))  # stopped: direct
    assert rec.items == [
        str(x) for rnd in range(3) for x in [*range(rnd * 10, rnd * 10 + 10), 1000 + rnd]
    ]
    assert p.stats()["starts"] == 3
    with p:
        p.queue_event(ev(7))
    with p:
        p.queue_event(ev(8))
    assert rec.items[-2:] == ["7", "8"]


def test_many_threads_exact_counts_and_per_thread_order(bus: EventBus, rec: Recorder) -> None:
    # A tiny queue forces producers to wait for room (GIL released) instead of losing events.
    p = EventBatchProcessor(bus, batch_size=16, flush_interval=0.001, max_queued=16)
    n_threads, per = 4, 2000
    with p:

        def produce(t: int) -> None:
            for i in range(per):
                p.queue_event(SystemEvent(f"t{t}", "startup", f"{t}:{i}"))

        run_threads(n_threads, produce)
    assert len(rec.items) == n_threads * per
    for t in range(n_threads):
        mine = [x for x in rec.items if x.startswith(f"{t}:")]
        assert mine == [f"{t}:{i}" for i in range(per)]
    s = p.stats()
    assert s["enqueued"] == s["published"] == n_threads * per
    assert s["overflowed"] == 0 and s["failed"] == 0


def test_flush_and_queue_from_many_threads_while_stopping(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus, batch_size=8, flush_interval=0.002, max_queued=32)
    p.start()

    def work(t: int) -> None:
        for i in range(500):
            p.queue_event(SystemEvent(f"t{t}", "startup", f"{t}:{i}"))
            if i % 50 == 0:
                p.flush()
            if t == 0 and i == 250:
                p.stop()  # the others keep queueing: direct once stopped

    run_threads(3, work)
    p.stop()
    assert len(rec.items) == 1500
    for t in range(3):
        mine = [x for x in rec.items if x.startswith(f"{t}:")]
        assert mine == [f"{t}:{i}" for i in range(500)]


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"flush_interval": 0}, ValueError, "flush_interval"),
        ({"flush_interval": -0.01}, ValueError, "flush_interval"),
        ({"flush_interval": math.nan}, ValueError, "flush_interval"),
        ({"flush_interval": math.inf}, ValueError, "flush_interval"),
        ({"flush_interval": "1"}, TypeError, "flush_interval"),
        ({"max_queued": 0}, ValueError, "max_queued"),
        ({"batch_size": 10, "max_queued": 5}, ValueError, "max_queued"),
    ],
)
def test_bad_arguments_name_the_parameter(
    bus: EventBus, kwargs: dict[str, object], exc: type[Exception], param: str
) -> None:
    with pytest.raises(exc, match=param):
        EventBatchProcessor(bus, **kwargs)  # type: ignore[arg-type]


def test_bad_bus_and_bad_event(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="bus"):
        EventBatchProcessor(object())  # type: ignore[arg-type]
    p = EventBatchProcessor(bus)
    with p:
        with pytest.raises(TypeError, match="event"):
            p.queue_event("not an event")  # type: ignore[arg-type]
    assert p.stats()["enqueued"] == 0


def test_properties_and_defaults(bus: EventBus) -> None:
    p = EventBatchProcessor(bus)
    assert (p.batch_size, p.flush_interval) == (50, 0.010)
    assert p.max_queued >= p.batch_size
    assert p.bus is bus
    assert "EventBatchProcessor(" in repr(p)


def test_handler_errors_stay_in_the_bus(rec: Recorder) -> None:
    errors: list[BaseException] = []
    b = EventBus(on_error=lambda exc, e, s: errors.append(exc))
    got: list[str] = []

    def flaky(e: SystemEvent) -> None:
        if int(e.details) % 3 == 0:
            raise RuntimeError("boom")
        got.append(e.details)

    b.subscribe(None, flaky)
    with EventBatchProcessor(b, batch_size=4, flush_interval=LONG) as p:
        for i in range(12):
            p.queue_event(ev(i))
    assert got == [str(i) for i in range(12) if i % 3]
    assert len(errors) == 4
    assert p.stats()["failed"] == 0
    assert b.get_metrics()["handler_errors"] == 4
    b.close()


def test_publish_failure_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    b = EventBus()
    p = EventBatchProcessor(b, batch_size=100, flush_interval=LONG)
    p.start()
    p.queue_event(ev(1))
    p.queue_event(ev(2))
    b.close()  # the queued batch can no longer be published
    with caplog.at_level(logging.ERROR, logger="tracebus"):
        p.stop()
    s = p.stats()
    assert (s["failed"], s["failed_batches"], s["published"]) == (2, 1, 0)
    assert any("could not be published" in r.getMessage() for r in caplog.records)
    assert any(
        r.exc_info is not None and isinstance(r.exc_info[1], BusClosedError) for r in caplog.records
    )
    with pytest.raises(BusClosedError):
        p.queue_event(ev(3))  # stopped: direct publish, which raises to the caller


def test_handler_queueing_from_the_batch_thread_does_not_deadlock(bus: EventBus) -> None:
    # The queue's bound equals the batch size: a handler that queued into its own full queue
    # would wait for itself forever. It publishes directly instead (a nested publish).
    p = EventBatchProcessor(bus, batch_size=2, flush_interval=LONG, max_queued=2)
    seen: list[str] = []

    def handler(e: SystemEvent) -> None:
        seen.append(e.details)
        if e.component == "parent":
            p.queue_event(SystemEvent("child", "startup", "child-of-" + e.details))
            p.flush()  # from the batch thread: returns at once (cannot wait for itself)

    bus.subscribe(None, handler)
    with p:
        for i in range(20):
            p.queue_event(SystemEvent("parent", "startup", str(i)))
    parents = [x for x in seen if not x.startswith("child")]
    assert parents == [str(i) for i in range(20)]
    assert sorted(x for x in seen if x.startswith("child")) == sorted(
        f"child-of-{i}" for i in range(20)
    )
    # each child directly follows its parent (nested publish semantics)
    for i in range(20):
        assert seen[seen.index(str(i)) + 1] == f"child-of-{i}"


def test_stop_from_a_handler_does_not_deadlock(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus, batch_size=1, flush_interval=LONG)
    bus.subscribe(None, lambda e: p.stop() if e.details == "stop" else None)
    p.start()
    p.queue_event(ev(0))
    p.queue_event(SystemEvent("c", "startup", "stop"))
    assert wait_until(lambda: not p.running)
    p.start()  # restart from the main thread joins the old thread
    p.queue_event(ev(1))
    p.stop()
    assert rec.items[0] == "0" and "stop" in rec.items and rec.items[-1] == "1"


def test_dropped_processor_thread_finishes_its_queue(bus: EventBus, rec: Recorder) -> None:
    p = EventBatchProcessor(bus, batch_size=1000, flush_interval=LONG)
    p.start()
    for i in range(5):
        p.queue_event(ev(i))
    del p  # the thread is asked to stop: it publishes what is queued and exits
    assert wait_until(lambda: len(rec.items) == 5, timeout=WAIT)
    assert rec.items == [str(i) for i in range(5)]


def test_queued_events_are_published_at_interpreter_exit() -> None:
    import subprocess
    import sys

    script = (
        "import tracebus\n"
        "bus = tracebus.EventBus()\n"
        "bus.subscribe(None, lambda e: print('got', e.details, flush=True))\n"
        "p = tracebus.EventBatchProcessor(bus, batch_size=1000, flush_interval=3600)\n"
        "p.start()\n"
        "for i in range(5):\n"
        "    p.queue_event(tracebus.SystemEvent('c', 'startup', str(i)))\n"
        "print('exiting', flush=True)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT * 3
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["exiting", *[f"got {i}" for i in range(5)], ""]


def _watchdog(bus: EventBus) -> threading.Timer:
    """Closes the bus after WAIT seconds: a deadlock then fails the test (closing wakes a
    publisher blocked on a handler's buffer) instead of hanging it."""
    t = threading.Timer(WAIT, bus.close)
    t.daemon = True
    t.start()
    return t


def test_thread_handler_queueing_while_the_batch_thread_waits_on_it(bus: EventBus) -> None:
    # The batch thread blocks on the thread handler's full buffer (block strategy) while
    # the handler queues into the full batch queue: the handler must not wait (it overflows
    # the bound, counted) or both would wait for each other forever.
    p = EventBatchProcessor(bus, batch_size=4, flush_interval=0.001, max_queued=4)
    seen: list[str] = []
    done = threading.Event()

    def handler(e: SystemEvent) -> None:
        seen.append(e.details)
        if e.component == "parent":
            p.queue_event(SystemEvent("child", "startup", "child-" + e.details))
        if len(seen) == 600:
            done.set()

    bus.subscribe(None, handler, mode="thread", buffer_size=2)
    dog = _watchdog(bus)
    p.start()
    for i in range(300):
        p.queue_event(SystemEvent("parent", "startup", str(i)))
    finished = done.wait(WAIT * 2)
    dog.cancel()
    p.stop()
    assert finished and not bus.closed, "deadlock: the watchdog had to close the bus"
    assert [x for x in seen if not x.startswith("child")] == [str(i) for i in range(300)]
    assert sorted(x for x in seen if x.startswith("child")) == sorted(
        f"child-{i}" for i in range(300)
    )
    s = p.stats()
    assert s["enqueued"] == s["published"] == 600


def test_async_handler_queueing_while_the_batch_thread_waits_on_it(bus: EventBus) -> None:
    import asyncio

    p = EventBatchProcessor(bus, batch_size=4, flush_interval=0.001, max_queued=4)

    async def main() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()

        async def handler(e: SystemEvent) -> None:
            seen.append(e.details)
            if e.component == "parent":
                p.queue_event(SystemEvent("child", "startup", "child-" + e.details))
            if len(seen) == 400:
                done.set()

        bus.subscribe(None, handler, buffer_size=2)
        producer = threading.Thread(
            target=lambda: [
                p.queue_event(SystemEvent("parent", "startup", str(i))) for i in range(200)
            ]
        )
        producer.start()
        try:
            await asyncio.wait_for(done.wait(), WAIT * 2)
        except TimeoutError:
            pass
        await asyncio.to_thread(producer.join)
        return seen

    dog = _watchdog(bus)
    p.start()
    seen = asyncio.run(main())
    dog.cancel()
    p.stop()
    assert not bus.closed, "deadlock: the watchdog had to close the bus"
    assert [x for x in seen if not x.startswith("child")] == [str(i) for i in range(200)]
    assert len(seen) == 400
