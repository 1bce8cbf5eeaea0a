"""Prometheus metrics for an event bus and a state store (extra ``tracebus[prometheus]``).

``register(bus=bus, store=store)`` adds one custom collector to a registry (the default
``prometheus_client.REGISTRY`` unless ``registry`` is given). It reads the Rust counters at
scrape time, so publishing and dispatch cost nothing more. Exported (``tracebus`` is the
default ``namespace``)::

    tracebus_events_published_total                 counter
    tracebus_events_published_by_type_total{type}   counter (one series per event type)
    tracebus_events_delivered_total                 counter  handler returns + channel accepts
    tracebus_events_dropped_total{reason}           counter  reason: buffer_full | evicted
    tracebus_events_buffered                        gauge    waiting in handler/channel buffers
    tracebus_handler_errors_total                   counter
    tracebus_handler_latency_seconds{quantile}      summary  0.5 and 0.99, of the samples
    tracebus_handler_latency_max_seconds            gauge
    tracebus_subscriptions{kind}                    gauge    kind: bus | state_store
    tracebus_services{type,state}                   gauge
    tracebus_state_changes_total                    counter
    tracebus_state_operations_total                 counter
    tracebus_state_subscription_dropped_total       counter
    tracebus_memory_bytes{component}                gauge    component: bus | state_store

Handler latency is sampled by the bus (each subscription's first 64 calls, then every 128th):
the summary's ``_count`` is the number of samples, its ``_sum`` their mean times that count,
and the quantiles are the bus's own estimates. Labels are low-cardinality only: no ids, no
service labels.

Limits: a custom collector reads the counters of the process it runs in. In
``prometheus_client``'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, e.g. gunicorn
workers) custom collectors are not aggregated across processes; serve each process's
registry on its own port (or give each bus its own ``namespace``/job) instead. One collector
per registry and namespace: two buses in one registry need two namespaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from ._core import EventBus, StateStore

__all__ = ["TracebusCollector", "register"]


def _num(metrics: Mapping[str, object], key: str) -> float:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


class TracebusCollector:
    """The collector behind ``register``; ``unregister()`` removes it from its registry."""

    def __init__(
        self,
        bus: EventBus | None = None,
        store: StateStore | None = None,
        *,
        namespace: str = "tracebus",
    ) -> None:
        if bus is None and store is None:
            raise ValueError("give a bus, a store or both")
        if bus is not None and not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus or None, got {type(bus).__name__}")
        if store is not None and not isinstance(store, StateStore):
            raise TypeError(f"store must be a StateStore or None, got {type(store).__name__}")
        self.bus = bus
        self.store = store
        self.namespace = namespace
        self.registry: CollectorRegistry | None = None

    def unregister(self) -> bool:
        """Removes the collector from its registry; False if it was not registered."""
        if self.registry is None:
            return False
        self.registry.unregister(self)
        self.registry = None
        return True

    def describe(self) -> Iterator[Metric]:
        """The metric families (without samples), so registering reads no counter."""
        return self._families(describe=True)

    def collect(self) -> Iterator[Metric]:
        """Reads the counters now."""
        return self._families(describe=False)

    def _families(self, *, describe: bool) -> Iterator[Metric]:
        ns = self.namespace
        subs = GaugeMetricFamily(f"{ns}_subscriptions", "Active subscriptions.", labels=["kind"])
        memory = GaugeMetricFamily(
            f"{ns}_memory_bytes", "Approximate bytes held.", labels=["component"], unit="bytes"
        )
        if self.bus is not None:
            yield from self._bus_families(ns, describe, subs, memory)
        if self.store is not None:
            yield from self._store_families(ns, describe, subs, memory)
        yield subs
        yield memory

    def _bus_families(
        self, ns: str, describe: bool, subs: GaugeMetricFamily, memory: GaugeMetricFamily
    ) -> Iterator[Metric]:
        assert self.bus is not None
        m: Mapping[str, Any] = {} if describe else self.bus.get_metrics()
        published = CounterMetricFamily(f"{ns}_events_published", "Events published.")
        by_type = CounterMetricFamily(
            f"{ns}_events_published_by_type", "Events published, by event type.", labels=["type"]
        )
        delivered = CounterMetricFamily(
            f"{ns}_events_delivered", "Deliveries: handler returns and items accepted by channels."
        )
        dropped = CounterMetricFamily(
            f"{ns}_events_dropped",
            "Events lost by a full buffer: refused (buffer_full) or evicted for a newer one.",
            labels=["reason"],
        )
        buffered = GaugeMetricFamily(f"{ns}_events_buffered", "Events waiting in buffers.")
        errors = CounterMetricFamily(f"{ns}_handler_errors", "Errors raised by handlers.")
        latency = Metric(
            f"{ns}_handler_latency_seconds", "Handler latency (sampled calls).", "summary"
        )
        latency_max = GaugeMetricFamily(
            f"{ns}_handler_latency_max_seconds", "Largest sampled handler latency."
        )
        if not describe:
            published.add_metric([], _num(m, "events_published"))
            for event_type, count in sorted(m.get("events_by_type", {}).items()):
                by_type.add_metric([str(event_type)], float(count))
            delivered.add_metric([], _num(m, "events_delivered"))
            dropped.add_metric(["buffer_full"], _num(m, "events_dropped"))
            dropped.add_metric(["evicted"], _num(m, "events_evicted"))
            buffered.add_metric([], _num(m, "events_buffered"))
            errors.add_metric([], _num(m, "handler_errors"))
            name = latency.name
            samples = _num(m, "latency_samples")
            for q, key in (("0.5", "p50_latency_ms"), ("0.99", "p99_latency_ms")):
                latency.add_sample(name, {"quantile": q}, _num(m, key) / 1000.0)
            latency.add_sample(f"{name}_count", {}, samples)
            latency.add_sample(f"{name}_sum", {}, _num(m, "average_latency_ms") / 1000.0 * samples)
            latency_max.add_metric([], _num(m, "max_latency_ms") / 1000.0)
            subs.add_metric(["bus"], _num(m, "active_subscriptions"))
            memory.add_metric(["bus"], _num(m, "memory_bytes"))
        yield from (published, by_type, delivered, dropped, buffered, errors, latency)
        yield latency_max

    def _store_families(
        self, ns: str, describe: bool, subs: GaugeMetricFamily, memory: GaugeMetricFamily
    ) -> Iterator[Metric]:
        assert self.store is not None
        services = GaugeMetricFamily(
            f"{ns}_services",
            "Services in the state store, by type and state.",
            labels=["type", "state"],
        )
        changes = CounterMetricFamily(f"{ns}_state_changes", "State changes stored.")
        operations = CounterMetricFamily(f"{ns}_state_operations", "State store writes.")
        sub_dropped = CounterMetricFamily(
            f"{ns}_state_subscription_dropped", "State changes lost by full subscriptions."
        )
        if not describe:
            m = self.store.get_metrics()
            counts = Counter(
                (str(s.source_type), str(s.state))
                for s in self.store.get_all_service_states().values()
            )
            for (service_type, state), n in sorted(counts.items()):
                services.add_metric([service_type, state], float(n))
            changes.add_metric([], _num(m, "state_changes"))
            operations.add_metric([], _num(m, "operations"))
            sub_dropped.add_metric([], _num(m, "subscription_drops"))
            subs.add_metric(["state_store"], _num(m, "active_subscriptions"))
            memory.add_metric(["state_store"], _num(m, "memory_bytes"))
        yield from (services, changes, operations, sub_dropped)


def register(
    *,
    bus: EventBus | None = None,
    store: StateStore | None = None,
    registry: CollectorRegistry | None = None,
    namespace: str = "tracebus",
) -> TracebusCollector:
    """Registers a ``TracebusCollector`` for ``bus`` and/or ``store`` in ``registry``
    (default: ``prometheus_client.REGISTRY``); ``.unregister()`` on the result removes it."""
    collector = TracebusCollector(bus, store, namespace=namespace)
    target = registry if registry is not None else REGISTRY
    target.register(collector)
    collector.registry = target
    return collector
