"""Issue 12, items 4 and 5: who may wait on whom.

A block-action send into a full buffer waits only while waiting can end: when the sender is
the buffer's own consumer, or the consumer waits (transitively) on the sender (thread-mode
handlers publishing to each other, a store watcher feeding a handler that writes the store),
the send takes the strategy's ``on_self_block`` action ("drop" by default, "evict_oldest",
"raise"), counted in ``overflowed``. No buffer ever holds more than its capacity.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from reliability_util import WAIT, Figures, wait_until

from tracebus import (
    BufferAction,
    Event,
    EventBus,
    EventType,
    ManagedServiceUpdate,
    PriorityBufferStrategy,
    PublishDeadlockError,
    ServiceState,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
    Subscription,
    filter_by_source,
)

BLOCK = SimpleBufferStrategy(BufferAction.BLOCK)


def ev(source: str) -> Event:
    return Event(EventType.HEALTH_CHECK, source)


def accounted(st: dict[str, Any]) -> bool:
    return bool(st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"])


def quiescent(subs: list[Subscription], counter: list[int]) -> bool:
    """True once every buffer is empty and no handler ran for 0.3 s."""
    before = counter[0]
    if any(s.stats()["buffered"] for s in subs):
        return False
    time.sleep(0.3)
    return counter[0] == before and not any(s.stats()["buffered"] for s in subs)


def relay_pair(
    bus: EventBus, calls: list[int], peak: list[int], strategy: Any = None
) -> list[Subscription]:
    """Thread handlers on sources "a" and "b", buffers of 1: each republishes what it gets,
    twice (so both buffers fill at once), to the other, 6 hops deep, seeded from 10 of each."""
    subs: list[Subscription] = []

    def relay(to: str) -> Any:
        def handler(e: Event) -> None:
            calls[0] += 1
            peak[0] = max(peak[0], *(s.stats()["buffered"] for s in subs))
            if e.depth < 6:
                for _ in range(2):
                    bus.publish(Event(EventType.HEALTH_CHECK, to, parent_id=e.event_id))

        return handler

    for src, to in (("a", "b"), ("b", "a")):
        subs.append(
            bus.subscribe(
                filter_by_source(src), relay(to), mode="thread", buffer_size=1, strategy=strategy
            )
        )
    for _ in range(10):
        bus.publish(ev("a"))
        bus.publish(ev("b"))
    return subs


@pytest.mark.timeout(60)
def test_thread_handlers_publishing_to_each_other_never_deadlock(figures: Figures) -> None:
    bus = EventBus(on_error=lambda *a: None)
    calls = [0]
    peak = [0]
    subs: list[Subscription] = []
    try:
        subs = relay_pair(bus, calls, peak)
        # A deadlock leaves both buffers full forever: never quiescent.
        assert wait_until(lambda: quiescent(subs, calls), timeout=WAIT)
        stats = [s.stats() for s in subs]
        assert all(accounted(st) for st in stats), stats
        assert peak[0] <= 1 and all(st["buffered"] <= st["capacity"] for st in stats)
        # What could not wait was dropped, counted (and nothing else was).
        assert all(st["dropped"] == st["overflowed"] for st in stats), stats
        figures.events = sum(st["sent"] for st in stats)
        figures.delivered = sum(st["delivered"] for st in stats)
        figures.dropped = sum(st["dropped"] for st in stats)
        figures.threads = 3
        figures.extra["overflowed"] = sum(st["overflowed"] for st in stats)
    finally:
        bus.close(timeout=WAIT)


@pytest.mark.timeout(60)
def test_a_cycle_with_on_self_block_raise_fails_the_publish_with_a_clear_error() -> None:
    errors: list[BaseException] = []
    bus = EventBus(on_error=lambda exc, e, s: errors.append(exc))
    raising = SimpleBufferStrategy(BufferAction.BLOCK, on_self_block="raise")
    calls = [0]
    subs: list[Subscription] = []
    try:
        subs = relay_pair(bus, calls, [0], raising)
        assert wait_until(lambda: quiescent(subs, calls), timeout=WAIT)
        stats = [s.stats() for s in subs]
        overflowed = sum(st["overflowed"] for st in stats)
        assert overflowed >= 1  # each relay publishes into the other's full buffer
        # Each one reached the publishing handler as PublishDeadlockError (then on_error).
        deadlocks = [e for e in errors if isinstance(e, PublishDeadlockError)]
        assert len(deadlocks) >= 1 and "deadlock" in str(deadlocks[0])
        assert all(accounted(st) for st in stats), stats
    finally:
        bus.close(timeout=WAIT)


@pytest.mark.timeout(60)
def test_store_watcher_and_thread_handler_feeding_each_other_never_deadlock() -> None:
    # Handler thread T writes the store; the watcher thread W publishes each change back to
    # the bus, into T's buffer. T waits on W's full buffer while W waits on T's.
    bus = EventBus(on_error=lambda *a: None)
    store = StateStore()
    watch = store.subscribe(buffer_size=1, strategy=BufferAction.BLOCK)
    calls = [0]

    def handler(e: Event) -> None:
        calls[0] += 1
        for i in range(3):
            upd = ManagedServiceUpdate(
                ServiceType.PORT_FORWARD, f"{e.source}-{calls[0]}-{i}", ServiceState.RUNNING
            )
            store.set_service_state(upd)

    def watcher() -> None:
        for change in watch:
            if change.label.count("-") < 4:  # a few rounds, then the cascade ends
                try:
                    bus.publish(ev(change.label))
                except Exception:
                    return

    sub = bus.subscribe(None, handler, mode="thread", buffer_size=1)
    w = threading.Thread(target=watcher, daemon=True)
    w.start()
    try:
        for i in range(5):
            bus.publish(ev(f"s{i}"))
        assert wait_until(
            lambda: quiescent([sub], calls) and watch.stats()["buffered"] == 0, timeout=WAIT
        )
        for st in (sub.stats(), watch.stats()):
            assert accounted(st) and st["buffered"] <= st["capacity"], st
    finally:
        watch.close()
        bus.close(timeout=WAIT)
        w.join(WAIT)


@pytest.mark.timeout(60)
def test_a_store_watchers_subscribing_thread_never_grows_its_buffer(figures: Figures) -> None:
    store = StateStore()
    watch = store.subscribe(buffer_size=10, strategy=BufferAction.BLOCK)
    n = 10_000
    for i in range(n):  # this thread is the watcher's consumer until another receives
        store.set_service_state(
            ManagedServiceUpdate(ServiceType.PORT_FORWARD, f"s{i}", ServiceState.RUNNING)
        )
    st = watch.stats()
    assert st["buffered"] == 10, st  # was 10,000 when the consumer's sends were admitted
    assert (st["overflowed"], st["dropped"]) == (n - 10, n - 10)
    assert accounted(st)
    figures.events = n
    figures.dropped = st["dropped"]
    watch.close()


@pytest.mark.timeout(60)
def test_an_async_subscriptions_loop_never_grows_its_buffer() -> None:
    async def main() -> dict[str, Any]:
        bus = EventBus()

        async def handler(e: Event) -> None:
            pass

        sub = bus.subscribe(None, handler, buffer_size=10)
        for i in range(1000):  # from the loop's own thread, without yielding to the pump
            bus.publish(ev(str(i)))
        st = sub.stats()
        bus.close()
        return st

    st = asyncio.run(main())
    assert st["buffered"] == 10 and st["overflowed"] == st["dropped"] == 990, st
    assert accounted(st)


@pytest.mark.parametrize(
    "strategy",
    [
        SimpleBufferStrategy(BufferAction.BLOCK, on_self_block="evict_oldest"),
        PriorityBufferStrategy(BufferAction.BLOCK, on_self_block="evict_oldest"),
    ],
)
@pytest.mark.timeout(60)
def test_on_self_block_evict_oldest_keeps_the_newest(strategy: Any) -> None:
    bus = EventBus()
    got: list[str] = []

    def handler(e: Event) -> None:
        if e.source == "root":
            for i in range(5):
                bus.publish(ev(f"child{i}"))  # into its own buffer of 2
        got.append(e.source)

    sub = bus.subscribe(None, handler, mode="thread", buffer_size=2, strategy=strategy)
    try:
        bus.publish(ev("root"))
        assert wait_until(lambda: len(got) == 3)
        assert got == ["root", "child3", "child4"]
        st = sub.stats()
        assert (st["overflowed"], st["evicted"], st["dropped"]) == (3, 3, 0), st
        assert accounted(st)
    finally:
        bus.close(timeout=WAIT)


def test_on_self_block_is_checked_and_shown() -> None:
    assert SimpleBufferStrategy("block").on_self_block == "drop"
    s = PriorityBufferStrategy(on_self_block="raise")
    assert s.on_self_block == "raise" and "raise" in repr(s)
    with pytest.raises(ValueError, match="on_self_block"):
        SimpleBufferStrategy("block", on_self_block="grow")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_self_block"):
        SimpleBufferStrategy("block", on_self_block=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_self_block"):
        StateStore().subscribe(strategy=SimpleBufferStrategy("block", on_self_block="raise"))


def test_channel_send_from_its_consumer_with_raise_is_a_clear_error() -> None:
    from tracebus import Channel

    ch = Channel(1, SimpleBufferStrategy("block", on_self_block="raise"))
    ch.send(ev("x"))
    assert ch.try_recv() is not None  # this thread is now the consumer
    ch.send(ev("y"))
    with pytest.raises(PublishDeadlockError, match="deadlock"):
        ch.send(ev("z"))
    st = ch.stats()
    assert (st["buffered"], st["overflowed"], st["dropped"]) == (1, 1, 1)


@pytest.mark.timeout(60)
def test_flush_from_a_thread_handler_whose_buffer_the_flush_fills_does_not_deadlock() -> None:
    from tracebus import EventBatchProcessor

    bus = EventBus(on_error=lambda *a: None)
    batcher = EventBatchProcessor(bus, batch_size=100, flush_interval=60.0)
    batcher.start()
    flushed = threading.Event()

    def handler(e: Event) -> None:
        if e.source == "go":
            for _ in range(20):  # each comes back to this handler's buffer of 1
                batcher.queue_event(ev("echo"))
            batcher.flush()  # the flush thread waits for room only this thread makes
            flushed.set()

    sub = bus.subscribe(None, handler, mode="thread", buffer_size=1)
    try:
        bus.publish(ev("go"))
        assert flushed.wait(WAIT), "flush() from the handler deadlocked"
        assert wait_until(lambda: sub.stats()["buffered"] == 0)
        st = sub.stats()
        assert st["buffered"] <= 1 and accounted(st)
        assert st["dropped"] == st["overflowed"] >= 1  # what could not wait: counted
        assert batcher.stats()["flushed"] == 20
    finally:
        batcher.stop()
        bus.close(timeout=WAIT)
