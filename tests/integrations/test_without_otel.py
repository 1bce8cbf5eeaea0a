"""Without ``opentelemetry`` importable, traceparent conversion behaves as it always did."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
import tracebus as tb
from tracebus.correlation import to_trace_headers
tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ctx = tb.from_traceparent(tp, "http", tracestate="v=1")
print(ctx.correlation_id, ctx.parent_id, ctx.caused_by)
print(tb.to_traceparent(ctx.correlation_id, ctx.parent_id))
print(tb.to_traceparent("corr_00000000000000ab", sampled=False))
print(sorted(to_trace_headers(ctx.correlation_id, ctx.parent_id).items()))
with tb.correlation("x") as c:
    print(c.parent_id)
try:
    import tracebus.otel
except ImportError:
    print("no tracebus.otel")
"""


def test_traceparent_without_opentelemetry() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert proc.stdout.splitlines() == [
        "corr_4bf92f3577b34da6a3ce929d0e0e4736 evt_00f067aa0ba902b7 http",
        tp,
        "00-000000000000000000000000000000ab-0000000000000001-00",
        f"[('traceparent', '{tp}'), ('tracestate', 'v=1')]",
        "None",
        "no tracebus.otel",
    ]
