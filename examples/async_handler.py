"""Async handlers: an ``async def`` handler subscribed from a running loop is delivered on
that loop, in order, through a bounded channel (no Task per event). Events it publishes
join the correlation of the event being handled, even across ``await``.

Run: ``python examples/async_handler.py``. It prints each health result as the async
handler sees it, the follow-up event it published, and the trace of the failing check.
"""

import asyncio

from tracebus import (
    Event,
    EventBus,
    EventBusAdapter,
    EventType,
    HealthEvent,
    HealthStatusUpdate,
    SystemEvent,
    correlation,
    filter_by_type,
)


async def main() -> None:
    bus = EventBus()
    with correlation("health_round") as ctx:  # updates created here join this correlation
        checks = [
            HealthStatusUpdate("kind-mc", "mc", True, True, ready_nodes=3, total_nodes=3),
            HealthStatusUpdate("kind-wc", "wc", False, False, ready_nodes=1, total_nodes=2),
            HealthStatusUpdate("kind-wc", "wc", False, True, ready_nodes=2, total_nodes=2),
        ]
    handled = asyncio.Event()
    seen: list[str] = []

    async def on_health(event: HealthEvent) -> None:
        await asyncio.sleep(0)  # stands for real async work (an HTTP call, a DB write)
        seen.append(str(event))
        if not event.is_healthy:
            # Created after an await, still inside the handler: joins the cascade.
            bus.publish(SystemEvent("alerting", "error", f"{event.cluster_short_name} is down"))
        if len(seen) == len(checks):
            handled.set()

    health = filter_by_type(
        EventType.HEALTH_CHECK, EventType.HEALTH_FAILURE, EventType.HEALTH_RECOVERY
    )
    sub = bus.subscribe(health, on_health)  # async def: delivered on this loop
    alerts: list[Event] = []
    bus.subscribe(filter_by_type(EventType.SYSTEM_ERROR), alerts.append)

    adapter = EventBusAdapter(bus)  # publishes health.recovery on an unhealthy -> healthy edge
    for update in checks:
        adapter.report_health(update)
    await asyncio.wait_for(handled.wait(), timeout=10)

    print(f"mode: {sub.mode}")
    for line in seen:
        print(f"handled: {line}")
    for alert in alerts:
        print(f"alert: {alert} caused_by={alert.caused_by}")
    print(bus.trace(ctx.correlation_id).render())
    bus.close()


if __name__ == "__main__":
    asyncio.run(main())
