"""Issue 12, item 8: handlers raising a ``BaseException`` that is not an ``Exception``, and
async handlers whose loop was stopped and closed outside ``asyncio.run``.

Per mode (documented in ``EventBus.subscribe``): every such error is counted
(``handler_errors``, ``Subscription.errors``) and passed to ``on_error``; then
- sync: it propagates to the publisher (the subscription stays);
- thread: the handler thread carries on with the next event (the subscription stays);
- async: the subscription ends, what it could not deliver is counted in ``events_lost``,
  and the exception leaves the pump task as asyncio does.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from reliability_util import WAIT, wait_until

from tracebus import Event, EventBus, EventType


class Custom(BaseException):
    pass


def ev(source: str = "s") -> Event:
    return Event(EventType.HEALTH_CHECK, source)


@pytest.mark.parametrize("exc", [SystemExit, Custom])
def test_sync_handler_base_exception_is_counted_reported_and_raised(exc: type) -> None:
    seen: list[BaseException] = []
    bus = EventBus(on_error=lambda e, event, sub: seen.append(e))
    calls = [0]

    def handler(e: Event) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise exc()

    sub = bus.subscribe(None, handler)
    with pytest.raises(exc):
        bus.publish(ev())
    bus.publish(ev())
    assert [type(e) for e in seen] == [exc]
    assert sub.errors == 1 and sub.delivered == 1 and sub.active
    assert bus.get_metrics()["handler_errors"] == 1
    bus.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("exc", [SystemExit, Custom])
def test_thread_handler_base_exception_is_counted_and_reported(exc: type) -> None:
    seen: list[BaseException] = []
    bus = EventBus(on_error=lambda e, event, sub: seen.append(e))

    def handler(e: Event) -> None:
        if e.source == "bad":
            raise exc()

    sub = bus.subscribe(None, handler, mode="thread")
    try:
        for i in range(10):
            bus.publish(ev("bad" if i % 2 else "ok"))
        assert wait_until(lambda: sub.delivered + sub.errors == 10, timeout=WAIT)
        assert sub.delivered == 5 and sub.errors == 5 and sub.active
        assert len(seen) == 5 and all(type(e) is exc for e in seen)
        st = sub.stats()
        assert st["sent"] == st["handler_returned"] + st["errors"]
        assert bus.get_metrics()["handler_errors"] == 5
    finally:
        bus.close(timeout=WAIT)


@pytest.mark.timeout(60)
def test_async_handler_base_exception_ends_the_subscription_counted() -> None:
    seen: list[BaseException] = []

    async def main() -> tuple[Any, dict[str, Any]]:
        bus = EventBus(on_error=lambda e, event, sub: seen.append(e))
        gate = asyncio.Event()

        async def handler(e: Event) -> None:
            await gate.wait()
            if e.source == "bad":
                raise Custom()

        sub = bus.subscribe(None, handler, buffer_size=100)
        for s in ["ok", "bad", "x", "y", "z"]:
            bus.publish(ev(s))
        gate.set()
        for _ in range(400):
            if not sub.active:
                break
            await asyncio.sleep(0.005)
        m = bus.get_metrics()
        bus.close()
        return sub, m

    sub, m = asyncio.run(main())
    assert not sub.active  # ended, instead of dying silently while still "active"
    assert [type(e) for e in seen] == [Custom] and sub.errors == 1
    assert sub.delivered == 1 and m["handler_errors"] == 1
    assert m["events_lost"] == 3  # x, y, z: counted, not silently gone


@pytest.mark.timeout(60)
def test_async_subscription_of_a_closed_loop_ends_and_publishers_never_block() -> None:
    bus = EventBus()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def handler(e: Event) -> None:
        pass

    async def setup() -> Any:
        sub = bus.subscribe(None, handler, buffer_size=4)
        await asyncio.sleep(0.05)  # the pump starts and waits for events
        ready.set()
        return sub

    sub = loop.run_until_complete(setup())
    loop.stop()
    loop.close()  # outside asyncio.run: the pump task never runs again
    assert ready.is_set() and sub.active
    done = threading.Event()

    def publisher() -> None:
        for _ in range(20):  # more than the buffer holds
            bus.publish(ev())
        done.set()

    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    assert done.wait(10.0), "a publisher blocked on the closed loop's subscription"
    assert not sub.active
    m = bus.get_metrics()
    st = sub.stats()
    # Found closed by the wake-up of the first publish (1 buffered, lost) or by the first
    # publish that would have blocked (4 buffered + that one, lost); later publishes no
    # longer reach the ended subscription.
    assert st["buffered"] == 0 and st["sent"] <= 4
    assert m["events_lost"] >= 1
    assert m["events_lost"] in (st["dropped"], st["dropped"] + 1)
    assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
    bus.close()
