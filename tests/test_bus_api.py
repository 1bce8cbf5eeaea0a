"""The bus's conventional API: subscribing by event class, bare ``@bus.on``, ``once``,
``wait_for``, ``aclose``, ``trace`` argument checks and incomplete traces, worker names."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest
from tb_support import WAIT, wait_until

import tracebus as tb
from tracebus import (
    Event,
    EventBus,
    EventType,
    HealthEvent,
    ServiceStateEvent,
    SystemEvent,
    UserActionEvent,
    correlation,
)


def health(healthy: bool = True) -> HealthEvent:
    return HealthEvent("ctx", "wc", False, healthy, 3 if healthy else 1, 3)


def state(new: str = "Running") -> ServiceStateEvent:
    return ServiceStateEvent("PortForward", "pf", "Starting", new)


class MyHealth(HealthEvent):
    """A custom subclass of a built-in kind."""


class Deploy(Event):
    """A custom kind on the base class."""


tb.register_event_type("deploy.finished")


# --- subscribing by class --------------------------------------------------------------


def test_on_class_gets_instances_of_the_class_and_its_subclasses(bus: EventBus) -> None:
    got: list[Event] = []
    bus.on(HealthEvent)(got.append)
    plain = Event(EventType.HEALTH_CHECK, "probe")  # a health type, but not a HealthEvent
    events: list[Event] = [health(), state(), MyHealth("c", "c", True, True), plain, health(False)]
    for e in events:
        bus.publish(e)
    assert got == [events[0], events[2], events[4]]


def test_subscribe_class_carries_every_type_of_the_kind(bus: EventBus) -> None:
    got: list[ServiceStateEvent] = []
    bus.subscribe(ServiceStateEvent, got.append)
    for new in ("Starting", "Running", "Stopping", "Stopped", "Failed", "Retrying", "Unknown"):
        bus.publish(ServiceStateEvent("PortForward", "pf", "Unknown", new))
    assert len(got) == 7
    anomaly = SystemEvent("monitor", "anomaly", "rate")
    sys_got: list[SystemEvent] = []
    bus.subscribe(SystemEvent, sys_got.append)
    bus.publish(anomaly)
    assert sys_got == [anomaly]


def test_subscribe_custom_class_on_event(bus: EventBus) -> None:
    got: list[Event] = []
    bus.subscribe(Deploy, got.append)
    d = Deploy("deploy.finished", "ci")
    bus.publish(Event("deploy.finished", "ci"))
    bus.publish(d)
    assert got == [d]
    every: list[Event] = []
    bus.subscribe(Event, every.append)  # Event itself: every event
    bus.publish(health())
    assert len(every) == 1


def test_class_filter_is_indexed_for_builtin_kinds() -> None:
    from tracebus.bus import class_filter

    f = class_filter(HealthEvent)
    assert f is not None and f.indexed
    assert class_filter(Event) is None


def test_subscribe_rejects_a_non_filter(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="filter must be a tracebus Filter, an Event class"):
        bus.subscribe(int, print)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="filter must be"):
        bus.on("health.check")  # type: ignore[call-overload]


def test_bare_on_subscribes_to_every_event(bus: EventBus) -> None:
    got: list[Event] = []

    @bus.on
    def every(event: Event) -> None:
        got.append(event)

    bus.publish(health())
    bus.publish(state())
    assert len(got) == 2
    assert callable(every)  # returned unchanged
    assert bus.subscription_count == 1


def test_on_with_empty_parentheses_is_every_event(bus: EventBus) -> None:
    got: list[Event] = []
    bus.on()(got.append)
    bus.publish(health())
    assert len(got) == 1


# --- once ---------------------------------------------------------------------------------


def test_once_delivers_the_first_match_only(bus: EventBus) -> None:
    got: list[HealthEvent] = []
    sub = bus.once(HealthEvent, got.append)
    bus.publish(state())
    first = health()
    bus.publish(first)
    bus.publish(health())
    assert got == [first]
    assert not sub.active
    assert bus.subscription_count == 0


def test_once_as_decorator(bus: EventBus) -> None:
    got: list[Event] = []

    @bus.once(tb.filter_by_type(EventType.SERVICE_RUNNING))
    def first_running(event: Event) -> None:
        got.append(event)

    bus.publish(state("Starting"))
    bus.publish(state())
    bus.publish(state())
    assert len(got) == 1 and got[0].type is EventType.SERVICE_RUNNING


@pytest.mark.timeout(30)
def test_once_exactly_once_under_racing_publishers(bus: EventBus) -> None:
    calls: list[int] = []
    bus.once(None, lambda e: calls.append(1))
    start = threading.Barrier(8)

    def pub() -> None:
        start.wait()
        for _ in range(200):
            bus.publish(health())

    threads = [threading.Thread(target=pub) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]


@pytest.mark.timeout(30)
def test_once_thread_mode(bus: EventBus) -> None:
    got: list[Event] = []
    sub = bus.once(None, got.append, mode="thread")
    for _ in range(5):
        bus.publish(health())
    wait_until(lambda: not sub.active)
    assert len(got) == 1


# --- wait_for -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_wait_for_returns_the_first_matching_event() -> None:
    async def main() -> None:
        bus = EventBus()
        waiter = bus.wait_for(HealthEvent, timeout=WAIT)
        bus.publish(state())  # published before the await: not missed
        bad = health(False)
        bus.publish(bad)
        bus.publish(health())
        assert await waiter is bad
        assert bus.subscription_count == 0
        await bus.aclose()

    asyncio.run(main())


@pytest.mark.timeout(30)
def test_wait_for_from_another_thread_and_timeout() -> None:
    async def main() -> None:
        bus = EventBus()
        waiter = bus.wait_for(tb.filter_by_source("late"), timeout=WAIT)
        ev = UserActionEvent("restart", "PortForward", "pf", source="late")
        threading.Timer(0.05, bus.publish, (ev,)).start()
        assert await waiter is ev
        with pytest.raises(TimeoutError):
            await bus.wait_for(None, timeout=0.05)
        assert bus.subscription_count == 0  # a timed-out wait unsubscribes
        await bus.aclose()

    asyncio.run(main())


def test_wait_for_bad_input(bus: EventBus) -> None:
    with pytest.raises(RuntimeError, match="running event loop"):
        bus.wait_for(HealthEvent)

    async def main() -> None:
        with pytest.raises(ValueError, match="timeout must be >= 0"):
            bus.wait_for(None, timeout=-1)
        with pytest.raises(TypeError, match="timeout must be a number"):
            bus.wait_for(None, timeout="1")  # type: ignore[arg-type]

    asyncio.run(main())


# --- aclose / close with async handlers ---------------------------------------------------


@pytest.mark.timeout(30)
def test_aclose_waits_for_async_handlers_to_finish_their_buffers() -> None:
    async def main() -> list[Event]:
        bus = EventBus()
        done: list[Event] = []

        async def slow(event: Event) -> None:
            await asyncio.sleep(0.005)
            done.append(event)

        bus.subscribe(None, slow)
        for _ in range(20):
            bus.publish(health())
        await bus.aclose()
        return done

    assert len(asyncio.run(main())) == 20


@pytest.mark.timeout(30)
def test_close_from_another_thread_waits_for_async_handlers() -> None:
    bus = EventBus()
    done: list[Event] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.005)
        done.append(event)

    async def setup() -> None:
        bus.subscribe(None, slow)
        ready.set()

    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(setup(), loop).result(WAIT)
    ready.wait(WAIT)
    for _ in range(20):
        bus.publish(health())
    bus.close()
    assert len(done) == 20
    loop.call_soon_threadsafe(loop.stop)
    t.join(WAIT)
    loop.close()


# --- trace --------------------------------------------------------------------------------


def test_trace_rejects_none_and_non_str(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="correlation_id must be a str"):
        bus.trace(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="correlation_id must be a str"):
        bus.trace(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        bus.trace("")


def test_trace_of_unknown_correlation_is_empty_and_incomplete(bus: EventBus) -> None:
    t = bus.trace("corr_0000000000000bad")
    assert len(t) == 0 and t.roots == []
    assert t.complete is False


def test_trace_complete_and_pushed_out_of_history() -> None:
    bus = EventBus(history_size=3)

    @bus.on(HealthEvent)
    def cascade(event: HealthEvent) -> None:
        bus.publish(SystemEvent("alerting", "error", "wc down"))

    with correlation("probe") as ctx:
        bus.publish(health(False))
    full = bus.trace(ctx.correlation_id)
    assert len(full) == 2 and full.complete
    for _ in range(2):
        bus.publish(state())  # pushes the root out of the 3-event history
    rest = bus.trace(ctx.correlation_id)
    assert len(rest) == 1 and rest.complete is False
    for _ in range(3):
        bus.publish(state())
    gone = bus.trace(ctx.correlation_id)
    assert len(gone) == 0 and gone.complete is False
    bus.close()


def test_trace_with_a_remote_parent_is_complete(bus: EventBus) -> None:
    remote = tb.from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    with correlation(correlation_id=remote.correlation_id, parent_id=remote.parent_id):
        bus.publish(health())
    assert bus.trace(remote.correlation_id).complete


# --- thread-mode worker names -------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc thread names")
@pytest.mark.timeout(30)
def test_thread_mode_worker_is_named_after_the_handler(bus: EventBus) -> None:
    names: list[str] = []

    def on_health(event: Any) -> None:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            names.append(f.read().strip())

    bus.subscribe(HealthEvent, on_health, mode="thread")
    bus.publish(health())
    wait_until(lambda: bool(names))
    # The kernel keeps 15 bytes of a thread's name.
    assert names == ["tracebus-on_health"[:15]]


@pytest.mark.timeout(30)
def test_finished_pumps_leave_no_entry_behind() -> None:
    from tracebus import bus as bus_module

    async def main() -> int:
        bus = EventBus()

        async def handler(event: Event) -> None:
            pass

        sub = bus.subscribe(None, handler)
        assert id(bus) in bus_module._bus_tasks
        sub.close()  # its pump ends without aclose
        for _ in range(100):
            if id(bus) not in bus_module._bus_tasks:
                break
            await asyncio.sleep(0.01)
        bus.close()
        return id(bus)

    assert asyncio.run(main()) not in bus_module._bus_tasks
