"""``tracebus.prometheus``: the scraped values equal the bus and store metrics after a
known workload."""

from __future__ import annotations

import pytest

pytest.importorskip("prometheus_client", reason="prometheus_client is not installed")

from integrations_support import run_example
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import tracebus.prometheus as tprom
from tracebus import (
    EventBus,
    EventBusAdapter,
    EventType,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
    SystemEvent,
    filter_by_type,
)


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, keyed by (name, sorted labels)."""
    text = generate_latest(registry).decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def workload(bus: EventBus, store: StateStore) -> list[object]:
    """3 state events (1 failure), 2 system events; one handler raises on the failure; a
    2-slot drop channel and a 1-slot evict channel see all 5 events."""
    adapter = EventBusAdapter(bus, store)

    def flaky(e: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(filter_by_type(EventType.SERVICE_FAILED), flaky)
    bus.subscribe(None, lambda e: None)
    # Kept (returned): a channel nobody holds unsubscribes itself.
    channels: list[object] = [
        bus.subscribe_channel(None, buffer_size=2, strategy=SimpleBufferStrategy("drop")),
        bus.subscribe_channel(None, buffer_size=1, strategy=SimpleBufferStrategy("evict_oldest")),
    ]
    for label, state in (
        ("pf-a", ServiceState.RUNNING),
        ("mcp-b", ServiceState.RUNNING),
        ("pf-a", ServiceState.FAILED),
    ):
        t = ServiceType.MCP_SERVER if label.startswith("mcp") else ServiceType.PORT_FORWARD
        adapter.report(ManagedServiceUpdate(t, label, state))
    bus.publish(SystemEvent("orch", "startup"))
    bus.publish(SystemEvent("orch", "config_change"))
    return channels


def test_scrape_equals_metrics_after_a_known_workload() -> None:
    bus, store = EventBus(on_error=lambda *a: None), StateStore()
    registry = CollectorRegistry()
    tprom.register(bus=bus, store=store, registry=registry)
    channels = workload(bus, store)
    got = scrape(registry)
    bm, sm = bus.get_metrics(), store.get_metrics()

    # Exact figures of the workload, and the same figures as the metrics dicts.
    assert got[("tracebus_events_published_total", ())] == 5 == bm["events_published"]
    # 5 handler returns + 2 accepted by the drop channel + 5 by the evicting one.
    assert got[("tracebus_events_delivered_total", ())] == 12 == bm["events_delivered"]
    assert got[("tracebus_handler_errors_total", ())] == 1 == bm["handler_errors"]
    assert got[("tracebus_events_dropped_total", (("reason", "buffer_full"),))] == 3
    assert bm["events_dropped"] == 3
    assert got[("tracebus_events_dropped_total", (("reason", "evicted"),))] == 4
    assert bm["events_evicted"] == 4
    assert got[("tracebus_events_buffered", ())] == bm["events_buffered"] == 3
    assert got[("tracebus_subscriptions", (("kind", "bus"),))] == 4
    assert got[("tracebus_subscriptions", (("kind", "state_store"),))] == 0
    by_type = {
        dict(labels)["type"]: v
        for (name, labels), v in got.items()
        if name == "tracebus_events_published_by_type_total"
    }
    assert by_type == {
        "service.running": 2,
        "service.failed": 1,
        "system.startup": 1,
        "config.change": 1,
    }
    assert got[("tracebus_state_changes_total", ())] == 3 == sm["state_changes"]
    assert got[("tracebus_state_operations_total", ())] == sm["operations"]
    services = {labels: v for (name, labels), v in got.items() if name == "tracebus_services"}
    assert services == {
        (("state", "Failed"), ("type", "PortForward")): 1,
        (("state", "Running"), ("type", "MCPServer")): 1,
    }
    # Latency: the bus's own sampled figures, in seconds.
    q = "tracebus_handler_latency_seconds"
    # Every call is timed in the warm-up: 5 returns and the call that raised.
    assert got[(q + "_count", ())] == bm["latency_samples"] == 6
    assert got[(q, (("quantile", "0.5"),))] == pytest.approx(bm["p50_latency_ms"] / 1000)
    assert got[(q, (("quantile", "0.99"),))] == pytest.approx(bm["p99_latency_ms"] / 1000)
    assert got[(q + "_sum", ())] == pytest.approx(bm["average_latency_ms"] * 6 / 1000)
    assert got[("tracebus_handler_latency_max_seconds", ())] == pytest.approx(
        bm["max_latency_ms"] / 1000
    )
    bus.close()
    assert len(channels) == 2  # kept alive (subscribed) through the scrape


def test_counters_are_read_at_scrape_time_and_unregister() -> None:
    bus = EventBus()
    registry = CollectorRegistry()
    c = tprom.register(bus=bus, registry=registry)
    assert scrape(registry)[("tracebus_events_published_total", ())] == 0
    bus.publish(SystemEvent("orch", "startup"))
    assert scrape(registry)[("tracebus_events_published_total", ())] == 1
    assert not any(name.startswith("tracebus_state") for name, _ in scrape(registry))
    assert c.unregister() is True
    assert c.unregister() is False
    assert scrape(registry) == {}
    bus.close()


def test_two_buses_need_two_namespaces() -> None:
    registry = CollectorRegistry()
    a, b = EventBus(), EventBus()
    tprom.register(bus=a, registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        tprom.register(bus=b, registry=registry)
    tprom.register(bus=b, registry=registry, namespace="other")
    b.publish(SystemEvent("orch", "startup"))
    got = scrape(registry)
    assert got[("tracebus_events_published_total", ())] == 0
    assert got[("other_events_published_total", ())] == 1
    a.close()
    b.close()


def test_store_only_and_bad_arguments() -> None:
    store = StateStore()
    registry = CollectorRegistry()
    tprom.register(store=store, registry=registry)
    store.set_service_state(ManagedServiceUpdate(ServiceType.SYSTEM, "sys", ServiceState.RUNNING))
    got = scrape(registry)
    assert got[("tracebus_state_changes_total", ())] == 1
    assert ("tracebus_events_published_total", ()) not in got
    with pytest.raises(ValueError, match="bus"):
        tprom.register(registry=registry)
    with pytest.raises(TypeError, match="bus"):
        tprom.register(bus=store, registry=registry)  # type: ignore[arg-type]


def test_example_runs() -> None:
    out = run_example("prometheus_metrics.py")
    assert "tracebus_events_published_total 3.0" in out
    assert "tracebus_handler_errors_total 1.0" in out
    assert 'tracebus_services{state="Running",type="PortForward"} 1.0' in out
