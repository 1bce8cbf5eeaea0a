"""The event bus: delivery modes, ordering, reentrancy, errors, closing, metrics, history,
cascade tracing, indexing, concurrency and bad input."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any

import pytest
from tb_support import WAIT, run_threads, state_event, wait_until

from tracebus import (
    BufferAction,
    BusClosedError,
    Channel,
    DependencyEvent,
    Event,
    EventBus,
    EventType,
    PriorityBufferStrategy,
    PublishDepthError,
    PublishTimeoutError,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    Severity,
    SimpleBufferStrategy,
    Subscription,
    SystemEvent,
    Trace,
    UserActionEvent,
    correlation,
    filter_by,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    register_event_type,
)
from tracebus._core import _testing

S = ServiceState
T = EventType


def ev(source: str = "src", type_: str = T.HEALTH_CHECK, **kw: Any) -> Event:
    return Event(type_, source, **kw)


def collecting_bus(**kw: Any) -> tuple[EventBus, list[tuple[BaseException, Event, Subscription]]]:
    errors: list[tuple[BaseException, Event, Subscription]] = []
    bus = EventBus(on_error=lambda e, event, sub: errors.append((e, event, sub)), **kw)
    return bus, errors


# --- synchronous delivery ------------------------------------------------------------------


def test_sync_handlers_run_in_publisher_thread_in_subscription_order(bus: EventBus) -> None:
    calls: list[tuple[str, str, int]] = []
    for name in ("first", "second", "third"):
        bus.subscribe(None, lambda e, n=name: calls.append((n, e.source, threading.get_ident())))
    assert bus.publish(ev("a")) == 3
    bus.publish(ev("b"))
    me = threading.get_ident()
    assert calls == [(n, s, me) for s in "ab" for n in ("first", "second", "third")]


def test_publish_returns_matching_deliveries_and_filters_apply(bus: EventBus) -> None:
    failed: list[Event] = []
    warn: list[Event] = []
    everything: list[Event] = []
    bus.subscribe(filter_by_type(T.SERVICE_FAILED), failed.append)
    bus.subscribe(filter_by_severity(Severity.WARN), warn.append)
    bus.subscribe(None, everything.append)
    e1 = state_event("a", S.STARTING, S.RUNNING)
    e2 = state_event("a", S.RUNNING, S.RETRYING)
    e3 = state_event("a", S.RETRYING, S.FAILED)
    assert [bus.publish(e) for e in (e1, e2, e3)] == [1, 2, 3]
    assert failed == [e3] and warn == [e2, e3] and everything == [e1, e2, e3]
    assert everything[2] is e3  # handlers get the published object itself


def test_publish_many(bus: EventBus) -> None:
    got: list[Event] = []
    bus.subscribe(None, got.append)
    events = [ev(str(i)) for i in range(10)]
    assert bus.publish_many(events) == 10
    assert bus.publish_many(e for e in events[:2]) == 2
    assert got == events + events[:2]
    with pytest.raises(TypeError, match=r"events\[1\]"):
        bus.publish_many([ev(), "nope"])
    assert len(got) == 12  # checked before anything was published
    with pytest.raises(TypeError, match="events"):
        bus.publish_many(5)


def test_decorator_on(bus: EventBus) -> None:
    got: list[Event] = []

    @bus.on(filter_by_type(T.USER_ACTION))
    def handler(e: Event) -> None:
        got.append(e)

    assert callable(handler)  # returned unchanged
    bus.publish(UserActionEvent("restart", "PortForward", "pf"))
    bus.publish(ev())
    assert len(got) == 1
    assert bus.subscription_count == 1


def test_unsubscribe_and_close_subscription(bus: EventBus) -> None:
    got: list[str] = []
    s1 = bus.subscribe(None, lambda e: got.append("s1"))
    s2 = bus.subscribe(None, lambda e: got.append("s2"))
    assert s1.active and s1.mode == "sync"
    bus.publish(ev())
    assert bus.unsubscribe(s1) is True
    assert bus.unsubscribe(s1) is False
    assert not s1.active
    bus.publish(ev())
    assert s2.close() is True
    assert s2.close() is False
    bus.publish(ev())
    assert got == ["s1", "s2", "s2"]
    assert bus.subscription_count == 0
    with bus.subscribe(None, lambda e: got.append("ctx")) as s3:
        bus.publish(ev())
    assert not s3.active
    bus.publish(ev())
    assert got[-1] == "ctx" and got.count("ctx") == 1


def test_subscription_counters_and_repr(bus: EventBus) -> None:
    s = bus.subscribe(None, lambda e: None)
    for _ in range(3):
        bus.publish(ev())
    assert s.delivered == 3 and s.errors == 0
    assert s.stats()["handler_returned"] == 3
    assert s.id.endswith("_sub") and len(s.id) == len("0123456789abcdef_sub")
    assert "delivered=3" in repr(s)
    assert callable(s.handler)


# --- errors --------------------------------------------------------------------------------


def test_raising_handler_is_isolated_counted_and_reported() -> None:
    bus, errors = collecting_bus()
    try:
        got: list[str] = []

        def bad(e: Event) -> None:
            raise ValueError(f"bad {e.source}")

        bus.subscribe(None, lambda e: got.append("before"))
        s = bus.subscribe(None, bad)
        bus.subscribe(None, lambda e: got.append("after"))
        e1 = ev("x")
        assert bus.publish(e1) == 2  # publisher not affected
        bus.publish(ev("y"))
        assert got == ["before", "after"] * 2
        assert s.errors == 2 and s.delivered == 0
        m = bus.get_metrics()
        assert m["handler_errors"] == 2
        assert m["events_delivered"] == 4
        assert [str(e) for e, _, _ in errors] == ["bad x", "bad y"]
        exc, event, sub = errors[0]
        assert isinstance(exc, ValueError) and event is e1 and sub.id == s.id
    finally:
        bus.close()


def test_default_error_hook_logs_event_and_subscription(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    try:
        s = bus.subscribe(None, lambda e: 1 / 0)
        with caplog.at_level(logging.ERROR, logger="tracebus"):
            bus.publish(ev("logged-source"))
        recs = [r for r in caplog.records if r.name == "tracebus"]
        assert len(recs) == 1
        msg = recs[0].getMessage()
        assert s.id in msg and "logged-source" in msg
        assert recs[0].exc_info is not None and recs[0].exc_info[0] is ZeroDivisionError
    finally:
        bus.close()


def test_set_error_handler(bus: EventBus) -> None:
    seen: list[BaseException] = []
    bus.set_error_handler(lambda e, event, sub: seen.append(e))
    bus.subscribe(None, lambda e: 1 / 0)
    bus.publish(ev())
    assert len(seen) == 1
    with pytest.raises(TypeError, match="hook"):
        bus.set_error_handler(5)  # type: ignore[arg-type]


def test_error_hook_that_raises_does_not_break_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook(e: BaseException, event: Event, sub: Subscription) -> None:
        raise RuntimeError("hook broke")

    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    bus = EventBus(on_error=hook)
    got: list[Event] = []
    try:
        bus.subscribe(None, lambda e: 1 / 0)
        bus.subscribe(None, got.append)
        bus.publish(ev())
        assert len(got) == 1
        # The hook's own failure is reported through sys.unraisablehook, not raised.
        assert len(unraisable) == 1
        assert isinstance(unraisable[0].exc_value, RuntimeError)
        assert bus.get_metrics()["handler_errors"] == 1
    finally:
        bus.close()


class Fatal(BaseException):
    """Not an Exception: like KeyboardInterrupt, it must not be swallowed as a handler error."""


def test_base_exceptions_propagate(bus: EventBus) -> None:
    def stop(e: Event) -> None:
        raise Fatal

    got: list[Event] = []
    s = bus.subscribe(None, stop)
    with pytest.raises(Fatal):
        bus.publish(ev())
    # Counted and passed to on_error too (issue 12), then re-raised to the publisher.
    assert bus.get_metrics()["handler_errors"] == 1 and s.errors == 1
    # The bus stays usable.
    s.close()
    bus.subscribe(None, got.append)
    assert bus.publish(ev()) == 1 and len(got) == 1


def test_injected_panic_surfaces_and_bus_stays_usable(bus: EventBus) -> None:
    got: list[Event] = []
    bus.subscribe(None, got.append)
    _testing.inject_panic(bus)
    with pytest.raises(BaseException, match="injected panic"):
        bus.publish(ev())
    assert bus.publish(ev()) == 1
    assert len(got) == 1


# --- reentrancy ----------------------------------------------------------------------------


def test_handler_may_publish(bus: EventBus) -> None:
    order: list[str] = []

    def on_user(e: Event) -> None:
        order.append("user")
        bus.publish(SystemEvent("core", "config_change"))
        order.append("user-done")

    bus.subscribe(filter_by_type(T.USER_ACTION), on_user)
    bus.subscribe(filter_by_type(T.CONFIG_CHANGE), lambda e: order.append("config"))
    bus.publish(UserActionEvent("restart", "PortForward", "pf"))
    assert order == ["user", "config", "user-done"]


def test_handler_may_subscribe_and_unsubscribe(bus: EventBus) -> None:
    got: list[str] = []
    late: list[Event] = []
    state: dict[str, Subscription] = {}

    def first(e: Event) -> None:
        got.append("first")
        if "late" not in state:
            state["late"] = bus.subscribe(None, late.append)  # gets the next event, not this one
        state["self"].close()  # unsubscribe itself
        bus.unsubscribe(state["victim"])  # and a later subscriber, before it runs

    state["self"] = bus.subscribe(None, first)
    state["victim"] = bus.subscribe(None, lambda e: got.append("victim"))
    bus.subscribe(None, lambda e: got.append("last"))
    e1, e2 = ev("1"), ev("2")
    bus.publish(e1)
    bus.publish(e2)
    assert got == ["first", "last", "last"]
    assert late == [e2]


def test_close_during_delivery(bus: EventBus) -> None:
    got: list[str] = []

    def closer(e: Event) -> None:
        got.append("closer")
        bus.close()
        with pytest.raises(BusClosedError):
            bus.publish(ev())

    bus.subscribe(None, closer)
    bus.subscribe(None, lambda e: got.append("after"))
    bus.publish(ev())  # does not raise
    assert got == ["closer"]
    assert bus.closed
    with pytest.raises(BusClosedError):
        bus.publish(ev())


def test_publish_depth_limit() -> None:
    bus, errors = collecting_bus(max_depth=5)
    try:
        assert bus.max_depth == 5
        calls = [0]

        def echo(e: Event) -> None:
            calls[0] += 1
            bus.publish(ev(type_=T.HEALTH_CHECK))

        bus.subscribe(filter_by_type(T.HEALTH_CHECK), echo)
        bus.publish(ev())  # the outermost publish succeeds
        assert calls[0] == 5
        assert len(errors) == 1
        exc = errors[0][0]
        assert isinstance(exc, PublishDepthError)
        assert "max_depth=5" in str(exc)
        assert bus.get_metrics()["events_published"] == 5
        # Depth is restored: the bus works normally afterwards.
        bus.publish(ev(type_=T.USER_ACTION))
    finally:
        bus.close()


def test_reentrant_publish_from_many_handlers_no_deadlock(bus: EventBus) -> None:
    n = [0]

    def fan(e: Event) -> None:
        n[0] += 1
        depth = int(e.source)
        if depth < 4:
            for _ in range(2):
                bus.publish(ev(str(depth + 1)))

    bus.subscribe(None, fan)
    bus.publish(ev("0"))
    assert n[0] == 1 + 2 + 4 + 8 + 16


# --- closed bus ----------------------------------------------------------------------------


def test_closed_bus_refuses_publish_and_subscribe() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel()
    bus.publish(ev("kept"))
    bus.close()
    bus.close()  # idempotent
    assert bus.closed
    with pytest.raises(BusClosedError):
        bus.publish(ev())
    with pytest.raises(BusClosedError):
        bus.publish_many([ev()])
    with pytest.raises(BusClosedError):
        bus.subscribe(None, lambda e: None)
    with pytest.raises(BusClosedError):
        bus.subscribe_channel()
    assert ch.closed
    assert [e.source for e in ch.drain()] == ["kept"]  # buffered events stay receivable
    assert bus.subscription_count == 0


def test_close_wakes_blocked_publisher() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel(buffer_size=1, strategy=BufferAction.BLOCK)
    bus.publish(ev())
    outcome: list[object] = []

    def publisher() -> None:
        try:
            outcome.append(bus.publish(ev()))
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=publisher)
    t.start()
    assert wait_until(lambda: ch.stats()["blocked"] == 1)
    bus.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert outcome == [0]  # the event was counted as dropped for that subscriber
    assert bus.get_metrics()["events_dropped"] == 1
    s = ch.stats()
    assert s["sent"] == s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"]


def test_publish_timeout_on_full_block_subscriber(bus: EventBus) -> None:
    slow = bus.subscribe_channel(buffer_size=1, strategy=SimpleBufferStrategy(BufferAction.BLOCK))
    others: list[Event] = []
    bus.subscribe(None, others.append)
    bus.publish(ev("1"))
    with pytest.raises(PublishTimeoutError):
        bus.publish(ev("2"), timeout=0.05)
    assert [e.source for e in others] == ["1", "2"]  # everyone else still got it
    assert slow.stats()["dropped"] == 1
    assert bus.get_metrics()["events_dropped"] == 1


# --- channel subscriptions -----------------------------------------------------------------


def test_subscribe_channel(bus: EventBus) -> None:
    ch = bus.subscribe_channel(filter_by_source("pf"), buffer_size=10)
    assert isinstance(ch, Channel) and ch.capacity == 10
    bus.publish(ev("pf"))
    bus.publish(ev("other"))
    bus.publish(ev("pf", T.USER_ACTION))
    assert len(ch) == 2
    assert ch.recv(timeout=WAIT).type is T.HEALTH_CHECK
    assert ch.try_recv().type is T.USER_ACTION
    assert ch.try_recv() is None
    assert bus.unsubscribe(ch) is True
    assert bus.unsubscribe(ch) is False
    assert bus.subscription_count == 0
    bus.publish(ev("pf"))
    assert len(ch) == 0


def test_channel_close_unsubscribes(bus: EventBus) -> None:
    ch = bus.subscribe_channel()
    assert bus.subscription_count == 1
    ch.close()
    assert bus.subscription_count == 0
    with bus.subscribe_channel() as ch2:
        assert bus.subscription_count == 1
    assert ch2.closed and bus.subscription_count == 0


def test_channel_strategies_and_bus_metrics(bus: EventBus) -> None:
    drop = bus.subscribe_channel(buffer_size=2)  # default: drop, counted
    evict = bus.subscribe_channel(buffer_size=2, strategy=BufferAction.EVICT_OLDEST)
    prio = bus.subscribe_channel(buffer_size=2, strategy=PriorityBufferStrategy())
    events = [
        state_event("a", S.RUNNING, S.FAILED),
        state_event("b", S.STARTING, S.RUNNING),
        state_event("c", S.STARTING, S.RUNNING),
        state_event("d", S.RUNNING, S.FAILED),
        state_event("e", S.STOPPING, S.STOPPED),
    ]
    for e in events:
        bus.publish(e)
    assert [e.source for e in drop.drain()] == ["a", "b"]
    assert [e.source for e in evict.drain()] == ["d", "e"]
    assert [e.source for e in prio.drain()] == ["a", "d"]  # failures kept, info evicted/dropped
    m = bus.get_metrics()
    assert m["events_published"] == 5
    assert m["events_dropped"] == drop.stats()["dropped"] + prio.stats()["dropped"]
    assert m["events_evicted"] == evict.stats()["evicted"] + prio.stats()["evicted"]
    assert drop.stats()["dropped"] == 3 and evict.stats()["evicted"] == 3
    for ch in (drop, evict, prio):
        s = ch.stats()
        assert s["sent"] == 5 == s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"]


def test_async_for_over_bus_channel() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        ch = bus.subscribe_channel()

        def feed() -> None:
            for i in range(20):
                bus.publish(ev(str(i)))
            ch.close()

        t = threading.Thread(target=feed)
        t.start()
        out = [e.source async for e in ch]
        t.join(WAIT)
        bus.close()
        return out

    assert asyncio.run(main()) == [str(i) for i in range(20)]


# --- thread mode ---------------------------------------------------------------------------


def test_thread_mode_ordered_on_its_own_thread() -> None:
    bus = EventBus()
    seen: list[tuple[int, str]] = []
    active = [0]
    overlaps = [0]

    def handler(e: Event) -> None:
        active[0] += 1
        if active[0] > 1:
            overlaps[0] += 1
        seen.append((threading.get_ident(), e.source))
        time.sleep(0.0005)
        active[0] -= 1

    sub = bus.subscribe(None, handler, mode="thread", buffer_size=8)
    assert sub.mode == "thread"
    run_threads(4, lambda i: [bus.publish(ev(f"{i}:{j}")) for j in range(50)])
    assert wait_until(lambda: sub.delivered == 200)
    bus.close()
    idents = {t for t, _ in seen}
    assert len(idents) == 1 and threading.get_ident() not in idents
    assert overlaps[0] == 0
    for p in range(4):
        seq = [int(s.split(":")[1]) for _, s in seen if s.startswith(f"{p}:")]
        assert seq == list(range(50))  # FIFO per producer (block strategy: nothing lost)
    st = sub.stats()
    assert st["dropped"] == 0 and st["handler_returned"] == 200
    assert bus.get_metrics()["events_delivered"] == 200


def test_thread_mode_errors_counted_and_close_delivers_buffered() -> None:
    bus, errors = collecting_bus()
    gate = threading.Event()
    got: list[str] = []

    def handler(e: Event) -> None:
        gate.wait(WAIT)
        if e.source == "bad":
            raise RuntimeError("thread handler failed")
        got.append(e.source)

    sub = bus.subscribe(None, handler, mode="thread")
    for s in ("a", "bad", "b", "c"):
        bus.publish(ev(s))
    gate.set()
    bus.close(timeout=WAIT)  # waits for the worker to deliver what is buffered
    assert got == ["a", "b", "c"]
    assert sub.errors == 1 and len(errors) == 1
    assert isinstance(errors[0][0], RuntimeError)
    assert bus.get_metrics()["handler_errors"] == 1


def test_thread_mode_drop_strategy_counts_losses() -> None:
    bus = EventBus()
    gate = threading.Event()
    got: list[str] = []
    sub = bus.subscribe(
        None,
        lambda e: (gate.wait(WAIT), got.append(e.source)),
        mode="thread",
        buffer_size=2,
        strategy="drop",
    )
    for i in range(10):
        bus.publish(ev(str(i)))
    gate.set()
    assert wait_until(
        lambda: sub.stats()["buffered"] == 0 and len(got) == sub.delivered and sub.delivered >= 2
    )
    bus.close(timeout=WAIT)
    st = sub.stats()
    assert st["sent"] == 10
    assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
    assert len(got) == st["delivered"]
    assert st["dropped"] == 10 - len(got) > 0
    assert bus.get_metrics()["events_dropped"] == st["dropped"]


def test_thread_mode_handler_closing_the_bus() -> None:
    bus = EventBus()
    done = threading.Event()

    def handler(e: Event) -> None:
        bus.close()  # from the worker's own thread: must not wait for itself
        done.set()

    bus.subscribe(None, handler, mode="thread")
    bus.publish(ev())
    assert done.wait(WAIT)
    assert bus.closed


def test_thread_mode_events_inherit_correlation(bus: EventBus) -> None:
    children: list[Event] = []

    def handler(e: Event) -> None:
        bus.publish(SystemEvent("core", "config_change"))

    bus.subscribe(filter_by_type(T.USER_ACTION), handler, mode="thread")
    bus.subscribe(filter_by_type(T.CONFIG_CHANGE), children.append)
    root = UserActionEvent("reload", "System", "core")
    bus.publish(root)
    assert wait_until(lambda: len(children) == 1)
    assert children[0].correlation_id == root.correlation_id
    assert children[0].parent_id == root.event_id


# --- async mode ----------------------------------------------------------------------------


def test_async_handler_runs_on_its_loop_in_order() -> None:
    async def main() -> None:
        bus = EventBus()
        loop = asyncio.get_running_loop()
        got: list[str] = []
        loops: set[int] = set()
        running = [0]
        overlap = [0]

        async def handler(e: Event) -> None:
            running[0] += 1
            overlap[0] = max(overlap[0], running[0])
            loops.add(id(asyncio.get_running_loop()))
            await asyncio.sleep(0)
            got.append(e.source)
            running[0] -= 1

        sub = bus.subscribe(None, handler)
        assert sub.mode == "async"
        for i in range(10):
            bus.publish(ev(str(i)))  # from the loop's thread
        t = threading.Thread(target=lambda: [bus.publish(ev(f"t{i}")) for i in range(10)])
        t.start()
        await asyncio.to_thread(t.join, WAIT)
        for _ in range(2000):
            if len(got) == 20:
                break
            await asyncio.sleep(0.005)
        assert got == [str(i) for i in range(10)] + [f"t{i}" for i in range(10)]
        assert loops == {id(loop)}
        assert overlap[0] == 1  # one at a time
        assert sub.delivered == 20
        bus.close()

    asyncio.run(main())


def test_async_handler_errors_and_correlation() -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        bus = EventBus(on_error=lambda e, event, sub: errors.append(e))
        children: list[Event] = []

        async def handler(e: Event) -> None:
            await asyncio.sleep(0)
            if e.source == "bad":
                raise ValueError("async boom")
            bus.publish(SystemEvent("core", "config_change"))

        sub = bus.subscribe(filter_by_type(T.USER_ACTION), handler)
        bus.subscribe(filter_by_type(T.CONFIG_CHANGE), children.append)
        root = UserActionEvent("reload", "System", "core")
        bus.publish(UserActionEvent("x", "System", "core", source="bad"))
        bus.publish(root)
        for _ in range(2000):
            if children:
                break
            await asyncio.sleep(0.005)
        assert len(children) == 1
        assert children[0].correlation_id == root.correlation_id
        assert children[0].parent_id == root.event_id
        assert sub.errors == 1 and isinstance(errors[0], ValueError)
        assert bus.get_metrics()["handler_errors"] == 1
        bus.close()

    asyncio.run(main())


def test_async_handler_requires_a_running_loop(bus: EventBus) -> None:
    async def handler(e: Event) -> None:
        pass

    with pytest.raises(RuntimeError, match="running event loop"):
        bus.subscribe(None, handler)
    with pytest.raises(TypeError, match="async"):
        bus.subscribe(None, lambda e: None, mode="async")
    assert bus.subscription_count == 0


# --- metrics -------------------------------------------------------------------------------


def test_metrics_fields_are_measured(bus: EventBus) -> None:
    m = bus.get_metrics()
    for key in (
        "events_published",
        "events_delivered",
        "events_dropped",
        "events_evicted",
        "handler_errors",
        "active_subscriptions",
        "events_by_type",
        "average_latency_ms",
        "p50_latency_ms",
        "p99_latency_ms",
        "max_latency_ms",
        "latency_samples",
    ):
        assert key in m, key
    assert m["events_published"] == 0 and m["latency_samples"] == 0

    def slow(e: Event) -> None:
        time.sleep(0.002)  # at least 2 ms of real handler time

    bus.subscribe(filter_by_type(T.SERVICE_RUNNING), slow)
    bus.subscribe(filter_by_type(T.SERVICE_FAILED), lambda e: 1 / 0)
    bus.set_error_handler(lambda *a: None)
    for _ in range(16):
        bus.publish(state_event())
    for _ in range(3):
        bus.publish(state_event(new=S.FAILED))
    m = bus.get_metrics()
    assert m["events_published"] == 19
    assert m["events_delivered"] == 16
    assert m["handler_errors"] == 3
    assert m["active_subscriptions"] == 2
    assert m["events_by_type"] == {T.SERVICE_RUNNING: 16, T.SERVICE_FAILED: 3}
    assert m["latency_samples"] >= 1
    # Handler time is what is measured: every sample of the sleeping handler is >= 2 ms
    # unless it was one of the fast failing calls; the maximum certainly is.
    assert m["max_latency_ms"] >= 1.5
    assert m["max_latency_ms"] >= m["p99_latency_ms"] >= m["p50_latency_ms"] >= 0
    assert m["average_latency_ms"] > 0
    assert m["memory_bytes"] > 0


# --- history and trace ---------------------------------------------------------------------


def test_history_ring_buffer() -> None:
    bus = EventBus(history_size=3)
    try:
        assert bus.history_size == 3
        evs = [ev(str(i)) for i in range(5)]
        for e in evs:
            bus.publish(e)
        assert [e.source for e in bus.history()] == ["2", "3", "4"]
        assert [e.source for e in bus.history(limit=2)] == ["3", "4"]
        assert bus.history(evs[4].correlation_id) == [evs[4]]
        assert bus.history(evs[0].correlation_id) == []  # fell out of the ring
        assert bus.get_metrics()["history_events"] == 3
    finally:
        bus.close()


def test_history_disabled() -> None:
    bus = EventBus(history_size=0)
    try:
        e = ev()
        bus.publish(e)
        assert bus.history() == []
        assert len(bus.trace(e.correlation_id)) == 0
    finally:
        bus.close()


def test_cascade_is_traced_automatically(bus: EventBus) -> None:
    """A user action starts a cascade; handlers publish follow-up events without touching
    correlation ids, and trace() returns the whole tree."""

    @bus.on(filter_by_type(T.USER_ACTION))
    def stop_dependents(e: UserActionEvent) -> None:
        bus.publish(
            DependencyEvent(e.target_name, ServiceType.KUBE_OPERATION, ["pf-1", "mcp-1"], "stop")
        )

    @bus.on(filter_by_type(T.CASCADE_STOP))
    def stop_each(e: DependencyEvent) -> None:
        for label in e.affected:
            bus.publish(ServiceStateEvent(ServiceType.PORT_FORWARD, label, S.RUNNING, S.STOPPING))

    @bus.on(filter_by_type(T.SERVICE_STOPPING))
    def finish(e: ServiceStateEvent) -> None:
        bus.publish(ServiceStateEvent(e.service_type, e.source, S.STOPPING, S.STOPPED))

    unrelated = ev("noise")
    bus.publish(unrelated)
    root = UserActionEvent("stop", ServiceType.KUBE_OPERATION, "k8s-mc")
    bus.publish(root)

    events = bus.history(root.correlation_id)
    assert len(events) == 6
    by_id = {e.event_id: e for e in events}
    for e in events[1:]:
        assert e.correlation_id == root.correlation_id
        assert e.parent_id in by_id
        # The cause is the type of the handled event.
        assert e.caused_by == str(by_id[e.parent_id].type)

    trace = bus.trace(root.correlation_id)
    assert isinstance(trace, Trace)
    assert len(trace) == 6
    assert len(trace.roots) == 1 and trace.roots[0].event is root
    cascade = trace.roots[0].children
    assert len(cascade) == 1 and cascade[0].event.type is T.CASCADE_STOP
    assert cascade[0].event.parent_id == root.event_id
    stopping = cascade[0].children
    assert [(n.event.source, n.event.new_state) for n in stopping] == [
        ("pf-1", S.STOPPING),
        ("mcp-1", S.STOPPING),
    ]
    for n in stopping:
        assert n.event.parent_id == cascade[0].event.event_id
        assert [(c.event.source, c.event.new_state, c.event.parent_id) for c in n.children] == [
            (n.event.source, S.STOPPED, n.event.event_id)
        ]
    assert unrelated not in trace.events()
    text = trace.render()
    lines = text.splitlines()
    assert root.correlation_id in lines[0] and "6 events" in lines[0]
    assert "[user.action]" in lines[1] and "User stop KubeOperation k8s-mc" in lines[1]
    assert lines[2].startswith("  └─ [cascade.stop]")
    assert "pf-1 (PortForward) Running → Stopping" in text
    assert str(trace) == text


def test_scope_opened_in_handler_applies_inside(bus: EventBus) -> None:
    seen: list[Event] = []

    def handler(e: Event) -> None:
        with correlation("manual_followup", correlation_id="corr_00000000000000f0"):
            bus.publish(SystemEvent("core", "config_change"))
        bus.publish(SystemEvent("core", "startup"))

    bus.subscribe(filter_by_type(T.USER_ACTION), handler)
    bus.subscribe(filter_by_type(T.CONFIG_CHANGE, T.SYSTEM_STARTUP), seen.append)
    root = UserActionEvent("x", "System", "core")
    bus.publish(root)
    assert seen[0].correlation_id == "corr_00000000000000f0"
    assert seen[0].caused_by == "manual_followup"
    assert seen[1].correlation_id == root.correlation_id
    assert seen[1].parent_id == root.event_id


# --- indexing ------------------------------------------------------------------------------


def test_many_non_matching_subscribers_results_correct() -> None:
    bus = EventBus(history_size=0)
    try:
        counts = [0] * 10_000

        def make(i: int) -> Any:
            def h(e: Event) -> None:
                counts[i] += 1

            return h

        for i in range(10_000):
            bus.subscribe(filter_by_source(f"svc-{i}"), make(i))
        matched: list[Event] = []
        scanned: list[Event] = []
        bus.subscribe(filter_by_type(T.SERVICE_FAILED), matched.append)
        bus.subscribe(filter_by(lambda e: e.source == "svc-42"), scanned.append)  # not indexable
        assert bus.subscription_count == 10_002
        for i in (0, 42, 9_999, 42):
            bus.publish(state_event(f"svc-{i}", S.RUNNING, S.FAILED))
        bus.publish(state_event("svc-unknown"))
        assert counts[0] == 1 and counts[42] == 2 and counts[9_999] == 1
        assert sum(counts) == 4
        assert len(matched) == 4
        assert [e.source for e in scanned] == ["svc-42", "svc-42"]
        assert bus.get_metrics()["events_delivered"] == 4 + 4 + 2
    finally:
        bus.close()


def test_custom_type_index() -> None:
    register_event_type("testsuite.bus.custom")
    bus = EventBus()
    try:
        got: list[Event] = []
        bus.subscribe(filter_by_type("testsuite.bus.custom"), got.append)
        bus.publish(ev(type_="testsuite.bus.custom"))
        bus.publish(ev())
        assert len(got) == 1
    finally:
        bus.close()


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_publishers_exact_counts(bus: EventBus) -> None:
    lock = threading.Lock()
    counts: dict[str, int] = {}

    def handler(e: Event) -> None:
        with lock:
            counts[e.source] = counts.get(e.source, 0) + 1

    bus.subscribe(None, handler)
    ch = bus.subscribe_channel(buffer_size=100_000)
    run_threads(8, lambda i: [bus.publish(ev(f"p{i}")) for _ in range(250)])
    assert counts == {f"p{i}": 250 for i in range(8)}
    m = bus.get_metrics()
    assert m["events_published"] == 2000
    assert m["events_delivered"] == 4000
    drained = ch.drain()
    assert len(drained) == 2000
    for i in range(8):
        assert len([e for e in drained if e.source == f"p{i}"]) == 250


def _interleave_once() -> None:
    bus = EventBus(history_size=0)
    stop = threading.Event()
    failures: list[BaseException] = []

    def publisher() -> None:
        try:
            while not stop.is_set():
                try:
                    bus.publish(ev())
                except BusClosedError:
                    return
        except BaseException as e:
            failures.append(e)

    def churner() -> None:
        try:
            while not stop.is_set():
                try:
                    s = bus.subscribe(None, lambda e: None)
                    c = bus.subscribe_channel(buffer_size=4)
                    t = bus.subscribe(
                        None, lambda e: None, mode="thread", buffer_size=4, strategy="drop"
                    )
                except BusClosedError:
                    return
                s.close()
                c.close()
                bus.unsubscribe(t)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=publisher) for _ in range(2)]
    threads += [threading.Thread(target=churner) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    bus.close()
    stop.set()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert failures == []
    assert bus.subscription_count == 0


def test_publish_unsubscribe_close_any_interleaving() -> None:
    for _round in range(5):
        _interleave_once()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "param"),
    [
        (lambda b: b.subscribe(None, "not callable"), TypeError, "handler"),
        (lambda b: b.subscribe(None, None), TypeError, "handler"),
        (lambda b: b.subscribe("service.failed", lambda e: None), TypeError, "filter"),
        (lambda b: b.subscribe(lambda e: True, lambda e: None), TypeError, "filter"),
        (lambda b: b.subscribe(None, lambda e: None, mode="fast"), ValueError, "mode"),
        (lambda b: b.subscribe(None, lambda e: None, buffer_size=10), ValueError, "buffer_size"),
        (
            lambda b: b.subscribe(None, lambda e: None, mode="thread", buffer_size=0),
            ValueError,
            "buffer_size",
        ),
        (
            lambda b: b.subscribe(None, lambda e: None, mode="thread", buffer_size=-5),
            ValueError,
            "buffer_size",
        ),
        (
            lambda b: b.subscribe(None, lambda e: None, mode="thread", buffer_size=10**12),
            ValueError,
            "buffer_size",
        ),
        (
            lambda b: b.subscribe(None, lambda e: None, mode="thread", strategy=3),
            TypeError,
            "strategy",
        ),
        (lambda b: b.subscribe_channel(buffer_size=0), ValueError, "buffer_size"),
        (lambda b: b.subscribe_channel(buffer_size=-1), ValueError, "buffer_size"),
        (lambda b: b.subscribe_channel(buffer_size=2**60), ValueError, "buffer_size"),
        (lambda b: b.subscribe_channel(buffer_size="10"), TypeError, "buffer_size"),
        (lambda b: b.subscribe_channel(filter=5), TypeError, "filter"),
        (lambda b: b.subscribe_channel(strategy="sometimes"), ValueError, "strategy"),
        (lambda b: b.publish("not an event"), TypeError, "event"),
        (lambda b: b.publish(None), TypeError, "event"),
        (lambda b: b.publish({"type": "service.failed"}), TypeError, "event"),
        (lambda b: b.publish(ev(), timeout=-1), ValueError, "timeout"),
        (lambda b: b.unsubscribe("sub"), TypeError, "subscription"),
        (lambda b: b.on(5)(lambda e: None), TypeError, "filter"),
    ],
)
def test_bad_input_leaves_bus_unchanged(call: Any, exc: type, param: str) -> None:
    bus = EventBus()
    try:
        got: list[Event] = []
        bus.subscribe(None, got.append)
        before = bus.get_metrics()
        with pytest.raises(exc, match=param):
            call(bus)
        after = bus.get_metrics()
        for k in ("events_published", "events_delivered", "active_subscriptions", "handler_errors"):
            assert after[k] == before[k], k
        assert got == []
        bus.publish(ev())
        assert len(got) == 1
    finally:
        bus.close()


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"history_size": -1}, ValueError, "history_size"),
        ({"history_size": 10**9}, ValueError, "history_size"),
        ({"history_size": "big"}, TypeError, "history_size"),
        ({"max_depth": 0}, ValueError, "max_depth"),
        ({"max_depth": -3}, ValueError, "max_depth"),
        ({"on_error": "log"}, TypeError, "on_error"),
    ],
)
def test_bad_bus_arguments(kwargs: dict[str, Any], exc: type, param: str) -> None:
    with pytest.raises(exc, match=param):
        EventBus(**kwargs)


def test_unsubscribing_another_bus_subscription_does_not_touch_ours(bus: EventBus) -> None:
    other = EventBus()
    try:
        got: list[Event] = []
        mine = bus.subscribe(None, got.append)  # both first subscriptions of their bus
        theirs = other.subscribe(None, lambda e: None)
        assert bus.unsubscribe(theirs) is False
        assert mine.active and theirs.active
        assert bus.subscription_count == 1 and other.subscription_count == 1
        bus.publish(ev())
        assert len(got) == 1
    finally:
        other.close()


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda b: b.history(correlation_id=5), "correlation_id"),
        (lambda b: b.history(limit="3"), "limit"),
        (lambda b: b.publish(ev(), timeout="soon"), "timeout"),
        (lambda b: b.close(timeout="soon"), "timeout"),
    ],
)
def test_bad_history_and_timeout_arguments_name_the_parameter(call: Any, param: str) -> None:
    # PyO3 names the argument in a note ("while processing '...'"); pytest matches notes.
    bus = EventBus()
    try:
        with pytest.raises(TypeError, match=param):
            call(bus)
        assert not bus.closed
    finally:
        bus.close()


def test_negative_history_limit_is_a_value_error(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="limit"):
        bus.history(limit=-1)


# --- a block-strategy publisher that is its subscriber's own consumer must not deadlock ---


def test_publishing_past_an_async_buffer_from_its_loop_does_not_deadlock() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        got: list[str] = []

        async def handler(e: Event) -> None:
            got.append(e.source)

        sub = bus.subscribe(None, handler, buffer_size=2)
        rescue = threading.Timer(2.0, bus.close)  # unblocks the loop if it deadlocks
        rescue.start()
        try:
            for i in range(5):
                bus.publish(ev(str(i)))
            for _ in range(400):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.005)
            st = sub.stats()
            # Bounded: the three that found the buffer full could not wait (this loop is the
            # consumer) and took the default on_self_block action, drop, counted.
            assert st["overflowed"] == 3 and st["dropped"] == 3
            assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
        finally:
            rescue.cancel()
            bus.close()
        return got

    assert asyncio.run(main()) == ["0", "1"]


def test_thread_handler_publishing_to_itself_does_not_deadlock() -> None:
    bus = EventBus()
    handled: list[str] = []

    def handler(e: Event) -> None:
        handled.append(e.source)
        if e.source == "root":
            for i in range(3):
                bus.publish(ev(f"child{i}"))

    sub = bus.subscribe(None, handler, mode="thread", buffer_size=1)
    rescue = threading.Timer(2.0, bus.close)
    rescue.start()
    try:
        bus.publish(ev("root"))
        assert wait_until(lambda: len(handled) == 2, timeout=2.5)
        st = sub.stats()
        # child0 fits; child1 and child2 find the buffer full, and the handler is its own
        # consumer: the default on_self_block action drops them, counted.
        assert wait_until(lambda: sub.stats()["overflowed"] == 2, timeout=2.5)
        assert handled == ["root", "child0"]
        st = sub.stats()
        assert st["dropped"] == 2 and st["evicted"] == 0
        assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
    finally:
        rescue.cancel()
        bus.close(timeout=WAIT)


@pytest.mark.parametrize("mode", ["sync", "thread"])
def test_async_handler_with_a_synchronous_mode_is_refused(bus: EventBus, mode: str) -> None:
    async def handler(e: Event) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        bus.subscribe(None, handler, mode=mode)  # type: ignore[arg-type]
    assert bus.subscription_count == 0


def test_unsubscribed_thread_handler_still_gets_what_was_buffered(bus: EventBus) -> None:
    gate = threading.Event()
    got: list[str] = []
    sub = bus.subscribe(None, lambda e: (gate.wait(WAIT), got.append(e.source)), mode="thread")
    for s in "abc":
        bus.publish(ev(s))
    assert sub.close() is True
    bus.publish(ev("late"))
    gate.set()
    assert wait_until(lambda: len(got) == 3)
    assert got == ["a", "b", "c"]
    assert wait_until(lambda: sub.delivered == 3)


def test_unsubscribed_async_handler_still_gets_what_was_buffered() -> None:
    async def main() -> list[str]:
        bus = EventBus()
        got: list[str] = []

        async def handler(e: Event) -> None:
            got.append(e.source)

        sub = bus.subscribe(None, handler)
        for s in "abc":
            bus.publish(ev(s))  # buffered: the pump has not run yet
        sub.close()
        bus.publish(ev("late"))
        for _ in range(400):
            if len(got) == 3:
                break
            await asyncio.sleep(0.005)
        bus.close()
        return got

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_trace_when_the_root_fell_out_of_history() -> None:
    bus = EventBus(history_size=3)
    try:

        @bus.on(filter_by_type(T.USER_ACTION))
        def fan_out(e: Event) -> None:
            for i in range(3):
                bus.publish(SystemEvent(f"c{i}", "config_change"))

        root = UserActionEvent("reload", "System", "core")
        bus.publish(root)
        trace = bus.trace(root.correlation_id)
        # The root was pushed out of the 3-event ring; its children become roots.
        assert len(trace) == 3
        assert [n.event.source for n in trace.roots] == ["c0", "c1", "c2"]
        assert all(n.event.parent_id == root.event_id for n in trace.roots)
        assert "3 events" in trace.render()
    finally:
        bus.close()


def test_channel_consumer_publishing_to_its_own_channel_does_not_deadlock() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel(buffer_size=1, strategy=BufferAction.BLOCK)
    done = threading.Event()

    def consumer() -> None:
        for e in ch:
            if e.source == "root":
                try:
                    for i in range(3):
                        bus.publish(ev(f"c{i}"))
                except BusClosedError:
                    return  # rescued by close() below
                done.set()

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    try:
        bus.publish(ev("root"))
        assert done.wait(3.0), "consumer still blocked in publish after 3 s"
    finally:
        bus.close()  # wakes the blocked publisher
        t.join(WAIT)


def test_thread_handler_may_subscribe_and_unsubscribe(bus: EventBus) -> None:
    late: list[str] = []
    state: dict[str, Subscription] = {}
    done = threading.Event()

    def handler(e: Event) -> None:
        state["late"] = bus.subscribe(None, lambda x: late.append(x.source))
        state["me"].close()  # unsubscribes itself from its own worker thread
        bus.publish(ev("from-worker"))
        done.set()

    state["me"] = bus.subscribe(filter_by_source("start"), handler, mode="thread")
    bus.publish(ev("start"))
    assert done.wait(WAIT)
    bus.publish(ev("start"))  # the thread handler is gone; only the late subscriber sees it
    assert late == ["from-worker", "start"]
    assert not state["me"].active
    assert wait_until(lambda: state["me"].delivered == 1)
