"""Plan test 7: reentrancy. Handlers publish into the same bus (bounded by ``max_depth``),
unsubscribe themselves, subscribe others and update the state store, from several threads:
no "Already borrowed", no deadlock, and past the maximum depth a clear PublishDepthError."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reliability_util import Figures, run_threads, scaled, wait_until

from tracebus import (
    Event,
    EventBus,
    EventBusAdapter,
    EventType,
    ManagedServiceUpdate,
    PublishDepthError,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    StateStore,
    Subscription,
    filter_by_source,
    filter_by_type,
)


def test_depth_is_bounded_with_a_clear_error(figures: Figures) -> None:
    errors: list[BaseException] = []
    bus = EventBus(history_size=0, max_depth=8, on_error=lambda exc, e, s: errors.append(exc))
    depths: list[int] = []

    def echo(e: Event) -> None:
        k = int(e.source[1:])
        depths.append(k)
        bus.publish(Event(EventType.SYSTEM_STARTUP, f"d{k + 1}"))

    sub = bus.subscribe(None, echo)
    # The error stays inside the handler that went too deep: the outer publish returns.
    assert bus.publish(Event(EventType.SYSTEM_STARTUP, "d1")) == 1
    assert depths == list(range(1, 9))
    assert len(errors) == 1 and isinstance(errors[0], PublishDepthError)
    assert "max_depth=8" in str(errors[0]) and "nested 9 deep" in str(errors[0])
    assert sub.errors == 1
    # The depth unwinds: the same thread can publish again, as deep as before.
    depths.clear()
    bus.publish(Event(EventType.SYSTEM_STARTUP, "d1"))
    assert depths == list(range(1, 9)) and len(errors) == 2
    bus.close()
    figures.events = 18
    figures.threads = 1
    figures.faults = 2
    figures.published = 18
    figures.delivered = 16
    figures.errors = len(errors)


def test_handler_can_catch_the_depth_error(figures: Figures) -> None:
    bus = EventBus(history_size=0, max_depth=3)
    caught: list[PublishDepthError] = []

    def echo(e: Event) -> None:
        try:
            bus.publish(Event(EventType.SYSTEM_STARTUP, "again"))
        except PublishDepthError as exc:
            caught.append(exc)

    sub = bus.subscribe(None, echo)
    for _ in range(100):
        bus.publish(Event(EventType.SYSTEM_STARTUP, "x"))
    assert len(caught) == 100 and sub.errors == 0
    assert bus.get_metrics()["events_published"] == 300
    bus.close()
    figures.events = 300
    figures.threads = 1
    figures.faults = 100
    figures.published = 300
    figures.delivered = sub.delivered
    figures.errors = len(caught)


def test_handlers_mutate_subscriptions_and_store_from_threads(figures: Figures) -> None:
    errors: list[tuple[BaseException, Event, Subscription]] = []
    lock = threading.Lock()

    def hook(exc: BaseException, e: Event, s: Subscription) -> None:
        with lock:
            errors.append((exc, e, s))

    bus = EventBus(history_size=0, max_depth=16, on_error=hook)
    store = StateStore()
    adapter = EventBusAdapter(bus, store)
    watch = store.subscribe(None, buffer_size=1_000_000)
    threads = 4
    rounds = scaled(300)
    oneshot_calls: dict[str, int] = {}
    late_calls: dict[str, int] = {}
    state_seen = [0]
    states = [ServiceState.STARTING, ServiceState.RUNNING, ServiceState.FAILED]

    def on_state(e: Event) -> None:
        # Nested inside adapter.report -> publish: read the store the event came from.
        assert isinstance(e, ServiceStateEvent)
        snap = store.get_service_state(e.source)
        assert snap is not None and snap.state == e.new_state
        with lock:
            state_seen[0] += 1

    bus.subscribe(
        filter_by_type(
            EventType.SERVICE_STARTING, EventType.SERVICE_RUNNING, EventType.SERVICE_FAILED
        ),
        on_state,
    )

    def root(e: Event) -> None:
        t, r = e.source.split(":")[1:]
        key = f"{t}-{r}"
        # 1. update the store (publishes a ServiceStateEvent, nested)
        adapter.report(
            ManagedServiceUpdate(ServiceType.PORT_FORWARD, f"svc-{t}", states[int(r) % 3])
        )
        # 2. subscribe a one-shot handler that unsubscribes itself on its first call
        box: list[Subscription] = []

        def once(ev: Event) -> None:
            with lock:
                oneshot_calls[key] = oneshot_calls.get(key, 0) + 1
            assert box[0].close() is True

        box.append(bus.subscribe(filter_by_source(f"once-{key}"), once))
        for _ in range(3):
            bus.publish(Event(EventType.SYSTEM_SHUTDOWN, f"once-{key}"))
        assert box[0].active is False

        # 3. subscribe another handler, publish to it, unsubscribe it through the bus:
        #    it sees exactly the one event published while it was subscribed.
        def late(ev: Event) -> None:
            with lock:
                late_calls[key] = late_calls.get(key, 0) + 1

        s = bus.subscribe(filter_by_source(f"late-{key}"), late)
        bus.publish(Event(EventType.CONFIG_CHANGE, f"late-{key}"))
        assert bus.unsubscribe(s) is True
        bus.publish(Event(EventType.CONFIG_CHANGE, f"late-{key}"))

    bus.subscribe(filter_by_type(EventType.SYSTEM_STARTUP), root)
    base_subs = bus.subscription_count

    def worker(t: int) -> Callable[[], None]:
        def run() -> None:
            for r in range(rounds):
                bus.publish(Event(EventType.SYSTEM_STARTUP, f"root:{t}:{r}"))

        return run

    run_threads([worker(t) for t in range(threads)])
    total_rounds = threads * rounds
    assert errors == [], errors[:3]
    assert bus.subscription_count == base_subs
    assert oneshot_calls == {f"{t}-{r}": 1 for t in range(threads) for r in range(rounds)}
    assert late_calls == {f"{t}-{r}": 1 for t in range(threads) for r in range(rounds)}
    # Every round changed its service's state, so every round published one state event.
    assert state_seen[0] == total_rounds
    for t in range(threads):
        snap = store.get_service_state(f"svc-{t}")
        assert snap is not None and snap.state == states[(rounds - 1) % 3]
    # The store watcher saw each change once, in order per label.
    changes = watch.drain()
    assert len(changes) == total_rounds
    last: dict[str, str] = {}
    for c in changes:
        assert c.old_state == last.get(c.label, ServiceState.UNKNOWN)
        last[c.label] = c.new_state
    assert [c.sequence for c in changes] == list(range(total_rounds))
    m = bus.get_metrics()
    bus.close()
    figures.events = m["events_published"]
    figures.threads = threads
    figures.published = m["events_published"]
    figures.delivered = m["events_delivered"]
    figures.errors = len(errors)
    figures.extra["rounds"] = total_rounds
    figures.extra["store_changes"] = len(changes)


def test_depth_bound_holds_across_handler_threads(figures: Figures) -> None:
    errors: list[BaseException] = []
    bus = EventBus(history_size=0, max_depth=8, on_error=lambda exc, e, s: errors.append(exc))
    hops = [0]
    cap = 200  # the test's own brake, far past max_depth

    def echo(e: Event) -> None:
        hops[0] += 1
        if hops[0] < cap:
            bus.publish(Event(EventType.SYSTEM_STARTUP, "again"))

    bus.subscribe(None, echo, mode="thread", strategy="drop")
    bus.publish(Event(EventType.SYSTEM_STARTUP, "first"))
    wait_until(lambda: hops[0] >= cap or bool(errors), timeout=10)
    bus.close()
    figures.events = hops[0]
    figures.threads = 2
    figures.errors = len(errors)
    assert any(isinstance(x, PublishDepthError) for x in errors)
    assert hops[0] <= 8
