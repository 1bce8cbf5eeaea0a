"""``tracebus.otel``: spans from the SDK's in-memory exporters against ``bus.trace``; error
status and log records; the propagator in ``to_traceparent``/``from_traceparent``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")

from integrations_support import run_example
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tracebus.otel as totel
from tracebus import (
    DependencyEvent,
    EventBus,
    EventType,
    ServiceStateEvent,
    ServiceType,
    SystemEvent,
    UserActionEvent,
    correlation,
    filter_by_type,
    from_traceparent,
    to_traceparent,
)
from tracebus.correlation import to_trace_headers
from tracebus.trace import Trace


@dataclass
class Otel:
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Otel(spans, logs, tp, lp)
    tp.shutdown()
    lp.shutdown()


@pytest.fixture
def traced(otel: Otel) -> Iterator[tuple[EventBus, totel.Instrumentation]]:
    bus = EventBus(on_error=lambda *a: None)
    inst = totel.instrument(bus, otel.tracer_provider, otel.logger_provider)
    yield bus, inst
    inst.uninstrument()
    bus.close()


def failed(label: str) -> ServiceStateEvent:
    return ServiceStateEvent(label, ServiceType.PORT_FORWARD, "Running", "Failed")


def cascade(bus: EventBus) -> str:
    """failure → cascade.stop → 2 user actions; a separate system event in the same scope."""

    @bus.on(filter_by_type(EventType.SERVICE_FAILED))
    def on_failure(e: ServiceStateEvent) -> None:
        bus.publish(DependencyEvent(e.source, ServiceType.MCP_SERVER, ["a", "b"], "stop"))

    @bus.on(filter_by_type(EventType.CASCADE_STOP))
    def on_stop(e: DependencyEvent) -> None:
        for name in e.affected:
            bus.publish(UserActionEvent("stop", ServiceType.MCP_SERVER, name))

    with correlation("crash") as ctx:
        bus.publish(failed("pf"))
        bus.publish(SystemEvent("orch", "config_change"))
    return ctx.correlation_id


def tree_of_trace(t: Trace) -> set[tuple[str, str | None]]:
    """(event id, parent event id within the trace) for every node."""
    out: set[tuple[str, str | None]] = set()
    for root in t.roots:
        out.add((root.event.event_id, None))
        for _d, node in root.walk():
            for child in node.children:
                out.add((child.event.event_id, node.event.event_id))
    return out


def tree_of_spans(spans: list[ReadableSpan]) -> set[tuple[str, str | None]]:
    by_span_id = {s.context.span_id: str(s.attributes["tracebus.event_id"]) for s in spans}
    out: set[tuple[str, str | None]] = set()
    for s in spans:
        parent = by_span_id.get(s.parent.span_id) if s.parent is not None else None
        out.add((str(s.attributes["tracebus.event_id"]), parent))
    return out


def test_span_tree_equals_bus_trace(otel: Otel, traced: tuple[EventBus, object]) -> None:
    bus, _ = traced
    corr = cascade(bus)
    t = bus.trace(corr)
    spans = otel.finished()
    assert len(t) == 5 and len(spans) == 5
    assert tree_of_spans(spans) == tree_of_trace(t)
    # One trace, derived from the correlation id; span ids are the event ids.
    assert {s.context.trace_id for s in spans} == {int(corr.removeprefix("corr_"), 16)}
    for s in spans:
        assert s.context.span_id == int(str(s.attributes["tracebus.event_id"])[4:], 16)
        assert s.kind is SpanKind.INTERNAL
    names = sorted(s.name for s in spans)
    assert names == sorted(
        ["service.failed", "cascade.stop", "user.action", "user.action", "config.change"]
    )
    stop = next(s for s in spans if s.name == "cascade.stop")
    fail = next(s for s in spans if s.name == "service.failed")
    assert stop.parent is not None and stop.parent.span_id == fail.context.span_id
    assert fail.parent is None
    stop_event = next(e for e in t.events() if e.type == EventType.CASCADE_STOP)
    assert dict(stop.attributes or {}) == {
        "tracebus.event_id": stop_event.event_id,
        "tracebus.correlation_id": corr,
        "tracebus.source": stop_event.source,
        "tracebus.severity": str(stop_event.severity),
        "tracebus.caused_by": "service.failed",
        "tracebus.parent_id": fail.attributes["tracebus.event_id"],  # type: ignore[index]
    }
    # Children end before their parent (sync dispatch nests them).
    assert stop.end_time is not None and fail.end_time is not None
    assert stop.end_time <= fail.end_time
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert otel.logs.get_finished_logs() == ()


def test_handler_error_sets_status_and_emits_a_log_record(
    otel: Otel, traced: tuple[EventBus, object]
) -> None:
    bus, _ = traced

    def broken(e: object) -> None:
        raise ValueError("disk full")

    bus.subscribe(filter_by_type(EventType.SERVICE_FAILED), broken)
    bus.subscribe(None, lambda e: None)
    e = failed("pf")
    bus.publish(e)
    bus.publish(SystemEvent("orch", "startup"))
    spans = {s.name: s for s in otel.finished()}
    assert set(spans) == {"service.failed", "system.startup"}
    span = spans["service.failed"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: disk full"
    assert span.events == ()  # no span events by default
    assert spans["system.startup"].status.status_code is StatusCode.UNSET
    (rec,) = [r.log_record for r in otel.logs.get_finished_logs()]
    assert rec.event_name == totel.HANDLER_ERROR_EVENT
    assert rec.severity_text == "ERROR"
    assert rec.trace_id == span.context.trace_id and rec.span_id == span.context.span_id
    attrs = dict(rec.attributes or {})
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "disk full"
    assert "broken" in str(attrs["exception.stacktrace"])
    assert attrs["tracebus.event_id"] == e.event_id
    assert bus.get_metrics()["handler_errors"] == 1  # the bus still counts it


def test_span_events_option(otel: Otel) -> None:
    bus = EventBus(on_error=lambda *a: None)
    inst = totel.instrument(bus, otel.tracer_provider, otel.logger_provider, span_events=True)

    def broken(e: object) -> None:
        raise KeyError("k")

    bus.subscribe(None, broken)
    bus.publish(SystemEvent("orch", "startup"))
    (span,) = otel.finished()
    assert [ev.name for ev in span.events] == ["exception"]
    assert inst.uninstrument() is True
    assert inst.uninstrument() is False
    bus.close()


def test_thread_and_async_handlers_end_the_span(otel: Otel) -> None:
    async def main() -> tuple[str, str]:
        bus = EventBus()
        inst = totel.instrument(bus, otel.tracer_provider, otel.logger_provider)
        done = threading.Event()
        adone = asyncio.Event()
        seen: list[str] = []

        def worker(e: SystemEvent) -> None:
            seen.append(trace.get_current_span().get_span_context().span_id.__format__("016x"))
            done.set()

        async def ahandler(e: SystemEvent) -> None:
            await asyncio.sleep(0)
            bus.publish(UserActionEvent("restart", "PortForward", "pf"))
            adone.set()

        bus.subscribe(filter_by_type(EventType.SYSTEM_STARTUP), worker, mode="thread")
        bus.subscribe(filter_by_type(EventType.SYSTEM_STARTUP), ahandler)
        e = SystemEvent("orch", "startup")
        bus.publish(e)
        await asyncio.wait_for(adone.wait(), 30)
        assert await asyncio.to_thread(done.wait, 30)
        inst.uninstrument()
        bus.close()
        return e.event_id, seen[0]

    eid, worker_span = asyncio.run(main())
    spans = {s.name: s for s in otel.finished()}
    assert set(spans) == {"system.startup", "user.action"}
    start, child = spans["system.startup"], spans["user.action"]
    # The worker ran inside the event's span; the async handler's publish is its child.
    assert worker_span == eid[4:]
    assert child.parent is not None and child.parent.span_id == start.context.span_id
    assert "tracebus.incomplete" not in (start.attributes or {})


def test_remote_parent_joins_the_same_trace(otel: Otel, traced: tuple[EventBus, object]) -> None:
    bus, _ = traced
    # An event whose parent was handled in another process (same correlation).
    with correlation(
        "remote", correlation_id="corr_00000000000000ab", parent_id="evt_00000000000000cd"
    ):
        bus.publish(SystemEvent("orch", "startup"))
    (span,) = otel.finished()
    assert span.context.trace_id == 0xAB
    assert span.parent is not None and (span.parent.span_id, span.parent.is_remote) == (0xCD, True)


def test_correlation_inside_an_otel_span_joins_its_trace(
    otel: Otel, traced: tuple[EventBus, object]
) -> None:
    bus, _ = traced
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("http request") as outer:
        with correlation("http") as ctx:
            bus.publish(SystemEvent("orch", "startup"))
    sc = outer.get_span_context()
    assert ctx.correlation_id == f"corr_{sc.trace_id:032x}"
    assert ctx.parent_id == f"evt_{sc.span_id:016x}"
    spans = {s.name: s for s in otel.finished()}
    ev = spans["system.startup"]
    assert ev.context.trace_id == sc.trace_id
    assert ev.parent is not None and ev.parent.span_id == sc.span_id


def test_subscriptions_before_instrument_are_not_observed(otel: Otel) -> None:
    bus = EventBus()
    calls: list[int] = []
    bus.subscribe(None, lambda e: calls.append(1))
    inst = totel.instrument(bus, otel.tracer_provider)
    assert bus.subscription_count == 2  # + the observer
    bus.publish(SystemEvent("orch", "startup"))
    assert len(otel.finished()) == 1 and calls == [1]
    with pytest.raises(RuntimeError, match="already"):
        totel.instrument(bus)
    inst.uninstrument()
    assert bus.subscription_count == 1
    bus.publish(SystemEvent("orch", "startup"))
    assert len(otel.finished()) == 1
    inst2 = totel.instrument(bus, otel.tracer_provider)  # again after uninstrument
    inst2.uninstrument()
    bus.close()


def test_max_open_spans_ends_the_oldest(otel: Otel) -> None:
    bus = EventBus()
    inst = totel.instrument(bus, otel.tracer_provider, max_open_spans=1)
    gate = threading.Event()
    handled = threading.Semaphore(0)

    def slow(e: object) -> None:
        gate.wait(30)
        handled.release()

    bus.subscribe(None, slow, mode="thread")
    bus.publish(SystemEvent("orch", "startup"))
    bus.publish(SystemEvent("orch", "shutdown"))
    gate.set()
    assert handled.acquire(timeout=30) and handled.acquire(timeout=30)
    inst.uninstrument()
    spans = otel.finished()
    assert len(spans) == 2
    incomplete = {s.name for s in spans if (s.attributes or {}).get("tracebus.incomplete")}
    assert incomplete == {"system.startup"}  # evicted by the second event's span
    bus.close()


def test_ids_helpers() -> None:
    assert totel.trace_id_of("corr_00000000000000ab") == 0xAB
    assert totel.trace_id_of("corr_" + "f" * 32) == int("f" * 32, 16)
    assert totel.trace_id_of("my-op") is None
    assert totel.trace_id_of("corr_" + "0" * 16) is None
    assert totel.span_id_of("evt_00000000000000cd") == 0xCD
    assert totel.span_id_of("evt_1") is None


# --- propagation ---------------------------------------------------------------------------


def test_traceparent_through_the_propagator_keeps_tracestate() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = from_traceparent(tp, "http", tracestate="vendor=abc,other=1")
    assert ctx.correlation_id == "corr_4bf92f3577b34da6a3ce929d0e0e4736"
    assert to_traceparent(ctx.correlation_id, ctx.parent_id) == tp
    headers = to_trace_headers(ctx.correlation_id, ctx.parent_id)
    assert headers["traceparent"] == tp
    assert headers["tracestate"] == "vendor=abc,other=1"


def test_inject_and_extract_round_trip() -> None:
    with correlation(
        "op", correlation_id="corr_00000000000000ab", parent_id="evt_00000000000000cd"
    ):
        carrier = totel.inject({})
    assert carrier["traceparent"] == "00-000000000000000000000000000000ab-00000000000000cd-01"
    ctx = totel.extract(carrier, "queue")
    assert ctx is not None
    assert (ctx.correlation_id, ctx.parent_id, ctx.caused_by) == (
        "corr_00000000000000ab",
        "evt_00000000000000cd",
        "queue",
    )
    assert totel.extract({}) is None
    assert totel.inject({}) == {}  # no scope, no handler: nothing to carry


def test_example_runs() -> None:
    out = run_example("otel_tracing.py")
    assert out[0] == "spans: 4, one trace: True"
    assert out[1:] == [
        "service.failed (root) status=ERROR",
        "  cascade.stop status=UNSET",
        "    user.action status=UNSET",
        "    user.action status=UNSET",
        "log record: tracebus.handler.error RuntimeError",
    ]


def test_deterministic_only_with_the_sdk_tracer(otel: Otel) -> None:
    bus = EventBus()
    inst = totel.instrument(bus, otel.tracer_provider)
    assert inst.deterministic is True
    inst.uninstrument()
    noop = totel.instrument(bus, trace.NoOpTracerProvider())
    assert noop.deterministic is False
    bus.publish(SystemEvent("orch", "startup"))  # no-op spans: nothing breaks
    noop.uninstrument()
    bus.close()
