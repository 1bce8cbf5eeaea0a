"""Anomalies, measured: ``PerformanceMonitor(anomalies=True)`` keeps EWMA baselines of the
event rate per type and per source, the drop rate and the p99 handler latency, and publishes
a ``system.anomaly`` ``SystemEvent`` when one leaves its band for N intervals.

Run: ``python examples/anomalies.py``. A steady 10 events a second, then a burst of
failures: it prints each anomaly event the monitor published (metric, baseline, observed
value, z-score) of the rates. The monitor runs on a simulated clock, so it is instant.
"""

import tracebus as tb
from tracebus import AnomalyConfig, EventBus, PerformanceMonitor, SystemEvent


def main() -> None:
    bus = EventBus()
    now = 0.0
    monitor = PerformanceMonitor(
        bus, anomalies=AnomalyConfig(intervals=2, warmup=3), clock=lambda: now
    )

    alerts: list[SystemEvent] = []

    @bus.on(SystemEvent)
    def alert(event: SystemEvent) -> None:
        if event.action == "anomaly":
            alerts.append(event)

    monitor.sample()
    for second in range(12):
        for _ in range(10):
            bus.publish(tb.UserActionEvent("refresh", "PortForward", "pf-api"))
        if second >= 8:  # the failure: pf-api fails 20 times a second
            for _ in range(20):
                bus.publish(tb.ServiceStateEvent("PortForward", "pf-api", "Running", "Failed"))
        now += 1.0
        monitor.sample()
    # The rates (the p99 latency of this machine's handler calls may also move).
    for event in sorted(alerts, key=lambda e: str(e.metadata["metric"])):
        m = event.metadata
        if str(m["metric"]).startswith("rate."):
            print(
                f"{event.severity} {m['metric']}: {m['observed']:.1f}/s vs baseline "
                f"{m['baseline']:.1f}/s (z={m['z_score']:+.1f})"
            )
    bus.close()


if __name__ == "__main__":
    main()
