"""Plan test 14: soak and close. Many events and 100k subscribe/unsubscribe cycles with
memory flat after warm-up (tracemalloc for Python objects, RSS from /proc/self/statm for
everything, including Rust allocations); dropped subscriptions and handlers are garbage
collected; close() while publishers are blocked returns them, and buffered events are
delivered or counted.

Memory bounds are generous (a leak of even a few bytes per event or cycle blows through
them at these sizes); the measured numbers are printed with the figures."""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable

import pytest
from reliability_util import WAIT, Figures, run_threads, scaled, wait_until

import tracebus as tb
from tracebus import (
    BufferAction,
    Event,
    EventBus,
    EventType,
    ServiceState,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
)

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def mb(n: float) -> float:
    return round(n / 1e6, 3)


class Meter:
    """Python-heap (tracemalloc) and RSS growth between ``mark`` and ``growth``."""

    def __enter__(self) -> Meter:
        tracemalloc.start()
        return self

    def mark(self) -> None:
        gc.collect()
        self.py0 = tracemalloc.get_traced_memory()[0]
        self.rss0 = rss()

    def growth(self) -> tuple[int, int]:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - self.py0, rss() - self.rss0

    def __exit__(self, *exc: object) -> None:
        tracemalloc.stop()


def test_event_soak_memory_is_flat(figures: Figures) -> None:
    bus = EventBus()  # default history of 10k events: bounded, not a leak
    store = StateStore()
    handled = [0]
    bus.subscribe(None, lambda e: handled.__setitem__(0, handled[0] + 1))
    ch = bus.subscribe_channel(None, 1000, SimpleBufferStrategy(BufferAction.EVICT_OLDEST))
    watcher = store.subscribe(None, buffer_size=100)
    adapter = tb.EventBusAdapter(bus, store)
    states = [ServiceState.STARTING, ServiceState.RUNNING, ServiceState.FAILED]
    warmup, n = 50_000, scaled(400_000)

    def run(count: int, start: int) -> None:
        for i in range(start, start + count):
            bus.publish(Event(EventType.SYSTEM_STARTUP, f"s{i % 64}", metadata={"i": i}))
            if i % 8 == 0:
                adapter.report(
                    tb.ManagedServiceUpdate(ServiceType.PORT_FORWARD, f"svc{i % 50}", states[i % 3])
                )
            if i % 4096 == 0:
                ch.drain()
                watcher.drain()

    with Meter() as m:
        run(warmup, 0)
        m.mark()
        run(n, warmup)
        py_growth, rss_growth = m.growth()
    total = warmup + n
    metrics = bus.get_metrics()
    figures.events = total
    figures.threads = 1
    figures.published = metrics["events_published"]
    figures.delivered = handled[0]
    figures.evicted = ch.stats()["evicted"]
    figures.dropped = watcher.stats()["dropped"]
    figures.extra["py_heap_growth_bytes"] = py_growth
    figures.extra["rss_growth_mb"] = mb(rss_growth)
    figures.extra["rss_mb"] = mb(rss())
    bus.close()
    assert handled[0] == metrics["events_published"]
    # Flat: well under a byte per event after warm-up (a per-event leak of even one small
    # object would be tens of MB here).
    assert py_growth < 2_000_000, py_growth
    assert rss_growth < 32_000_000, rss_growth


def test_subscribe_unsubscribe_cycles_memory_is_flat(figures: Figures) -> None:
    bus = EventBus(history_size=0)
    store = StateStore()
    base_threads = threading.active_count()
    cycles = scaled(100_000)
    warmup = 10_000
    kinds: list[Callable[[int], None]] = [
        lambda i: bus.subscribe(tb.filter_by_source(f"s{i % 7}"), print).close(),
        lambda i: bus.unsubscribe(bus.subscribe_channel(None, 8)),
        lambda i: store.subscribe(f"svc{i % 5}", buffer_size=4).close(),
        lambda i: bus.subscribe(tb.filter_by(bool), print).close(),
    ]

    def run(count: int) -> None:
        for i in range(count):
            kinds[i % len(kinds)](i)
            if i % 1000 == 0:
                bus.publish(Event(EventType.SYSTEM_STARTUP, "x"))

    with Meter() as m:
        run(warmup)
        m.mark()
        run(cycles)
        # Thread-mode subscriptions: fewer (each starts an OS thread), same check.
        for _ in range(scaled(2_000)):
            bus.subscribe(None, print, mode="thread").close()
        py_growth, rss_growth = m.growth()
    assert bus.subscription_count == 0
    assert store.get_metrics()["active_subscriptions"] == 0
    assert wait_until(lambda: threading.active_count() <= base_threads)
    figures.events = cycles + warmup + scaled(2_000)
    figures.threads = 1
    figures.published = bus.get_metrics()["events_published"]
    figures.extra["cycles"] = cycles + warmup + scaled(2_000)
    figures.extra["py_heap_growth_bytes"] = py_growth
    figures.extra["rss_growth_mb"] = mb(rss_growth)
    bus.close()
    assert py_growth < 1_000_000, py_growth
    assert rss_growth < 32_000_000, rss_growth


class Handler:
    def __init__(self, bus: EventBus | None = None) -> None:
        self.bus = bus  # a reference cycle when set: bus -> subscription -> handler -> bus
        self.n = 0

    def __call__(self, e: Event) -> None:
        self.n += 1

    def method(self, e: Event) -> None:
        self.n += 1


def _collected(ref: weakref.ref[object]) -> bool:
    for _ in range(3):
        gc.collect()
    return ref() is None


def test_dropped_subscriptions_and_handlers_are_collected(figures: Figures) -> None:
    cases = 0
    # 1. unsubscribed handler, subscription object dropped
    bus = EventBus()
    h = Handler()
    ref = weakref.ref(h)
    bus.subscribe(None, h).close()
    del h
    assert _collected(ref)
    cases += 1
    # 2. unsubscribed but the Subscription object kept: it still lets the handler go only
    #    when the Subscription itself goes.
    h = Handler()
    ref = weakref.ref(h)
    sub = bus.subscribe(None, h.method)
    bus.publish(Event(EventType.SYSTEM_STARTUP, "x"))
    sub.close()
    del h
    del sub
    assert _collected(ref)
    cases += 1
    # 3. a cycle through the bus (handler holds the bus), never unsubscribed or closed
    for mode in ("sync", "thread"):
        b2 = EventBus()
        h = Handler(b2)
        ref = weakref.ref(h)
        b2.subscribe(None, h, mode=mode)
        b2.publish(Event(EventType.SYSTEM_STARTUP, "x"))
        if mode == "thread":
            assert wait_until(lambda h=h: h.n == 1)
        del h, b2
        assert _collected(ref), f"{mode} handler in a cycle with its bus was not collected"
        cases += 1
    # 4. a filter predicate in a cycle with the bus
    b3 = EventBus()
    pred = Handler(b3)
    ref = weakref.ref(pred)
    b3.subscribe(tb.filter_by(pred), print)
    del pred, b3
    assert _collected(ref)
    cases += 1
    # 5. the error hook in a cycle with its bus
    b4 = EventBus()
    hook = Handler(b4)
    ref = weakref.ref(hook)
    b4.set_error_handler(lambda exc, e, s, hook=hook: hook(e))
    del hook, b4
    assert _collected(ref)
    cases += 1
    # 6. channels of a dropped bus and of a dropped store, with buffered events
    b5 = EventBus()
    ch = b5.subscribe_channel(None, 10)
    # (metadata is checked to be JSON when made: the object goes in a list filled after)
    ev = Event(EventType.SYSTEM_STARTUP, "x", metadata={"payload": []})
    ev.metadata["payload"].append(Handler())
    ev_ref = weakref.ref(ev.metadata["payload"][0])
    b5.publish(ev)
    del ev, b5
    gc.collect()
    assert ch.closed  # the bus went away: its channel is closed, events still readable
    assert len(ch.drain()) == 1
    del ch
    assert _collected(ev_ref)
    cases += 1
    bus.close()
    figures.events = cases
    figures.extra["gc_cases"] = cases


def test_close_returns_blocked_publishers_and_accounts_buffered(figures: Figures) -> None:
    bus = EventBus(history_size=0)
    release = threading.Event()
    handled = [0]

    def slow(e: Event) -> None:
        release.wait(WAIT)
        handled[0] += 1

    sub = bus.subscribe(None, slow, mode="thread", buffer_size=8)  # default: block
    ch = bus.subscribe_channel(None, 8, SimpleBufferStrategy(BufferAction.BLOCK))
    publishers = 6
    per = 50
    returned = [0]
    failures: list[BaseException] = []

    def publisher(p: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(per):
                try:
                    bus.publish(Event(EventType.SYSTEM_STARTUP, f"p{p}", timestamp=float(n)))
                except tb.BusClosedError:
                    pass  # publishes after close are refused with a clear error
                except BaseException as e:
                    failures.append(e)
            returned[0] += 1

        return run

    threads = [threading.Thread(target=publisher(p), daemon=True) for p in range(publishers)]
    for t in threads:
        t.start()
    # Everyone is stuck: the handler waits, its buffer and the channel are full.
    assert wait_until(lambda: sub.stats()["blocked"] + ch.stats()["blocked"] >= publishers)
    t0 = time.perf_counter()
    release.set()  # let the handler finish what is buffered once close asks it to
    bus.close(timeout=WAIT)
    for t in threads:
        t.join(WAIT)
    woke = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads)
    assert returned[0] == publishers and failures == []
    # Buffered events are delivered (handler thread) or stay receivable (channel), and
    # every event is accounted for.
    s = sub.stats()
    assert s["buffered"] == 0
    assert s["sent"] == s["delivered"] + s["dropped"] + s["evicted"]
    assert handled[0] == s["delivered"] == sub.delivered
    c = ch.stats()
    buffered = len(ch.drain())
    assert c["buffered"] == buffered
    assert c["sent"] == c["delivered"] + c["dropped"] + c["evicted"] + c["buffered"]
    figures.events = publishers * per
    figures.threads = publishers + 1
    figures.faults = 1
    figures.published = bus.get_metrics()["events_published"]
    figures.delivered = handled[0] + c["delivered"] + buffered
    figures.dropped = s["dropped"] + c["dropped"]
    figures.lost = (s["sent"] - s["delivered"] - s["dropped"]) + (
        c["sent"] - c["delivered"] - c["dropped"] - c["buffered"]
    )
    figures.extra["close_to_return_s"] = round(woke, 3)


@pytest.mark.parametrize("rounds", [scaled(200)])
def test_close_races_with_publishers_never_hangs(figures: Figures, rounds: int) -> None:
    """Many short lives: publishers, a block channel and a thread handler, closed at a
    random moment; every round ends and accounts for every event."""
    published = delivered = dropped = 0
    for r in range(rounds):
        bus = EventBus(history_size=0)
        ch = bus.subscribe_channel(None, 2, SimpleBufferStrategy(BufferAction.BLOCK))
        sub = bus.subscribe(None, lambda e: None, mode="thread", buffer_size=2)

        def pub(bus: EventBus = bus) -> None:
            for _ in range(50):
                try:
                    bus.publish(Event(EventType.SYSTEM_STARTUP, "x"))
                except tb.BusClosedError:
                    return

        def closer(bus: EventBus = bus, r: int = r) -> None:
            time.sleep((r % 5) * 0.0005)
            bus.close()

        run_threads([pub, pub, closer], timeout=WAIT)
        c = ch.stats()
        s = sub.stats()
        assert c["sent"] == c["delivered"] + c["dropped"] + c["buffered"]
        # close() let the handler thread deliver what was buffered before returning.
        assert s["buffered"] == 0
        assert s["sent"] == s["delivered"] + s["dropped"]
        assert sub.delivered == s["delivered"]
        published += c["sent"] + s["sent"]
        delivered += c["buffered"] + s["delivered"]
        dropped += c["dropped"] + s["dropped"]
    figures.events = published
    figures.threads = 3
    figures.faults = rounds
    figures.published = published
    figures.delivered = delivered
    figures.dropped = dropped
    figures.extra["rounds"] = rounds
