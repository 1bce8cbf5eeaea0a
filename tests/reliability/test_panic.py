"""Plan test 6: a Rust panic reaches Python as an exception and never hangs the bus.

``_testing.inject_panic(bus)`` (``tracebus._core._testing``) makes the next publish panic
inside Rust (after it has taken its subscription snapshot). PyO3 turns the panic into
``PanicException`` (a BaseException).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest
from reliability_util import WAIT, Figures, run_threads, scaled, wait_until

from tracebus import Event, EventBus, EventType
from tracebus._core import _testing


def ev(n: int = 0) -> Event:
    return Event(EventType.SYSTEM_STARTUP, "src", timestamp=float(n))


def is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException" and not isinstance(e, Exception)


def test_panic_surfaces_and_bus_keeps_working(figures: Figures) -> None:
    bus = EventBus(history_size=0, max_depth=2)
    got: list[Event] = []
    bus.subscribe(None, got.append)
    ch = bus.subscribe_channel(None, 100)
    panics = 10  # more than max_depth: the depth must be restored after each unwind
    for i in range(panics):
        _testing.inject_panic(bus)
        with pytest.raises(BaseException, match="injected panic") as info:
            bus.publish(ev(i))
        assert is_panic(info.value)
        assert bus.publish(ev(i)) == 2  # the next publish is delivered normally
    assert len(got) == panics and len(ch.drain()) == panics
    m = bus.get_metrics()
    assert m["events_published"] == 2 * panics
    bus.close()
    figures.events = 2 * panics
    figures.threads = 1
    figures.faults = panics
    figures.published = 2 * panics
    figures.delivered = len(got)
    figures.errors = panics
    figures.lost = 0


def test_panic_in_nested_publish_propagates_out(figures: Figures) -> None:
    bus = EventBus(history_size=0, max_depth=3)
    calls = []

    def handler(e: Event) -> None:
        calls.append(e)
        if e.source == "outer":
            _testing.inject_panic(bus)
            bus.publish(Event(EventType.SYSTEM_STARTUP, "inner"))

    bus.subscribe(None, handler)
    for _ in range(5):
        with pytest.raises(BaseException) as info:
            bus.publish(Event(EventType.SYSTEM_STARTUP, "outer"))
        assert is_panic(info.value)
    # Depth is back to 0: three nested publishes are still allowed.
    depth = []

    def chain(e: Event) -> None:
        if e.source.startswith("chain"):
            k = int(e.source[5:])
            depth.append(k)
            if k < 3:
                bus.publish(Event(EventType.SYSTEM_STARTUP, f"chain{k + 1}"))

    bus.subscribe(None, chain)
    bus.publish(Event(EventType.SYSTEM_STARTUP, "chain1"))
    assert depth == [1, 2, 3]
    bus.close()
    figures.events = 5 * 2 + 3
    figures.threads = 1
    figures.faults = 5
    figures.published = bus.get_metrics()["events_published"]
    figures.errors = 5


def test_panic_in_thread_handler_is_reported_not_hung(
    figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    bus = EventBus(history_size=0)
    seen = []

    def worker_handler(e: Event) -> None:
        seen.append(e.source)
        if e.source == "trigger":
            _testing.inject_panic(bus)
            bus.publish(Event(EventType.SYSTEM_STARTUP, "inner"))

    sub = bus.subscribe(None, worker_handler, mode="thread")
    bus.publish(Event(EventType.SYSTEM_STARTUP, "trigger"))
    bus.publish(Event(EventType.SYSTEM_STARTUP, "after"))
    assert wait_until(lambda: seen[-1:] == ["after"])
    bus.close()
    # The panic left the worker's handler as an unraisable error; the worker went on.
    assert len(unraisable) == 1 and is_panic(unraisable[0].exc_value)
    assert sub.errors == 0 and seen == ["trigger", "after"]
    figures.events = 3
    figures.threads = 2
    figures.faults = 1
    figures.published = 3
    figures.delivered = len(seen)
    figures.errors = len(unraisable)


def test_panics_under_concurrent_publishers(figures: Figures) -> None:
    bus = EventBus(history_size=0, max_depth=4)
    delivered = [0]
    lock = threading.Lock()

    def handler(e: Event) -> None:
        with lock:
            delivered[0] += 1

    bus.subscribe(None, handler)
    per = scaled(20_000)
    injections = 50
    panics = [0]
    stop = threading.Event()

    def publisher() -> None:
        for n in range(per):
            try:
                bus.publish(ev(n))
            except BaseException as e:
                assert is_panic(e), e
                with lock:
                    panics[0] += 1

    injected = [0]

    def injector() -> None:
        for k in range(injections):
            if stop.is_set():
                return
            _testing.inject_panic(bus)
            injected[0] += 1
            # Wait until a publisher consumed it (or all of them finished).
            wait_until(lambda k=k: panics[0] > k or stop.is_set(), timeout=10)

    def publishers_then_stop() -> None:
        try:
            run_threads([publisher for _ in range(4)])
        finally:
            stop.set()

    run_threads([publishers_then_stop, injector])
    total = 4 * per
    # Each panicking publish delivered nothing; every other one was delivered once.
    assert delivered[0] == total - panics[0]
    assert bus.get_metrics()["events_published"] == total
    # An injection the publishers did not consume fires on the next publish: exactly one
    # panic per injection.
    leftover = 0
    try:
        bus.publish(ev())
    except BaseException as e:
        assert is_panic(e)
        leftover = 1
    assert panics[0] + leftover == injected[0]
    # Afterwards every thread publishes normally (the depth was restored everywhere).
    run_threads([lambda: [bus.publish(ev()) for _ in range(10)] for _ in range(4)])
    assert delivered[0] == total - panics[0] + (1 - leftover) + 40
    published = bus.get_metrics()["events_published"]
    bus.close()
    figures.events = published
    figures.threads = 5
    figures.faults = injected[0]
    figures.published = published
    figures.delivered = delivered[0]
    figures.errors = panics[0] + leftover
    figures.lost = published - figures.errors - delivered[0]
    assert figures.lost == 0


def test_fatal_error_in_async_handler_ends_its_subscription(figures: Figures) -> None:
    """A BaseException (a PanicException, KeyboardInterrupt...) escaping an async handler
    ends its pump task; the subscription must end with it, so publishers in other threads
    do not block on a buffer nobody drains."""

    class Fatal(BaseException):
        pass

    out: dict[str, object] = {}

    async def main() -> None:
        bus = EventBus(history_size=0)
        calls = [0]

        async def handler(e: Event) -> None:
            calls[0] += 1
            raise Fatal("handler gave up")

        sub = bus.subscribe(None, handler, buffer_size=2)  # block strategy by default
        bus.publish(ev())
        for _ in range(2000):
            await asyncio.sleep(0.001)
            if calls[0] and not sub.active:
                break
        out["active_after"] = sub.active
        results: list[object] = []

        def publish_more() -> None:
            for n in range(10):
                results.append(bus.publish(ev(n), timeout=WAIT))

        t = threading.Thread(target=publish_more, daemon=True)
        t.start()
        await asyncio.to_thread(t.join, WAIT)
        out["publisher_alive"] = t.is_alive()
        out["results"] = results
        out["calls"] = calls[0]
        bus.close()

    asyncio.run(main())
    assert out["active_after"] is False
    assert out["publisher_alive"] is False
    assert out["results"] == [0] * 10  # nobody left to deliver to, and nobody waited
    figures.events = 11
    figures.threads = 2
    figures.faults = 1
    figures.published = 11
    figures.delivered = 0
    figures.errors = 1
