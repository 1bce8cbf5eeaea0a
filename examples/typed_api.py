"""The typed, conventional API: subscribing by event class (the handler's parameter is
typed by it), bare ``@bus.on``, ``once``, ``await bus.wait_for(...)``, ``await
bus.aclose()``, ``Channel[T]`` and the ``TypedDict`` metrics; ``correlation.new`` for an
operation of its own, ``with from_traceparent(...)`` for a remote one.

Run: ``python examples/typed_api.py``. It prints what each handler saw, the waited-for
event, a channel's items, two metrics and the correlation of each operation. Checked by
``mypy --strict examples`` (and pyright).
"""

import asyncio

import tracebus as tb
from tracebus import (
    BusMetrics,
    Channel,
    Event,
    EventBus,
    HealthEvent,
    ServiceStateEvent,
    StateChangeEvent,
    SystemEvent,
    correlation,
    from_traceparent,
)


async def main() -> None:
    bus = EventBus()
    store = tb.StateStore()
    seen: list[str] = []

    @bus.on(ServiceStateEvent)  # every ServiceStateEvent, whatever its type
    def on_state(event: ServiceStateEvent) -> None:
        seen.append(f"state: {event.source} {event.old_state} -> {event.new_state}")

    @bus.on  # bare: every event
    def on_any(event: Event) -> None:
        seen.append(f"any: {event.type}")

    @bus.once(HealthEvent)  # the first health event only
    def first_health(event: HealthEvent) -> None:
        seen.append(f"first health: {event.cluster_short_name} healthy={event.is_healthy}")

    async def on_system(event: SystemEvent) -> None:  # async: runs on this loop
        seen.append(f"async system: {event}")

    bus.subscribe(SystemEvent, on_system)

    changes: Channel[StateChangeEvent] = store.subscribe("pf")
    events: Channel[Event] = bus.subscribe_channel(tb.filter_by_source("pf"))

    waiter = bus.wait_for(HealthEvent, timeout=5)  # subscribed now: nothing is missed
    bus.publish(ServiceStateEvent("PortForward", "pf", "Starting", "Running"))
    bus.publish(HealthEvent("kind-wc", "wc", False, True, 2, 2))
    bus.publish(HealthEvent("kind-wc", "wc", False, True, 2, 2).with_error("API unreachable"))
    bus.publish(SystemEvent("orchestrator", "startup", "3 services"))
    health: HealthEvent = await waiter
    print(f"waited for: {health}")

    store.set_service_state(tb.ManagedServiceUpdate("PortForward", "pf", "Running"))
    change = changes.recv(timeout=1)
    print(f"store change: {change.label} {change.old_state} -> {change.new_state}")
    print(f"channel: {[str(e) for e in events.drain()]}")

    m: BusMetrics = bus.get_metrics()
    print(f"published={m['events_published']} handler_errors={m['handler_errors']}")

    with correlation("startup") as startup:
        with correlation.new("crash") as crash:  # its own cascade, not startup's
            pass
    print(f"new root: {crash.correlation_id != startup.correlation_id}")
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with from_traceparent(tp, "http") as remote:
        print(f"remote: {remote.correlation_id} parent={remote.parent_id}")

    await bus.aclose()  # the async handler has finished its buffer
    for line in seen:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
