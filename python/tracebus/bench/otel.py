"""Case "otel": what ``tracebus.otel.instrument`` costs per handled event (a span per
handled event, exported to an exporter that discards it), against the same bus without it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..bus import EventBus
from .fanout import _tb_filtered, _tb_type
from .framework import Trial
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


def _instrument(bus: EventBus) -> Callable[[], object]:
    """Instruments ``bus`` with a discarding SDK provider; returns the undo."""
    from .. import otel

    return otel.instrument(bus, tracer_provider=_discarding_provider()).uninstrument


def _tb_traced(instrumented: bool) -> Callable[[_Topics, int], Trial]:
    """Case (a)'s tracebus, instrumented or not."""
    return _tb_filtered(_tb_type, prepare_bus=_instrument if instrumented else None)
