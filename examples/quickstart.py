"""Quickstart: a state store and an event bus joined by an adapter, one correlation scope,
a handler that reacts to failures, and the traced cascade.

Run: ``python examples/quickstart.py``. It prints the final state of the service, the
bus's trace of the operation (the user's restart is a child of the failure that caused
it) and two metrics.
"""

from tracebus import (
    EventBus,
    EventBusAdapter,
    EventType,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    StateStore,
    UserActionEvent,
    correlation,
    filter_by_type,
)


def main() -> None:
    store = StateStore()
    bus = EventBus()
    adapter = EventBusAdapter(bus, store)

    # A sync handler runs in the publisher's thread. What it publishes joins the
    # correlation of the event it handles, with that event as parent: no code needed.
    @bus.on(filter_by_type(EventType.SERVICE_FAILED))
    def restart_on_failure(event: ServiceStateEvent) -> None:
        bus.publish(UserActionEvent("restart", event.service_type, event.source))

    with correlation("user_start") as ctx:
        for state in (ServiceState.STARTING, ServiceState.RUNNING):
            adapter.report(ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf-api", state))
        failed = ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf-api", ServiceState.RUNNING)
        adapter.report(failed.with_error("connection reset"))

    snapshot = store.get_service_state("pf-api")
    assert snapshot is not None
    print(f"state: {snapshot.label} {snapshot.state} ready={snapshot.is_ready}")
    print(f"error: {snapshot.error_detail}")
    print(f"same correlation: {snapshot.correlation_id == ctx.correlation_id}")

    trace = bus.trace(ctx.correlation_id)
    print(trace.render())

    metrics = bus.get_metrics()
    print(f"published: {metrics['events_published']}")
    print(f"delivered: {metrics['events_delivered']}")
    bus.close()


if __name__ == "__main__":
    main()
