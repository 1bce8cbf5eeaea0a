"""The "otel" bench case measures an instrumented bus whose every handled event becomes an
exported span, beside the same bus without instrumentation."""

from __future__ import annotations

import dataclasses

import pytest

from tracebus.bench import CASES, measure_case

pytest.importorskip("opentelemetry.sdk")


def test_otel_case_runs_both_contenders_and_checks_deliveries() -> None:
    case = next(c for c in CASES if c.key == "otel")
    tiny = dataclasses.replace(case, n=300, n_quick=300)
    results = measure_case(tiny, quick=True, repeats=1)
    for name in ("tracebus", "not instrumented"):
        r = results[name]
        assert r.error is None, r.error
        assert r.ops == 300 and len(r.runs) == 1 and r.runs[0] > 0


def test_instrumented_trial_exports_one_span_per_handled_event() -> None:
    from tracebus.bench import otel as bench_otel
    from tracebus.bench.inputs import _prepare_fanout

    exported: list[int] = []
    provider = bench_otel._discarding_provider()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Count(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            exported.append(len(spans))  # type: ignore[arg-type]
            return SpanExportResult.SUCCESS

    provider.add_span_processor(SimpleSpanProcessor(Count()))
    original = bench_otel._discarding_provider
    bench_otel._discarding_provider = lambda: provider
    try:
        trial = bench_otel._tb_traced(True)(_prepare_fanout(1)(50), 50)
        assert trial.run() == 50
        trial.close()
    finally:
        bench_otel._discarding_provider = original
    assert sum(exported) == 50
