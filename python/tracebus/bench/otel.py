"""Case "otel": what ``tracebus.otel.instrument`` costs per handled event (a span per
handled event, exported to an exporter that discards it), against the same bus without it."""

from __future__ import annotations

from typing import Any

from .._core import filter_by_type
from ..bus import EventBus
from .framework import Trial, _Count, _handler
from .inputs import _Topics


def _discarding_provider() -> Any:
    """An SDK ``TracerProvider`` whose spans are ended and handed to an exporter that drops
    them (the export path runs; nothing is kept)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class _Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Discard()))
    return provider


def _tb_traced(instrumented: bool) -> Any:
    def setup(shared: _Topics, n: int) -> Trial:
        bus = EventBus()
        inst = None
        if instrumented:
            from .. import otel

            inst = otel.instrument(bus, tracer_provider=_discarding_provider())
        c = _Count()
        bus.subscribe(filter_by_type(shared.match), _handler(c))
        events = shared.events[:n]
        publish = bus.publish

        def run() -> int:
            c.n = 0
            for e in events:
                publish(e)
            return c.n

        def close() -> None:
            if inst is not None:
                inst.uninstrument()
            bus.close()

        return Trial(n, n, run, close=close)

    return setup
