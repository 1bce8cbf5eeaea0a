"""``PerformanceMonitor(anomalies=True)``: EWMA baselines and ``system.anomaly`` events,
driven with synthetic rates on a fake clock."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import tracebus as tb
from tracebus import AnomalyConfig, Event, EventBus, PerformanceMonitor, SystemEvent
from tracebus.performance import AnomalyDetector

CFG = AnomalyConfig(intervals=2, warmup=3)


class Sim:
    """A bus, a monitor on a fake clock and the anomaly events it publishes."""

    def __init__(self, config: AnomalyConfig = CFG, *, history_size: int = 10_000) -> None:
        self.bus = EventBus(history_size=history_size)
        self.now = 0.0
        self.monitor = PerformanceMonitor(self.bus, anomalies=config, clock=lambda: self.now)
        self.events: list[SystemEvent] = []
        self.bus.subscribe(SystemEvent, self.events.append)
        self.monitor.sample()

    def interval(self, n: int, type: str = "user.action", source: str = "ui") -> None:
        for _ in range(n):
            self.bus.publish(Event(type, source))
        self.now += 1.0
        self.monitor.sample()

    def metrics(self) -> list[str]:
        return [str(e.metadata["metric"]) for e in self.events]


def test_steady_rate_with_noise_raises_nothing() -> None:
    sim = Sim()
    for n in [10, 11, 9, 10, 12, 10, 9, 11, 10, 10, 11, 9]:
        sim.interval(n)
    assert sim.events == []
    assert sim.monitor.anomalies() == []


def test_rate_spike_for_n_intervals_publishes_one_anomaly_per_figure() -> None:
    sim = Sim()
    for _ in range(8):
        sim.interval(10)
    sim.interval(100)
    assert sim.events == []  # one interval out of band is not enough (N = 2)
    sim.interval(100)
    assert sorted(sim.metrics()) == ["rate.source.ui", "rate.type.user.action"]
    e = sim.events[0]
    assert e.type == "system.anomaly" and e.severity is tb.Severity.WARN
    assert e.source == "performance-monitor" and e.action == "anomaly"
    meta = dict(e.metadata)
    assert meta["baseline"] == pytest.approx(10.0)
    assert meta["observed"] == pytest.approx(100.0)
    assert meta["z_score"] > 3 and meta["intervals"] == 2
    assert e.parent_id is None and e.caused_by == "performance_anomaly"
    sim.interval(100)
    assert len(sim.events) == 2  # reported once per excursion, not every interval
    assert [a.metric for a in sim.monitor.anomalies()] == [str(m) for m in sim.metrics()]


def test_a_single_outlier_is_not_learnt_and_not_reported() -> None:
    sim = Sim()
    for n in [10] * 6 + [100] + [10] * 4:
        sim.interval(n)
    assert sim.events == []
    base = sim.monitor._detector.baseline("rate.type.user.action")  # type: ignore[union-attr]
    assert base is not None and base[0] == pytest.approx(10.0)  # frozen during the outlier


def test_a_new_event_type_is_judged_against_zeros() -> None:
    sim = Sim()
    for _ in range(6):
        sim.interval(10)
    for _ in range(2):
        for _ in range(5):
            sim.bus.publish(tb.ServiceStateEvent("PortForward", "pf-1", "Running", "Failed"))
        sim.interval(10)
    assert "rate.type.service.failed" in sim.metrics()
    assert "rate.source.pf-1" in sim.metrics()


def test_a_rate_that_drops_to_zero_is_an_anomaly() -> None:
    sim = Sim()
    for _ in range(6):
        sim.interval(10)
    sim.interval(0)
    sim.interval(0)
    assert "rate.type.user.action" in sim.metrics()
    z = next(e.metadata["z_score"] for e in sim.events)
    assert z < -3


def test_drop_rate_and_latency_figures() -> None:
    bus = EventBus()
    now = [0.0]
    mon = PerformanceMonitor(bus, anomalies=CFG, clock=lambda: now[0])
    ch = bus.subscribe_channel(None, buffer_size=1)
    found: list[SystemEvent] = []
    bus.subscribe(SystemEvent, found.append)
    mon.sample()
    for n in [1] * 5 + [50, 50]:
        for _ in range(n):
            bus.publish(Event("user.action", "ui"))
        ch.drain()  # room for one event an interval: the rest are dropped
        now[0] += 1
        mon.sample()
    assert "drop_rate" in [e.metadata["metric"] for e in found]
    assert mon._detector.baseline("p99_latency_ms") is not None  # type: ignore[union-attr]


def test_anomalies_off_by_default_and_own_events_left_out() -> None:
    sim = Sim()
    for _ in range(6):
        sim.interval(10)
    for _ in range(2):
        sim.interval(100)
    n = len(sim.events)
    for _ in range(6):  # the anomaly events themselves never count as a figure
        sim.interval(100)
    assert len(sim.events) == n
    assert not any("system.anomaly" in m or "performance-monitor" in m for m in sim.metrics())
    plain = PerformanceMonitor(EventBus())
    plain.sample()
    plain.sample()
    assert plain.anomalies() == []


def test_detector_directly() -> None:
    d = AnomalyDetector(AnomalyConfig(intervals=1, warmup=2, threshold=2.0))
    assert d.observe({"x": 5.0}, 0) == []
    assert d.observe({"x": 5.0}, 1) == []
    (a,) = d.observe({"x": 50.0}, 2)
    assert (a.metric, a.baseline, a.observed) == ("x", 5.0, 50.0)
    assert "x 50 vs baseline 5" in a.describe()


def test_only_judges_the_figures_named() -> None:
    # The demo judges event rates only: latency and drops depend on the machine's load.
    d = AnomalyDetector(AnomalyConfig(intervals=1, warmup=2, threshold=2.0, only=("rate.",)))
    for t in (0, 1):
        assert d.observe({"rate.type.x": 5.0, "p99_latency_ms": 1.0}, t) == []
    (a,) = d.observe({"rate.type.x": 50.0, "p99_latency_ms": 100.0}, 2)
    assert a.metric == "rate.type.x"
    assert d.baseline("p99_latency_ms") is None


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"alpha": 0}, ValueError, "alpha"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"threshold": -1}, ValueError, "threshold"),
        ({"intervals": 0}, ValueError, "intervals"),
        ({"intervals": 1.5}, TypeError, "intervals"),
        ({"warmup": True}, TypeError, "warmup"),
        ({"min_std": float("nan")}, ValueError, "min_std"),
        ({"rel_std": -0.1}, ValueError, "rel_std"),
        ({"only": "rate."}, TypeError, "only"),
        ({"only": (1,)}, TypeError, "only"),
    ],
)
def test_config_bad_input(kwargs: dict[str, object], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        AnomalyConfig(**kwargs)  # type: ignore[arg-type]


def test_monitor_bad_input() -> None:
    with pytest.raises(TypeError, match="anomalies must be a bool or an AnomalyConfig"):
        PerformanceMonitor(EventBus(), anomalies="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock must be a callable"):
        PerformanceMonitor(EventBus(), clock=1.0)  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_demo_failure_scenario_triggers_an_anomaly(tmp_path: Path) -> None:
    from tracebus.cli.demo import DemoConfig, run_demo

    out = io.StringIO()
    cfg = DemoConfig(speed=0, seed=7, plain=True, db=str(tmp_path / "demo.db"))
    assert run_demo(cfg, out, live=False) == 0
    lines = [ln for ln in out.getvalue().splitlines() if "system.anomaly" in ln]
    assert any("rate.type.service.failed" in ln for ln in lines), out.getvalue()[-2000:]


def test_live_view_shows_an_anomaly() -> None:
    from rich.console import Console

    from tracebus.cli.live import LiveModel, render

    sim = Sim()
    for n in [10] * 6 + [100, 100]:
        sim.interval(n)
    model = LiveModel()
    model.consume(sim.events)
    console = Console(file=io.StringIO(), width=150, height=40, color_system=None)
    console.print(render(model, "demo", "footer"))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "system.anomaly" in text and "rate.type.user.action" in text
