"""Channel subscribers: a bounded buffer per subscriber, drained in batches by the consumer
(a UI refresh, a batch writer). Every loss is counted, and a priority strategy never
evicts a failure to make room for something less severe.

Run: ``python examples/channel_drain.py``. It overfills a 4-slot channel with 10 events,
drains it, prints what survived and the channel's counters; then shows a state-store
subscription whose sequence numbers reveal the changes its small buffer dropped.
"""

from tracebus import (
    BufferAction,
    EventBus,
    ManagedServiceUpdate,
    PriorityBufferStrategy,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    StateStore,
)


def bus_channel() -> None:
    bus = EventBus()
    channel = bus.subscribe_channel(
        None, buffer_size=4, strategy=PriorityBufferStrategy(BufferAction.EVICT_OLDEST)
    )
    pf = ServiceType.PORT_FORWARD
    events = [
        ServiceStateEvent(pf, f"pf-{i}", ServiceState.STARTING, ServiceState.RUNNING)
        for i in range(10)
    ]
    events[2] = ServiceStateEvent(pf, "pf-2", ServiceState.RUNNING, ServiceState.FAILED)
    bus.publish_many(events)

    batch = channel.drain()
    states = [e for e in batch if isinstance(e, ServiceStateEvent)]
    print(f"drained {len(batch)}: {', '.join(f'{e.source}:{e.new_state}' for e in states)}")
    stats = channel.stats()
    print(
        f"sent={stats['sent']} delivered={stats['delivered']} dropped={stats['dropped']}"
        f" evicted={stats['evicted']} buffered={stats['buffered']}"
    )
    accounted = stats["delivered"] + stats["dropped"] + stats["evicted"] + stats["buffered"]
    print(f"every event accounted for: {stats['sent'] == accounted}")
    channel.close()  # ends the subscription
    print(f"subscriptions after close: {bus.subscription_count}")
    bus.close()


def store_subscription() -> None:
    store = StateStore()
    changes = store.subscribe("pf-db", buffer_size=2)  # default strategy: drop the new one
    for state in (ServiceState.STARTING, ServiceState.RUNNING, ServiceState.STOPPING):
        store.set_service_state(ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf-db", state))
    first = changes.drain()
    store.set_service_state(
        ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf-db", ServiceState.STOPPED)
    )
    second = changes.drain()
    expected = 0
    for change in first + second:
        if change.sequence != expected:
            print(f"gap: {change.sequence - expected} change(s) lost before #{change.sequence}")
        print(f"#{change.sequence} {change.label}: {change.old_state} -> {change.new_state}")
        expected = change.sequence + 1
    print(f"dropped by the subscription: {changes.stats()['dropped']}")
    changes.close()


if __name__ == "__main__":
    bus_channel()
    store_subscription()
