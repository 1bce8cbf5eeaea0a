"""OpenTelemetry: a cascade becomes one trace, each event a span, a handler error sets the
span's status and is emitted as a log record. The SDK's in-memory exporters stand in for
an OTLP exporter here."""

from __future__ import annotations

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracebus as tb
import tracebus.otel as totel

spans = InMemorySpanExporter()
logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # untyped in the SDK
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
logger_provider = LoggerProvider()
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))

bus = tb.EventBus(on_error=lambda exc, event, sub: None)
instrumentation = totel.instrument(bus, tracer_provider, logger_provider)


@bus.on(tb.filter_by_type(tb.EventType.SERVICE_FAILED))
def cascade_stop(event: tb.ServiceStateEvent) -> None:
    bus.publish(tb.DependencyEvent(event.source, tb.ServiceType.MCP_SERVER, ["a", "b"], "stop"))


@bus.on(tb.filter_by_type(tb.EventType.SERVICE_FAILED))
def page_someone(event: tb.ServiceStateEvent) -> None:
    raise RuntimeError("pager is down")


@bus.on(tb.filter_by_type(tb.EventType.CASCADE_STOP))
def stop_dependents(event: tb.DependencyEvent) -> None:
    for name in event.affected:
        bus.publish(tb.UserActionEvent("stop", tb.ServiceType.MCP_SERVER, name))


with tb.correlation("port_forward_crash") as ctx:
    bus.publish(tb.ServiceStateEvent("pf", tb.ServiceType.PORT_FORWARD, "Running", "Failed"))

finished = spans.get_finished_spans()
trace_id = totel.trace_id_of(ctx.correlation_id)
one_trace = all(s.context is not None and s.context.trace_id == trace_id for s in finished)
print(f"spans: {len(finished)}, one trace: {one_trace}")
children: dict[int | None, list[ReadableSpan]] = {}
for s in finished:
    children.setdefault(s.parent.span_id if s.parent else None, []).append(s)


def show(span: ReadableSpan, depth: int) -> None:
    root = " (root)" if depth == 0 else ""
    print(f"{'  ' * depth}{span.name}{root} status={span.status.status_code.name}")
    for child in children.get(span.context.span_id, []) if span.context else []:
        show(child, depth + 1)


for root_span in children[None]:
    show(root_span, 0)
for record in logs.get_finished_logs():
    attributes = record.log_record.attributes or {}
    print(f"log record: {record.log_record.event_name} {attributes['exception.type']!s}")
instrumentation.uninstrument()
bus.close()
