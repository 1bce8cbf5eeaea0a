"""The performance layer: score formula and bounds, PerformanceMonitor (fields with and
without traffic, lifecycle), OptimizedEventBus wiring, EventPoolManager reuse safety.
No timed asserts: waits only bound how long a condition may take to become true."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import threading
import weakref

import pytest
from tb_support import run_threads, update, wait_until

from tracebus import (
    BusClosedError,
    DependencyEvent,
    EventBus,
    EventPoolManager,
    HealthEvent,
    OptimizedEventBus,
    OptimizedEventBusConfig,
    PerformanceMetrics,
    PerformanceMonitor,
    ServiceStateEvent,
    StateStore,
    SystemEvent,
    UserActionEvent,
    default_optimized_event_bus_config,
    performance_score,
)


def ev(i: int = 0) -> SystemEvent:
    return SystemEvent("c", "startup", str(i))


# --------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------


def test_score_formula_and_caps() -> None:
    assert performance_score(0.0, 0.0, 0) == 100.0
    assert performance_score(0.0, 10.0, 1000) == 100.0  # thresholds are exclusive
    assert performance_score(0.05, 0.0, 0) == pytest.approx(95.0)  # 1 point per 1 % lost
    assert performance_score(0.0, 25.0, 0) == pytest.approx(85.0)  # 1 point per ms over 10
    assert performance_score(0.0, 0.0, 1500) == pytest.approx(95.0)  # 1 per 100 over 1000
    assert performance_score(0.05, 25.0, 1500) == pytest.approx(75.0)
    # caps: 40 + 30 + 20
    assert performance_score(1.0, 0.0, 0) == 60.0
    assert performance_score(0.0, 1e9, 0) == 70.0
    assert performance_score(0.0, 0.0, 10**9) == 80.0
    assert performance_score(1.0, 1e9, 10**9) == 10.0


def test_score_bounds_on_synthetic_inputs() -> None:
    ratios = [0.0, 1e-9, 0.01, 0.3, 0.4, 0.5, 1.0, 2.0, 1e12]
    lats = [0.0, 9.99, 10.0, 10.5, 40.0, 41.0, 1e6, math.inf]
    subs = [0, 999, 1000, 1001, 3000, 3001, 10**12]
    for r, lat, n in itertools.product(ratios, lats, subs):
        s = performance_score(r, lat, n)
        assert 0.0 <= s <= 100.0, (r, lat, n, s)
        # monotone: more of any penalty never raises the score
        assert performance_score(r * 2, lat, n) <= s
        assert performance_score(r, lat + 1, n) <= s
        assert performance_score(r, lat, n + 100) <= s


@pytest.mark.parametrize(
    ("args", "exc", "param"),
    [
        ((-0.1, 0.0, 0), ValueError, "drop_ratio"),
        ((math.nan, 0.0, 0), ValueError, "drop_ratio"),
        ((0.0, -1.0, 0), ValueError, "average_latency_ms"),
        ((0.0, 0.0, -1), ValueError, "active_subscriptions"),
        ((True, 0.0, 0), TypeError, "drop_ratio"),
        ((0.0, "1", 0), TypeError, "average_latency_ms"),
    ],
)
def test_score_rejects_bad_inputs(
    args: tuple[object, ...], exc: type[Exception], param: str
) -> None:
    with pytest.raises(exc, match=param):
        performance_score(*args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# monitor
# --------------------------------------------------------------------------------------


def test_idle_bus_and_store_give_zero_traffic_fields(bus: EventBus, store: StateStore) -> None:
    m = PerformanceMonitor(bus, store)
    assert m.get_metrics() == PerformanceMetrics()  # nothing sampled yet
    m.sample()
    s = m.sample()
    assert s.events_per_second == 0.0
    assert s.average_event_latency_ms == 0.0
    assert s.p99_event_latency_ms == 0.0
    assert s.max_event_latency_ms == 0.0
    assert s.event_processing_errors == 0
    assert s.active_subscriptions == 0
    assert (s.events_sent, s.events_delivered, s.events_dropped) == (0, 0, 0)
    assert s.drop_ratio == 0.0
    assert s.memory_usage_bytes == 0
    assert (s.state_store_operations, s.state_store_size) == (0, 0)
    assert s.state_store_latency_ms >= 0.0  # a real read is timed even when idle
    assert s.performance_score == 100.0 and s.system_healthy
    assert s.interval_seconds > 0.0
    assert m.get_metrics() is s


def test_fields_with_traffic_then_idle(bus: EventBus, store: StateStore) -> None:
    m = PerformanceMonitor(bus, store)
    m.sample()  # baseline

    def handler(e: SystemEvent) -> None:
        if e.details == "bad":
            raise RuntimeError("boom")
        sum(range(200))  # real work, so there is handler time to measure

    bus.set_error_handler(lambda exc, e, s: None)
    bus.subscribe(None, handler)
    for i in range(200):
        bus.publish(ev(i))
    bus.publish(SystemEvent("c", "startup", "bad"))
    for i in range(5):
        store.set_service_state(update(f"svc-{i}"))
    s = m.sample()
    assert s.events_per_second > 0
    assert s.events_sent == 201
    assert s.events_delivered == 200
    assert s.event_processing_errors == 1
    assert s.active_subscriptions == 1
    assert s.average_event_latency_ms > 0  # every 8th handler call is timed
    assert s.p99_event_latency_ms > 0
    assert s.max_event_latency_ms >= s.p99_event_latency_ms
    assert s.memory_usage_bytes > 0
    assert s.state_store_operations == 5
    assert s.state_store_size == 5
    assert s.state_store_latency_ms > 0
    assert 0 <= s.performance_score <= 100

    idle = m.sample()  # no traffic since the last sample
    assert idle.events_per_second == 0.0
    assert idle.average_event_latency_ms == 0.0
    assert idle.drop_ratio == 0.0
    assert idle.events_sent == 201  # totals are kept
    assert idle.performance_score == 100.0 and idle.system_healthy


def test_drops_lower_the_score(bus: EventBus) -> None:
    m = PerformanceMonitor(bus)
    ch = bus.subscribe_channel(None, buffer_size=1, strategy="drop")
    m.sample()
    for i in range(10):
        bus.publish(ev(i))
    s = m.sample()
    assert s.events_dropped == 9
    assert s.drop_ratio == pytest.approx(0.9)
    assert s.performance_score == pytest.approx(60.0)  # drop penalty capped at 40
    assert s.system_healthy is False
    assert s.memory_usage_bytes > 0  # the buffered event and the subscription
    ch.close()


def test_metrics_are_frozen(bus: EventBus) -> None:
    s = PerformanceMonitor(bus).sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.events_sent = 5  # type: ignore[misc]


def test_background_sampling_is_restartable(bus: EventBus) -> None:
    m = PerformanceMonitor(bus)
    bus.subscribe(None, lambda e: None)
    for rnd in range(1, 3):
        m.start(interval=0.01)
        m.start(interval=0.01)  # no-op while running
        assert m.running
        for i in range(10):
            bus.publish(ev(i))
        assert wait_until(lambda rnd=rnd: m.get_metrics().events_sent == 10 * rnd)
        m.stop()
        assert not m.running
    m.stop()  # stopping twice is harmless
    with m:
        assert m.running
    assert not m.running


@pytest.mark.parametrize(
    ("interval", "exc"),
    [
        (0, ValueError),
        (-1.0, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
        ("1", TypeError),
    ],
)
def test_monitor_rejects_bad_intervals(
    bus: EventBus, interval: object, exc: type[Exception]
) -> None:
    m = PerformanceMonitor(bus)
    with pytest.raises(exc, match="interval"):
        m.start(interval)  # type: ignore[arg-type]
    assert not m.running


def test_monitor_rejects_bad_bus_and_store(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="bus"):
        PerformanceMonitor(object())
    with pytest.raises(TypeError, match="store"):
        PerformanceMonitor(bus, store=object())  # type: ignore[arg-type]


def test_concurrent_samples_are_consistent(bus: EventBus) -> None:
    m = PerformanceMonitor(bus)
    bus.subscribe(None, lambda e: None)
    m.start(interval=0.001)

    def work(t: int) -> None:
        for i in range(200):
            bus.publish(ev(i))
            if i % 20 == 0:
                s = m.sample()
                assert 0 <= s.performance_score <= 100
                assert s.events_per_second >= 0

    run_threads(3, work)
    m.stop()
    assert m.sample().events_sent == 600


# --------------------------------------------------------------------------------------
# optimized bus
# --------------------------------------------------------------------------------------


def test_default_config() -> None:
    c = default_optimized_event_bus_config()
    assert c == OptimizedEventBusConfig()
    assert (c.enable_batching, c.enable_monitoring) == (True, True)
    assert (c.batch_size, c.batch_flush_time, c.monitoring_interval) == (50, 0.010, 1.0)
    assert c.state_store is None


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 1.5}, TypeError, "batch_size"),
        ({"batch_flush_time": 0}, ValueError, "batch_flush_time"),
        ({"batch_flush_time": -1}, ValueError, "batch_flush_time"),
        ({"monitoring_interval": 0.0}, ValueError, "monitoring_interval"),
        ({"enable_batching": 1}, TypeError, "enable_batching"),
        ({"state_store": {}}, TypeError, "state_store"),
    ],
)
def test_config_validation(kwargs: dict[str, object], exc: type[Exception], param: str) -> None:
    with pytest.raises(exc, match=param):
        OptimizedEventBusConfig(**kwargs)  # type: ignore[arg-type]


def test_config_mutated_after_creation_is_checked_by_the_bus() -> None:
    c = default_optimized_event_bus_config()
    c.batch_size = -5
    with pytest.raises(ValueError, match="batch_size"):
        OptimizedEventBus(c)
    with pytest.raises(TypeError, match="config"):
        OptimizedEventBus({"batch_size": 5})  # type: ignore[arg-type]


def test_optimized_bus_batches_in_order_and_closes_everything() -> None:
    bus = OptimizedEventBus(OptimizedEventBusConfig(batch_size=8, monitoring_interval=0.01))
    assert isinstance(bus, EventBus)
    got: list[str] = []
    threads: set[int] = set()

    def handler(e: SystemEvent) -> None:
        got.append(e.details)
        threads.add(threading.get_ident())

    bus.subscribe(None, handler)
    for i in range(100):
        assert bus.publish(ev(i)) == 0  # queued
    bus.flush()
    assert got == [str(i) for i in range(100)]
    assert threading.get_ident() not in threads  # delivered by the batch thread
    assert bus.batch_processor is not None and bus.batch_processor.stats()["enqueued"] == 100
    assert isinstance(bus.state_store, StateStore)  # created since none was given
    assert wait_until(
        lambda: (bus.get_performance_metrics() or PerformanceMetrics()).events_sent == 100
    )
    m = bus.get_performance_metrics()
    assert m is not None and m.active_subscriptions == 1
    bus.close()
    assert bus.closed
    assert not bus.batch_processor.running
    assert bus.performance_monitor is not None and not bus.performance_monitor.running
    with pytest.raises(BusClosedError):
        bus.publish(ev())
    bus.close()  # idempotent


def test_optimized_bus_without_batching_or_monitoring() -> None:
    store = StateStore()
    cfg = OptimizedEventBusConfig(enable_batching=False, enable_monitoring=False, state_store=store)
    with OptimizedEventBus(cfg) as bus:
        assert bus.get_performance_metrics() is None
        assert bus.batch_processor is None and bus.performance_monitor is None
        assert bus.state_store is store
        got: list[str] = []
        bus.subscribe(None, lambda e: got.append(e.details))
        assert bus.publish(ev(1)) == 1  # synchronous: the delivery count
        assert got == ["1"]
        bus.flush()
    assert bus.closed


def test_optimized_bus_monitor_samples_the_given_store() -> None:
    store = StateStore()
    store.set_service_state(update("a"))
    cfg = OptimizedEventBusConfig(state_store=store, monitoring_interval=0.01)
    with OptimizedEventBus(cfg) as bus:
        assert wait_until(
            lambda: (bus.get_performance_metrics() or PerformanceMetrics()).state_store_size == 1
        )


def test_optimized_bus_handlers_can_publish_children() -> None:
    with OptimizedEventBus(OptimizedEventBusConfig(batch_size=4, enable_monitoring=False)) as bus:
        seen: list[str] = []

        def handler(e: SystemEvent) -> None:
            seen.append(e.details)
            if not e.details.startswith("child"):
                bus.publish(SystemEvent("c", "startup", "child-" + e.details))

        bus.subscribe(None, handler)
        for i in range(10):
            bus.publish(ev(i))
        bus.flush()
    assert seen == [x for i in range(10) for x in (str(i), f"child-{i}")]


def test_optimized_bus_publish_with_timeout_bypasses_the_batcher() -> None:
    with OptimizedEventBus(OptimizedEventBusConfig(enable_monitoring=False)) as bus:
        got: list[str] = []
        bus.subscribe(None, lambda e: got.append(e.details))
        assert bus.publish(ev(1), timeout=1.0) == 1
        assert got == ["1"]


def test_optimized_bus_keeps_one_threads_order_across_publish_paths() -> None:
    cfg = OptimizedEventBusConfig(batch_size=1000, batch_flush_time=3600.0, enable_monitoring=False)
    with OptimizedEventBus(cfg) as bus:
        got: list[str] = []
        bus.subscribe(None, lambda e: got.append(e.details))
        bus.publish(ev(0))  # queued (no batch is due for an hour)
        bus.publish_many([ev(1), ev(2)])  # flushes the queue first
        bus.publish(ev(3))
        bus.publish(ev(4), timeout=1.0)  # likewise
        assert got == ["0", "1", "2", "3", "4"]


def test_optimized_bus_counts_its_batch_queue_in_metrics_and_memory() -> None:
    cfg = OptimizedEventBusConfig(batch_size=1000, batch_flush_time=3600.0, enable_monitoring=False)
    with OptimizedEventBus(cfg, history_size=0) as bus:
        before = bus.get_metrics()
        assert (before["batch_queued"], before["memory_bytes"]) == (0, 0)
        for i in range(10):
            bus.publish(ev(i))
        m = bus.get_metrics()
        assert m["batch_queued"] == 10
        assert m["memory_bytes"] > 0
        s = PerformanceMonitor(bus).sample()
        assert s.memory_usage_bytes == m["memory_bytes"]
        bus.flush()
        assert bus.get_metrics()["batch_queued"] == 0


def test_optimized_bus_feeds_async_handlers() -> None:
    import asyncio

    async def main() -> list[str]:
        got: list[str] = []
        done = asyncio.Event()
        cfg = OptimizedEventBusConfig(batch_size=4, enable_monitoring=False)
        with OptimizedEventBus(cfg) as bus:

            async def handler(e: SystemEvent) -> None:
                got.append(e.details)
                if len(got) == 10:
                    done.set()

            bus.subscribe(None, handler)
            for i in range(10):
                bus.publish(ev(i))
            await asyncio.wait_for(done.wait(), 20)
        return got

    assert asyncio.run(main()) == [str(i) for i in range(10)]


def test_optimized_bus_is_collected_after_close() -> None:
    bus = OptimizedEventBus(OptimizedEventBusConfig(monitoring_interval=0.01))
    bus.subscribe(None, lambda e, bus=bus: None)  # a cycle through the handler
    bus.publish(ev())
    bus.close()  # the batch and monitor threads let go of the bus
    ref = weakref.ref(bus)
    del bus
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------------------
# pool
# --------------------------------------------------------------------------------------

KINDS = [
    ("service_state", ServiceStateEvent),
    ("health", HealthEvent),
    ("dependency", DependencyEvent),
    ("user_action", UserActionEvent),
    ("system", SystemEvent),
]


@pytest.mark.parametrize(("kind", "cls"), KINDS)
def test_pool_hands_out_usable_events_of_each_kind(bus: EventBus, kind: str, cls: type) -> None:
    pool = EventPoolManager()
    get = getattr(pool, f"get_{kind}_event")
    put = getattr(pool, f"put_{kind}_event")
    e = get()
    assert type(e) is cls
    got: list[object] = []
    bus.subscribe(None, got.append)
    bus.publish(e)
    assert got == [e]
    put(e)
    with pytest.raises(TypeError, match="event"):
        put(
            SystemEvent("c", "startup")
            if cls is not SystemEvent
            else HealthEvent("x", "x", False, True)
        )


@pytest.mark.parametrize(("kind", "cls"), KINDS)
def test_pool_never_hands_out_an_event_still_referenced(kind: str, cls: type) -> None:
    pool = EventPoolManager()
    get = getattr(pool, f"get_{kind}_event")
    put = getattr(pool, f"put_{kind}_event")
    held = get()
    put(held)
    again = get()
    assert again is not held  # `held` still references it
    assert pool.stats()[kind]["discarded"] == 1

    put(again)
    eid = again.event_id
    del again  # now only the pool holds it
    reused = get()
    assert reused.event_id == eid
    assert pool.stats()[kind]["reused"] == 1


def test_pool_never_reuses_an_event_the_bus_history_holds(bus: EventBus) -> None:
    pool = EventPoolManager()
    e = pool.get_service_state_event()
    bus.publish(e)  # history keeps a reference
    eid = e.event_id
    pool.put_service_state_event(e)
    del e
    fresh = pool.get_service_state_event()
    assert fresh.event_id != eid
    assert bus.history()[-1].event_id == eid


def test_pool_reuse_safety_across_threads() -> None:
    pool = EventPoolManager(max_size=64)
    lock = threading.Lock()
    in_use: set[int] = set()
    violations: list[int] = []

    def work(t: int) -> None:
        for _ in range(300):
            held = [pool.get_system_event() for _ in range(8)]
            with lock:
                for h in held:
                    if id(h) in in_use:
                        violations.append(id(h))
                    in_use.add(id(h))
            with lock:
                for h in held:
                    in_use.discard(id(h))
            for h in held:
                pool.put_system_event(h)
            del h, held

    run_threads(4, work)
    assert violations == []
    s = pool.stats()["system"]
    assert s["reused"] + s["created"] == 4 * 300 * 8
    assert s["pooled"] <= 64


def test_pool_size_zero_and_bad_size() -> None:
    pool = EventPoolManager(max_size=0)
    e = pool.get_health_event()
    pool.put_health_event(e)
    del e
    assert pool.stats()["health"]["pooled"] == 0
    with pytest.raises(ValueError, match="max_size"):
        EventPoolManager(max_size=-1)
    with pytest.raises(TypeError, match="max_size"):
        EventPoolManager(max_size=1.5)  # type: ignore[arg-type]
