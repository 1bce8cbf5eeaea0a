"""Garbage collection: handlers, predicates and buses in reference cycles are collected."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from tb_support import WAIT, wait_until

from tracebus import Channel, Event, EventBus, EventType, ServiceStateEvent, StateStore, filter_by


class Probe(Event):
    """A weak-referenceable event (Python subclasses of Event get ``__weakref__``)."""


class Handler:
    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, e: Event) -> None:
        self.seen += 1


def collect() -> None:
    for _ in range(3):
        gc.collect()


def test_subscribed_handler_is_kept_alive_by_the_bus() -> None:
    bus = EventBus()
    h = Handler()
    ref = weakref.ref(h)
    bus.subscribe(None, h)
    del h
    collect()
    assert ref() is not None
    bus.publish(Event(EventType.HEALTH_CHECK, "x"))
    assert ref().seen == 1  # type: ignore[union-attr]
    bus.close()


def test_dropped_subscription_handler_is_collected() -> None:
    bus = EventBus()
    h = Handler()
    ref = weakref.ref(h)
    sub = bus.subscribe(None, h)
    sub.close()
    del h, sub
    collect()
    assert ref() is None
    bus.close()


def test_unsubscribed_handler_referencing_its_subscription_is_collected() -> None:
    bus = EventBus()

    class SelfRef(Handler):
        sub: Any = None

    h = SelfRef()
    ref = weakref.ref(h)
    h.sub = bus.subscribe(None, h)  # cycle: handler -> subscription -> handler
    bus.unsubscribe(h.sub)
    del h
    collect()
    assert ref() is None
    bus.close()


def test_bus_in_a_cycle_with_its_handler_is_collected() -> None:
    class Service:
        def __init__(self) -> None:
            self.bus = EventBus()
            self.sub = self.bus.subscribe(None, self.on_event)  # bus -> bound method -> self -> bus
            self.seen = 0

        def on_event(self, e: Event) -> None:
            self.seen += 1

    svc = Service()
    probe = Probe(EventType.HEALTH_CHECK, "probe")
    svc.bus.publish(probe)  # the bus's history holds the probe while the bus lives
    assert svc.seen == 1
    svc_ref = weakref.ref(svc)
    probe_ref = weakref.ref(probe)
    del svc, probe
    collect()
    assert svc_ref() is None
    assert probe_ref() is None  # the bus itself (and its history) was freed


def test_bus_with_error_hook_and_predicate_in_cycles_is_collected() -> None:
    class Owner:
        def __init__(self) -> None:
            self.bus = EventBus(on_error=self.on_error)
            self.bus.subscribe(filter_by(self.accept), self.on_event)

        def accept(self, e: Event) -> bool:
            return True

        def on_event(self, e: Event) -> None:
            raise RuntimeError("x")

        def on_error(self, exc: BaseException, e: Event, sub: Any) -> None:
            self.last = exc

    o = Owner()
    o.bus.publish(Event(EventType.HEALTH_CHECK, "x"))
    assert isinstance(o.last, RuntimeError)
    del o.last  # the traceback would also reference frames; not what is tested here
    ref = weakref.ref(o)
    del o
    collect()
    assert ref() is None


def test_channel_subscription_dropped_is_collected() -> None:
    bus = EventBus()
    probe = Probe(EventType.HEALTH_CHECK, "x")
    ch = bus.subscribe_channel()
    bus.publish(probe)
    ref = weakref.ref(probe)
    ch.close()
    bus.close()
    del ch, bus, probe
    collect()
    assert ref() is None


def test_thread_mode_handler_collected_after_close() -> None:
    bus = EventBus()
    h = Handler()
    ref = weakref.ref(h)
    sub = bus.subscribe(None, h, mode="thread")
    bus.publish(Event(EventType.HEALTH_CHECK, "x"))
    bus.close(timeout=WAIT)  # the worker delivers what is buffered, then stops
    assert h.seen == 1 and sub.delivered == 1
    del h, sub, bus
    collect()
    assert wait_until(lambda: (collect(), ref() is None)[1])


def test_async_handler_collected_after_close() -> None:
    class AsyncHandler:
        async def __call__(self, e: Event) -> None:
            pass

    async def main() -> weakref.ref[AsyncHandler]:
        bus = EventBus()
        h = AsyncHandler()
        ref = weakref.ref(h)
        bus.subscribe(None, h.__call__)
        bus.publish(Event(EventType.HEALTH_CHECK, "x"))
        await asyncio.sleep(0.01)
        bus.close()
        await asyncio.sleep(0.01)  # the pump task sees the end and returns
        return ref

    ref = asyncio.run(main())
    collect()
    assert ref() is None


def test_store_subscription_does_not_keep_store_alive() -> None:
    store = StateStore()
    sub = store.subscribe()
    del store
    collect()
    sub.close()  # the store is gone; closing is still safe
    assert sub.closed


def test_handler_holding_its_subscription_collected_when_bus_dropped_without_close() -> None:
    bus = EventBus()
    h = Handler()
    h.sub = bus.subscribe(None, h)  # type: ignore[attr-defined]  # cycle via the subscription
    ref = weakref.ref(h)
    del h, bus  # no close()
    collect()
    assert ref() is None


def test_bus_dropped_without_close_ends_its_subscriptions() -> None:
    bus = EventBus()
    sub = bus.subscribe(None, Handler())
    ch = bus.subscribe_channel()
    del bus
    collect()
    assert not sub.active
    assert sub.close() is False
    assert ch.closed


class Owner:
    """A plain object that ends up referenced from event metadata."""

    event: Any = None
    bus: Any = None


_T = TypeVar("_T")


def _owned(make: Callable[[dict[str, object]], _T], o: object) -> _T:
    """``make(metadata)`` with metadata that then refers to ``o``: metadata must hold JSON
    values when the event is made, so ``o`` goes into its (stored, not copied) list after:
    a reference the GC must still see."""
    holder: list[object] = []
    made = make({"owner": holder})
    holder.append(o)
    return made


def test_event_metadata_cycle_is_collected() -> None:
    o = Owner()
    o.event = _owned(
        lambda m: ServiceStateEvent("PortForward", "pf", "Starting", "Running", metadata=m), o
    )
    ref = weakref.ref(o)
    del o
    collect()
    assert ref() is None


def test_bus_history_metadata_cycle_is_collected() -> None:
    o = Owner()
    o.bus = EventBus()
    _owned(
        lambda m, bus=o.bus: bus.publish(Event(EventType.HEALTH_CHECK, "x", metadata=m)), o
    )  # bus -> event -> o
    ref = weakref.ref(o)
    del o
    collect()
    assert ref() is None


def test_item_referring_to_its_channel_is_collected() -> None:
    o = Owner()
    o.bus = Channel(4)
    o.bus.send(o)  # channel -> o -> channel
    ref = weakref.ref(o)
    del o
    collect()
    assert ref() is None


def test_bus_channel_subscription_cycle_is_collected() -> None:
    o = Owner()
    o.bus = EventBus(history_size=0)
    o.event = o.bus.subscribe_channel()  # o -> channel
    _owned(
        lambda m, bus=o.bus: bus.publish(Event(EventType.HEALTH_CHECK, "x", metadata=m)), o
    )  # channel -> o
    ref = weakref.ref(o)
    del o
    collect()
    assert ref() is None


def test_buffered_items_survive_collection() -> None:
    ch = Channel(4)
    item = Owner()
    ch.send(item)
    ref = weakref.ref(item)
    del item
    collect()
    assert ref() is not None
    assert ch.try_recv() is ref()


def test_events_buffered_for_a_thread_handler_are_reported_to_the_gc() -> None:
    import threading
    import time

    gate = threading.Event()

    class Holder:
        bus: Any = None

    bus = EventBus(history_size=0)
    bus.subscribe(None, lambda e: gate.wait(WAIT), mode="thread", buffer_size=10)
    bus.publish(Event(EventType.SYSTEM_STARTUP, "first"))  # the worker waits in the handler
    for _ in range(int(WAIT * 100)):  # until the worker has taken it (inline: `del bus` below)
        if bus.get_metrics()["events_buffered"] == 0:
            break
        time.sleep(0.01)
    holder = Holder()
    holder.bus = bus  # bus -> buffered event -> metadata -> holder -> bus: a cycle
    for _ in range(2):
        _owned(
            lambda m, b=bus: b.publish(Event(EventType.SYSTEM_STARTUP, "cycle", metadata=m)),
            holder,
        )
    ref = weakref.ref(holder)
    del bus, holder
    try:
        collect()
        assert ref() is None  # found through the bus while the events are still buffered
    finally:
        gate.set()
