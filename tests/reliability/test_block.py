"""Plan test 3: block backpressure. Nothing is lost under a tiny buffer; a stalled consumer
makes a publish with a timeout fail with ``PublishTimeoutError``; closing wakes blocked
publishers.

Durations are printed, never asserted against a speed: the only time bounds are liveness
bounds (``WAIT``) that fail a test only if something never happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from reliability_util import WAIT, Figures, run_threads, scaled, wait_until

import tracebus
from tracebus import (
    BufferAction,
    ChannelClosed,
    Event,
    EventBus,
    EventType,
    PublishTimeoutError,
    SimpleBufferStrategy,
)

BLOCK = SimpleBufferStrategy(BufferAction.BLOCK)
PUBLISHERS = 4
PER_PUBLISHER = scaled(250_000)  # 1M events at CI size, as in the plan


def ev(p: int, n: int) -> Event:
    return Event(EventType.SYSTEM_STARTUP, f"p{p}", timestamp=float(n))


def test_block_loses_nothing(figures: Figures) -> None:
    bus = EventBus(history_size=0)
    ch = bus.subscribe_channel(None, 16, BLOCK)
    last: dict[str, int] = {}
    counts = {"got": 0, "out_of_order": 0}

    def consumer() -> None:
        while True:
            items = ch.drain(64)
            if not items:
                try:
                    items = [ch.recv(timeout=0.05)]
                except TimeoutError:
                    continue
                except ChannelClosed:
                    return
            for e in items:
                n = int(e.timestamp)
                if n <= last.get(e.source, -1):
                    counts["out_of_order"] += 1
                last[e.source] = n
            counts["got"] += len(items)

    def publisher(p: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(PER_PUBLISHER):
                bus.publish(ev(p, n))

        return run

    c = threading.Thread(target=consumer, daemon=True)
    c.start()
    t0 = time.perf_counter()
    run_threads([publisher(p) for p in range(PUBLISHERS)])
    ch.close()
    c.join(WAIT)
    assert not c.is_alive()
    s = ch.stats()
    total = PUBLISHERS * PER_PUBLISHER
    figures.events = total
    figures.threads = PUBLISHERS + 1
    figures.add(
        published=s["sent"],
        delivered=counts["got"],
        dropped=s["dropped"],
        evicted=s["evicted"],
        errors=counts["out_of_order"],
        lost=total - counts["got"],
    )
    figures.extra["blocked_sends"] = s["blocked"]
    figures.extra["seconds"] = round(time.perf_counter() - t0, 2)
    assert s["sent"] == total
    assert counts["got"] == s["delivered"] == total
    assert s["dropped"] == s["evicted"] == s["buffered"] == 0
    assert counts["out_of_order"] == 0
    assert all(last[f"p{p}"] == PER_PUBLISHER - 1 for p in range(PUBLISHERS))
    m = bus.get_metrics()
    assert m["events_published"] == m["events_delivered"] == total
    bus.close()


def test_stalled_consumer_times_out_with_clear_error(figures: Figures) -> None:
    bus = EventBus(history_size=0)
    stalled = bus.subscribe_channel(None, 16, BLOCK)
    other = bus.subscribe_channel(None, 1000, SimpleBufferStrategy(BufferAction.DROP))
    for n in range(16):
        bus.publish(ev(0, n))
    timeouts = 5
    elapsed = []
    for n in range(timeouts):
        t0 = time.perf_counter()
        with pytest.raises(PublishTimeoutError, match="stayed full"):
            bus.publish(ev(0, 16 + n), timeout=0.1)
        elapsed.append(time.perf_counter() - t0)
    # The timeout is honoured (never cut short) and the call returns (liveness bound only).
    assert min(elapsed) >= 0.1
    assert max(elapsed) < WAIT
    # The other subscriber got every event, including the timed-out ones.
    assert len(other.drain()) == 16 + timeouts
    s = stalled.stats()
    assert (s["sent"], s["buffered"], s["dropped"]) == (16 + timeouts, 16, timeouts)
    assert bus.get_metrics()["events_dropped"] == timeouts
    # publish_many reports the timeout too, after delivering to everyone else.
    with pytest.raises(PublishTimeoutError):
        bus.publish_many([ev(1, 0), ev(1, 1)], timeout=0.05)
    assert len(other.drain()) == 2
    # Once the consumer catches up, publishing with a timeout succeeds again.
    assert len(stalled.drain()) == 16
    assert bus.publish(ev(2, 0), timeout=0.1) == 2
    figures.events = 16 + timeouts + 3
    figures.threads = 1
    figures.faults = timeouts + 2
    s = stalled.stats()
    figures.add(
        published=s["sent"],
        delivered=s["delivered"],
        dropped=s["dropped"],
        evicted=s["evicted"],
        errors=timeouts + 1,
        lost=s["sent"] - s["delivered"] - s["dropped"] - s["buffered"],
    )
    figures.extra["timeout_s"] = 0.1
    figures.extra["max_elapsed_s"] = round(max(elapsed), 3)
    bus.close()


def _blocked_publishers(bus: EventBus, n: int) -> tuple[list[threading.Thread], list[object]]:
    results: list[object] = []

    def run(i: int) -> None:
        try:
            results.append(bus.publish(ev(100 + i, 0)))
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


@pytest.mark.parametrize("closer", ["bus.close", "channel.close", "bus.unsubscribe"])
def test_close_wakes_blocked_publishers(figures: Figures, closer: str) -> None:
    bus = EventBus(history_size=0)
    ch = bus.subscribe_channel(None, 4, BLOCK)
    for n in range(4):
        bus.publish(ev(0, n))
    waiters = 6
    threads, results = _blocked_publishers(bus, waiters)
    # All of them are waiting for room (each blocked send is counted once it waits).
    assert wait_until(lambda: ch.stats()["blocked"] == waiters)
    time.sleep(0.05)
    assert all(t.is_alive() for t in threads)
    t0 = time.perf_counter()
    if closer == "bus.close":
        bus.close()
    elif closer == "channel.close":
        ch.close()
    else:
        assert bus.unsubscribe(ch) is True
    for t in threads:
        t.join(WAIT)
    woke = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), "close did not wake blocked publishers"
    # Woken publishes return normally: the event was counted as dropped for that subscriber.
    assert results == [0] * waiters
    s = ch.stats()
    assert s["sent"] == 4 + waiters
    assert s["dropped"] == waiters
    assert s["buffered"] == 4  # buffered events stay receivable after close
    assert len(ch.drain()) == 4
    with pytest.raises(ChannelClosed):
        ch.recv(timeout=0.01)
    figures.events = 4 + waiters
    figures.threads = waiters + 1
    figures.faults = 1
    s = ch.stats()
    figures.add(
        published=s["sent"],
        delivered=s["delivered"],
        dropped=s["dropped"],
        evicted=s["evicted"],
        lost=s["sent"] - s["delivered"] - s["dropped"] - s["buffered"],
    )
    figures.extra["wake_s"] = round(woke, 4)
    bus.close()


def test_close_wakes_blocked_standalone_channel_senders(figures: Figures) -> None:
    ch = tracebus.Channel(2, BLOCK)
    ch.send(ev(0, 0))
    ch.send(ev(0, 1))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ch.send(ev(1, 0))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: ch.stats()["blocked"] == 3)
    ch.close()
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 3 and all(isinstance(e, ChannelClosed) for e in errors)
    s = ch.stats()
    assert (s["sent"], s["dropped"], s["buffered"]) == (5, 3, 2)
    figures.events = 5
    figures.threads = 4
    figures.faults = 1
    figures.add(published=5, delivered=0, dropped=3, errors=3)
