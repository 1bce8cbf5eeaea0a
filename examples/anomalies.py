"""Anomalies, measured: ``PerformanceMonitor(anomalies=True)`` keeps EWMA baselines of the
event rate per type and per source, the drop rate and the p99 handler latency, and publishes
a ``system.anomaly`` ``SystemEvent`` when one leaves its band for N intervals.

Run: ``python examples/anomalies.py``. A steady 10 events a second, then a burst of
failures: it prints each anomaly event the monitor published (metric, baseline, observed
value, z-score). The monitor runs on a simulated clock here, so the example is instant.
"""

import tracebus as tb
from tracebus import AnomalyConfig, EventBus, PerformanceMonitor, SystemEvent


def main() -> None:
    bus = EventBus()
    now = 0.0
    monitor = PerformanceMonitor(
        bus, anomalies=AnomalyConfig(intervals=2, warmup=3), clock=lambda: now
    )

    @bus.on(SystemEvent)
    def alert(event: SystemEvent) -> None:
        if event.action == "anomaly":
            m = event.metadata
            print(
                f"{event.severity} {m['metric']}: {m['observed']:.1f}/s vs baseline "
                f"{m['baseline']:.1f}/s (z={m['z_score']:+.1f})"
            )

    monitor.sample()
    for second in range(12):
        for _ in range(10):
            bus.publish(tb.UserActionEvent("refresh", "PortForward", "pf-api"))
        if second >= 8:  # the failure: pf-api fails 20 times a second
            for _ in range(20):
                bus.publish(tb.ServiceStateEvent("PortForward", "pf-api", "Running", "Failed"))
        now += 1.0
        monitor.sample()
    print(f"anomalies: {len(monitor.anomalies())}")
    bus.close()


if __name__ == "__main__":
    main()
