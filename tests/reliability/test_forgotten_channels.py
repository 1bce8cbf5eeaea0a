"""A channel nobody holds any more closes and unsubscribes itself (issue 12, item 3)."""

from __future__ import annotations

import gc
import weakref

import pytest

from tracebus import (
    Channel,
    EventBus,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    StateStore,
    SystemEvent,
    filter_by,
)


def event() -> SystemEvent:
    return SystemEvent("t", "startup")


def update(label: str = "svc") -> ManagedServiceUpdate:
    return ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, ServiceState.RUNNING)


def collect() -> None:
    for _ in range(3):
        gc.collect()


def test_a_forgotten_bus_channel_unsubscribes() -> None:
    bus = EventBus()
    kept = bus.subscribe_channel()
    bus.subscribe_channel()  # dropped at once
    collect()
    assert bus.subscription_count == 1
    bus.publish(event())
    m = bus.get_metrics()
    assert (m["events_delivered"], m["events_dropped"], m["events_buffered"]) == (1, 0, 1)
    assert len(kept) == 1
    bus.close()


def test_a_forgotten_channel_with_buffered_events_and_a_predicate_is_collected() -> None:
    class Pred:
        def __call__(self, e: object) -> bool:
            return True

    bus = EventBus()
    p = Pred()
    ref = weakref.ref(p)
    ch = bus.subscribe_channel(filter_by(p))
    ch_ref = weakref.ref(ch)
    bus.publish(event())
    del ch, p
    collect()
    assert ch_ref() is None
    assert ref() is None  # the subscription (and its filter) went with the channel
    assert bus.subscription_count == 0
    bus.close()


def test_a_channel_in_a_reference_cycle_unsubscribes_when_collected() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel()
    holder: list[object] = [ch]
    holder.append(holder)
    del ch, holder
    collect()
    assert bus.subscription_count == 0
    bus.close()


@pytest.mark.timeout(60)
def test_a_forgotten_block_channel_does_not_stall_later_publishes() -> None:
    bus = EventBus()
    bus.subscribe_channel(buffer_size=1, strategy="block")
    collect()
    for _ in range(5):
        bus.publish(event())
    assert bus.get_metrics()["events_published"] == 5
    bus.close()


def test_a_forgotten_store_subscription_unsubscribes() -> None:
    store = StateStore()
    kept = store.subscribe()
    store.subscribe()
    store.subscribe("svc", buffer_size=1, strategy="block")
    collect()
    assert store.get_metrics()["active_subscriptions"] == 1
    store.set_service_state(update())
    store.set_service_state(update("other"))
    assert store.get_metrics()["subscription_drops"] == 0
    assert len(kept) == 2


def test_a_standalone_channel_is_still_collected() -> None:
    ch = Channel(4)
    ch.send("x")
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None


def test_a_closed_and_forgotten_channel_is_fine() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel()
    ch.close()
    del ch
    collect()
    assert bus.subscription_count == 0
    bus.close()
