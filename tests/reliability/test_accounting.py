"""Plan tests 1 and 2: exact accounting under 8 publisher threads and slow consumers, for
evict-oldest, drop-newest and priority buffers.

Every subscriber must account for every event exactly (``sent == delivered + dropped +
evicted``, nothing left buffered), receive no duplicates, and see each publisher's events
in that publisher's order. Under priority, nothing more severe than what is kept is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from reliability_util import STRESS, Figures, run_threads, scaled

import tracebus
from tracebus import (
    BufferAction,
    ChannelClosed,
    Event,
    EventBus,
    EventType,
    PriorityBufferStrategy,
    Severity,
    SimpleBufferStrategy,
)

PUBLISHERS = 8
# The plan's size: 8 x 125k = 1M events per run.
PER_PUBLISHER = scaled(125_000)
SUBSCRIBERS = 4
CAPACITY = 1024

SEVERITIES = [Severity.DEBUG, Severity.INFO, Severity.WARN, Severity.ERROR]
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def severity_of(p: int, n: int) -> Severity:
    # Mostly debug/info, a few warnings and errors (fewer than CAPACITY of them in a run),
    # deterministic per (publisher, n).
    m = 10_000 * STRESS
    h = (n * 2654435761 + p * 40503) % m
    return SEVERITIES[0 if h < m * 6 // 10 else 1 if h < m - 10 else 2 if h < m - 5 else 3]


def plain_event(p: int, n: int) -> Event:
    # The timestamp carries the per-publisher sequence number (a cheap float getter).
    return Event(EventType.SYSTEM_STARTUP, f"p{p}", timestamp=float(n))


def graded_event(p: int, n: int) -> Event:
    return Event(EventType.SYSTEM_STARTUP, f"p{p}", severity=severity_of(p, n), timestamp=float(n))


@dataclass
class Received:
    """What one consumer saw."""

    count: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    last: dict[str, int] = field(default_factory=dict)
    seen: dict[str, bytearray] = field(default_factory=dict)
    keys: list[tuple[int, int]] = field(default_factory=list)

    def take(self, events: list[Event], keep_keys: bool) -> None:
        for e in events:
            src = e.source
            n = int(e.timestamp)
            seen = self.seen.get(src)
            if seen is None:
                seen = self.seen[src] = bytearray(PER_PUBLISHER)
            if seen[n]:
                self.duplicated += 1
            seen[n] = 1
            if n <= self.last.get(src, -1):
                self.out_of_order += 1
            self.last[src] = n
            if keep_keys:
                self.keys.append((int(src[1:]), n))
        self.count += len(events)


def consume(ch: tracebus.Channel, rec: Received, slow: bool, keep_keys: bool = False) -> None:
    """Drains ``ch`` until it is closed and empty; the slow one takes small batches and naps."""
    batch = 8 if slow else 512
    while True:
        items = ch.drain(batch)
        if items:
            rec.take(items, keep_keys)
            if slow:
                time.sleep(0.0005)
            continue
        try:
            rec.take([ch.recv(timeout=0.05)], keep_keys)
        except TimeoutError:
            continue
        except ChannelClosed:
            return


def run_load(
    strategy: Callable[[], object], make_event: Callable[[int, int], Event]
) -> tuple[EventBus, list[tracebus.Channel], list[Received]]:
    bus = EventBus(history_size=0)
    chans = [bus.subscribe_channel(None, CAPACITY, strategy()) for _ in range(SUBSCRIBERS)]
    recs = [Received() for _ in chans]
    done = threading.Event()

    def publisher(p: int) -> Callable[[], None]:
        def run() -> None:
            publish = bus.publish
            for n in range(PER_PUBLISHER):
                publish(make_event(p, n))
                if n % 512 == 0:
                    time.sleep(0)  # let consumers in between publishes too

        return run

    consumers = [
        threading.Thread(target=consume, args=(ch, rec, i == 0), daemon=True)
        for i, (ch, rec) in enumerate(zip(chans, recs, strict=True))
    ]
    for t in consumers:
        t.start()
    try:
        run_threads([publisher(p) for p in range(PUBLISHERS)])
    finally:
        done.set()
        for ch in chans:
            ch.close()  # buffered events stay receivable; consumers drain and stop
        for t in consumers:
            t.join(60)
    assert not any(t.is_alive() for t in consumers), "a consumer did not finish"
    return bus, chans, recs


def check_accounting(
    figures: Figures, bus: EventBus, chans: list[tracebus.Channel], recs: list[Received]
) -> None:
    total = PUBLISHERS * PER_PUBLISHER
    figures.events = total
    figures.threads = PUBLISHERS + SUBSCRIBERS
    for ch, rec in zip(chans, recs, strict=True):
        s = ch.stats()
        lost = s["sent"] - (s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"])
        figures.add(
            published=s["sent"],
            delivered=rec.count,
            dropped=s["dropped"],
            evicted=s["evicted"],
            errors=rec.out_of_order,
            lost=lost,
            duplicated=rec.duplicated,
        )
        assert s["sent"] == total, s
        assert s["buffered"] == 0, s
        assert s["delivered"] == rec.count, (s, rec.count)
        assert s["sent"] == s["delivered"] + s["dropped"] + s["evicted"], s
        assert rec.duplicated == 0
        assert rec.out_of_order == 0
    m = bus.get_metrics()
    assert m["events_published"] == total
    # The bus counts an event as delivered to a channel when it is buffered there; an
    # eviction later takes back one of those. Drops are never buffered.
    assert m["events_delivered"] + m["events_dropped"] == total * SUBSCRIBERS, m
    assert m["events_evicted"] == sum(ch.stats()["evicted"] for ch in chans), m
    assert m["events_dropped"] == sum(ch.stats()["dropped"] for ch in chans), m
    slow = chans[0].stats()
    figures.extra["slow_subscriber_loss"] = slow["dropped"] + slow["evicted"]


def test_exact_accounting_evict_oldest(figures: Figures) -> None:
    bus, chans, recs = run_load(
        lambda: SimpleBufferStrategy(BufferAction.EVICT_OLDEST), plain_event
    )
    check_accounting(figures, bus, chans, recs)
    assert all(ch.stats()["dropped"] == 0 for ch in chans)
    bus.close()


def test_exact_accounting_drop_newest(figures: Figures) -> None:
    bus, chans, recs = run_load(lambda: SimpleBufferStrategy(BufferAction.DROP), plain_event)
    check_accounting(figures, bus, chans, recs)
    assert all(ch.stats()["evicted"] == 0 for ch in chans)
    bus.close()


def test_exact_accounting_priority(figures: Figures) -> None:
    bus, chans, recs = run_load(PriorityBufferStrategy, graded_event)
    check_accounting(figures, bus, chans, recs)
    bus.close()


@pytest.mark.parametrize("default_action", [BufferAction.EVICT_OLDEST])
def test_priority_never_loses_more_severe_than_kept(figures: Figures, default_action: str) -> None:
    """A stalled consumer: the buffer stays full, so the kept set at the end must be at
    least as severe as everything that was evicted or refused."""
    bus = EventBus(history_size=0)
    ch = bus.subscribe_channel(None, CAPACITY, PriorityBufferStrategy(default_action))

    def publisher(p: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(PER_PUBLISHER):
                bus.publish(graded_event(p, n))

        return run

    run_threads([publisher(p) for p in range(PUBLISHERS)])
    ch.close()
    rec = Received()
    consume(ch, rec, slow=False, keep_keys=True)
    s = ch.stats()
    total = PUBLISHERS * PER_PUBLISHER
    kept = set(rec.keys)
    kept_min = min(RANK[severity_of(p, n)] for p, n in kept)
    lost_max = max(
        RANK[severity_of(p, n)]
        for p in range(PUBLISHERS)
        for n in range(PER_PUBLISHER)
        if (p, n) not in kept
    )
    figures.events = total
    figures.threads = PUBLISHERS
    figures.add(
        published=s["sent"],
        delivered=rec.count,
        dropped=s["dropped"],
        evicted=s["evicted"],
        errors=rec.out_of_order,
        lost=s["sent"] - (s["delivered"] + s["dropped"] + s["evicted"]),
        duplicated=rec.duplicated,
    )
    figures.extra["kept_min_severity"] = SEVERITIES[kept_min].value
    figures.extra["lost_max_severity"] = SEVERITIES[lost_max].value
    assert s["sent"] == total == s["delivered"] + s["dropped"] + s["evicted"]
    assert rec.count == len(kept) == CAPACITY
    assert rec.duplicated == 0 and rec.out_of_order == 0
    assert lost_max <= kept_min, "an evicted/refused event was more severe than a kept one"
    # Fewer than CAPACITY warnings and errors were published: all of them must be kept.
    graded = {
        (p, n)
        for p in range(PUBLISHERS)
        for n in range(PER_PUBLISHER)
        if RANK[severity_of(p, n)] >= RANK[Severity.WARN]
    }
    assert len(graded) < CAPACITY
    assert graded <= kept
    figures.extra["warn_or_error_published"] = len(graded)
    bus.close()
