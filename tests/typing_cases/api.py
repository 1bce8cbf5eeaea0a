"""Type-checker cases for the typed API (checked by tests/test_typing.py, never run).

A trailing R-mark after a ``reveal_type`` is the type mypy must reveal; an E-mark is the
error code mypy --strict must report on that line. Any other error fails the test.
"""

from typing import reveal_type

import tracebus as tb

bus = tb.EventBus()
store = tb.StateStore()

# Channels are generic: recv, drain, iteration and async iteration are typed.
changes = store.subscribe()
reveal_type(changes)  # R: tracebus._core.Channel[tracebus._core.StateChangeEvent]
events = bus.subscribe_channel()
reveal_type(events)  # R: tracebus._core.Channel[tracebus._core.Event]
reveal_type(changes.recv())  # R: tracebus._core.StateChangeEvent
reveal_type(events.drain())  # R: list[tracebus._core.Event]
reveal_type(events.try_recv())  # R: tracebus._core.Event | None
for change in changes:
    reveal_type(change)  # R: tracebus._core.StateChangeEvent
label: str = changes.recv().label
wrong: str = events.recv().label  # E: attr-defined
standalone: tb.Channel[int] = tb.Channel(10)
reveal_type(standalone.recv())  # R: int


async def iterate() -> None:
    async for event in events:
        reveal_type(event)  # R: tracebus._core.Event


# Metrics and stats are TypedDicts: a mistyped key is an error.
metrics = bus.get_metrics()
reveal_type(metrics["p99_latency_ms"])  # R: float
metrics["p99_latency"]  # E: typeddict-item
store.get_metrics()["total_service"]  # E: typeddict-item
reveal_type(events.stats()["closed"])  # R: bool
events.stats()["drops"]  # E: typeddict-item


# Subscribing by class types the handler's parameter.
@bus.on(tb.HealthEvent)
def on_health(event: tb.HealthEvent) -> None:
    reveal_type(event.is_healthy)  # R: bool


@bus.on(tb.HealthEvent)  # E: arg-type
def wrong_class(event: tb.ServiceStateEvent) -> None: ...


def takes_state(event: tb.ServiceStateEvent) -> None: ...


bus.subscribe(tb.ServiceStateEvent, takes_state)
bus.subscribe(tb.HealthEvent, takes_state)  # E: arg-type
bus.once(tb.HealthEvent, takes_state)  # E: arg-type


@bus.on
def every(event: tb.Event) -> None: ...


reveal_type(every)  # R: def (event: tracebus._core.Event)


async def wait() -> None:
    reveal_type(await bus.wait_for(tb.HealthEvent, timeout=1))  # R: tracebus._core.HealthEvent
    reveal_type(await bus.wait_for(tb.filter_by_source("pf")))  # R: tracebus._core.Event
    await bus.aclose()


# Bad arguments are type errors too.
bus.trace(None)  # E: arg-type
bus.on("health.check")  # E: call-overload
with tb.correlation.new("crash") as ctx:
    reveal_type(ctx)  # R: tracebus._core.CorrelationContext
with tb.from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") as remote:
    reveal_type(remote)  # R: tracebus._core.CorrelationContext
