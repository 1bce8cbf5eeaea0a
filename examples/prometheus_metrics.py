"""Prometheus metrics read from the Rust counters at scrape time: register a collector, run
a little workload, print the exposition text (a real program would serve it with
``prometheus_client.start_http_server``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

import tracebus as tb
import tracebus.prometheus as tprom

bus = tb.EventBus(on_error=lambda exc, event, sub: None)
store = tb.StateStore()
registry = CollectorRegistry()
collector = tprom.register(bus=bus, store=store, registry=registry)
adapter = tb.EventBusAdapter(bus, store)


@bus.on(tb.filter_by_type(tb.EventType.SERVICE_FAILED))
def page_someone(event: tb.ServiceStateEvent) -> None:
    raise RuntimeError("pager is down")  # counted in tracebus_handler_errors_total


adapter.report(tb.ManagedServiceUpdate(tb.ServiceType.PORT_FORWARD, "pf-api", "Running"))
adapter.report(tb.ManagedServiceUpdate(tb.ServiceType.MCP_SERVER, "mcp", "Running"))
adapter.report(tb.ManagedServiceUpdate(tb.ServiceType.MCP_SERVER, "mcp", "Failed"))

for line in generate_latest(registry).decode().splitlines():
    if not line.startswith("#"):
        print(line)
collector.unregister()
bus.close()
