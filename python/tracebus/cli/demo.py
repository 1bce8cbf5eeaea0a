"""``tracebus demo``: a simulated service environment driven through tracebus's public API.

The environment is what the design was written for: per cluster a Kubernetes connection
(``KubeOperation``), port-forwards that depend on it and MCP servers that depend on the
port-forwards, plus a health monitor checking the management cluster and the workload
clusters. Services report through an ``EventBusAdapter`` (state store + bus) and a
``TUIReporter`` (the live view); bus handlers react to events and publish follow-ups, so
each cascade (startup, failure, recovery, user restart) is one correlation tree. Every
event is persisted to a ``SqliteEventStore`` and, with ``redis`` set, also published to a
Redis stream by a send-only ``RedisStreamBridge`` (``tracebus watch --redis URL`` shows it
live; what other processes write to the stream does not reach the demo's bus).

Scripted scenario, with ``D`` the duration in simulated seconds:

- ``0``: startup: connections start, port-forwards start when their connection runs,
  MCP servers when their port-forward runs (``cascade.start``).
- every 2 s: health checks of every cluster.
- ``0.25·D``: a workload cluster becomes unhealthy (``health.failure``); its port-forwards
  fail and their MCP servers stop (``cascade.stop``); the port-forwards retry twice.
- ``0.55·D``: the cluster is healthy again (``health.recovery``); the port-forwards
  restart and the MCP servers start again.
- ``0.75·D``: a user restarts a port-forward (``user.action``): it stops, its MCP servers
  stop, it starts, they start.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .._core import (
    Channel,
    DependencyEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceStateEvent,
    StateStore,
    SystemEvent,
    UserActionEvent,
    filter_by_type,
)
from .._enums import EventType, ServiceState, ServiceType
from ..bus import EventBus
from ..correlation import correlation
from ..eventstore import SqliteEventStore
from ..performance import AnomalyConfig, PerformanceMonitor
from ..reporters import EventBusAdapter, TUIReporter, TUIReporterConfig
from .summary import _fmt_event, _summary

__all__ = ["DemoConfig", "DemoEnvironment", "run_demo"]

_APPS = ["prometheus", "grafana", "loki", "tempo", "alertmanager", "mimir", "kyverno", "flux"]
_WORKLOAD_NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
HEALTH_INTERVAL = 2.0  # simulated seconds between health checks
#: The anomaly monitor samples once per health interval, in simulated time, just before
#: each health round; two out-of-band intervals in a row make an anomaly. Only the event
#: rates are judged: they follow the seeded story, while latency and drops depend on the
#: machine's load (the same seed must tell the same story).
DEMO_ANOMALIES = AnomalyConfig(intervals=2, warmup=3, only=("rate.",))


@dataclass
class DemoConfig:
    """Demo settings. ``speed`` is simulated seconds per wall-clock second (0: no waiting)."""

    services: int = 12
    duration: float = 30.0
    speed: float = 10.0
    seed: int | None = None
    db: str = "tracebus-demo.db"
    plain: bool = False
    redis: str | None = None  # a Redis URL: also publish every event to a stream there
    stream: str | None = None  # the stream's key (None: the bridge's default)
    max_tree_lines: int = 40
    max_table_rows: int = 40

    def validate(self) -> None:
        """Raises ``ValueError`` naming the bad setting."""
        if isinstance(self.services, bool) or not isinstance(self.services, int):
            raise TypeError(f"services must be an int, got {type(self.services).__name__}")
        if not 3 <= self.services <= 100_000:
            raise ValueError(f"services must be between 3 and 100000, got {self.services}")
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)):
            raise ValueError(f"duration must be a number of seconds, got {self.duration!r}")
        if not 0 < self.duration <= 86_400:
            raise ValueError(
                f"duration must be > 0 and at most 86400 simulated seconds, got {self.duration}"
            )
        if not (
            isinstance(self.speed, (int, float)) and math.isfinite(self.speed) and self.speed >= 0
        ):
            raise ValueError(
                f"speed must be a non-negative number (0 = no waiting), got {self.speed!r}"
            )
        for name in ("redis", "stream"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v):
                raise ValueError(f"{name} must be a non-empty string or None, got {v!r}")
        if self.stream is not None and self.redis is None:
            raise ValueError("stream needs redis (the URL of the server to publish to)")


@dataclass
class Service:
    """One simulated service and what depends on it."""

    label: str
    type: ServiceType
    cluster: str
    depends_on: str | None
    port: int = 0
    dependents: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    """One Kubernetes cluster: management (``is_mc``) or workload."""

    name: str
    context: str
    is_mc: bool
    nodes: int
    healthy: bool = True


def build_environment(n: int, rng: random.Random) -> tuple[list[Cluster], dict[str, Service]]:
    """Clusters and ``n`` services: per cluster one connection, port-forwards on it, and MCP
    servers on the port-forwards."""
    n_clusters = max(2, min(round(n / 8), n // 3, 50))
    clusters = []
    for i in range(n_clusters):
        if i == 0:
            name, is_mc = "golem", True
        else:
            base = _WORKLOAD_NAMES[(i - 1) % len(_WORKLOAD_NAMES)]
            name, is_mc = (
                (base if i <= len(_WORKLOAD_NAMES) else f"{base}{(i - 1) // len(_WORKLOAD_NAMES)}"),
                False,
            )
        ctx = f"teleport.example.io-{name}" if is_mc else f"teleport.example.io-golem-{name}"
        clusters.append(Cluster(name, ctx, is_mc, rng.randint(3, 7)))
    services: dict[str, Service] = {}
    rest = n - n_clusters
    port = 8000
    for i, c in enumerate(clusters):
        kube = Service(f"k8s-{c.name}", ServiceType.KUBE_OPERATION, c.name, None)
        services[kube.label] = kube
        k = rest // n_clusters + (1 if i < rest % n_clusters else 0)
        n_pf = (k + 1) // 2
        pfs = []
        for j in range(n_pf):
            app = _APPS[j % len(_APPS)] + ("" if j < len(_APPS) else str(j // len(_APPS)))
            pf = Service(
                f"pf-{c.name}-{app}", ServiceType.PORT_FORWARD, c.name, kube.label, port=port
            )
            port = port + 1 if port < 65000 else 8000
            services[pf.label] = pf
            kube.dependents.append(pf.label)
            pfs.append((app, pf))
        for j in range(k - n_pf):
            app, pf = pfs[j]
            mcp = Service(f"mcp-{app}-{c.name}", ServiceType.MCP_SERVER, c.name, pf.label)
            services[mcp.label] = mcp
            pf.dependents.append(mcp.label)
    return clusters, services


class _Fanout:
    """A ``ServiceReporter`` that hands each report to several reporters."""

    def __init__(self, adapter: EventBusAdapter, tui: TUIReporter | None) -> None:
        self.adapter = adapter
        self.tui = tui

    def report(self, update: ManagedServiceUpdate) -> None:
        self.adapter.report(update)
        if self.tui is not None:
            self.tui.report(update)

    def report_health(self, update: HealthStatusUpdate) -> None:
        self.adapter.report_health(update)
        if self.tui is not None:
            self.tui.report_health(update)

    def get_state_store(self) -> StateStore:
        return self.adapter.get_state_store()


class DemoEnvironment:
    """The simulated environment: services, clusters, bus handlers and the scenario."""

    def __init__(self, config: DemoConfig, *, tui: TUIReporter | None = None) -> None:
        config.validate()
        self.config = config
        self.rng = random.Random(config.seed)
        self.clusters, self.services = build_environment(config.services, self.rng)
        self.bus = EventBus(history_size=0)
        self.state = StateStore()
        self.adapter = EventBusAdapter(self.bus, self.state)
        self.tui = tui
        self.reporter = _Fanout(self.adapter, tui)
        self.cascades: list[str] = []  # correlation ids of the scenario's cascades, in order
        self.cascade_names: dict[str, str] = {}
        self._pids: dict[str, int] = {}
        self._failed_cluster: Cluster | None = None
        self._failure: tuple[str, str] | None = None  # (correlation id, parent event id)

    # -- reporting ----------------------------------------------------------------------

    def _set(self, label: str, state: ServiceState, error: str | None = None) -> None:
        svc = self.services[label]
        if state == ServiceState.STARTING:
            self._pids[label] = self.rng.randint(10_000, 60_000)
        elif state not in (ServiceState.RUNNING, ServiceState.STOPPING):
            self._pids.pop(label, None)
        running = state == ServiceState.RUNNING
        self.reporter.report(
            ManagedServiceUpdate(
                svc.type,
                label,
                state,
                is_ready=running,
                error_detail=error,
                proxy_port=svc.port if running else 0,
                pid=self._pids.get(label, 0),
            )
        )

    def state_of(self, label: str) -> ServiceState:
        """The current state of ``label`` (UNKNOWN before its first report)."""
        s = self.state.get_service_state(label)
        return ServiceState.UNKNOWN if s is None else ServiceState(s.state)

    def _start(self, label: str) -> None:
        self._set(label, ServiceState.STARTING)
        self._set(label, ServiceState.RUNNING)

    def _stop(self, label: str) -> None:
        self._set(label, ServiceState.STOPPING)
        self._set(label, ServiceState.STOPPED)

    # -- handlers: what the orchestrator does when events arrive -------------------------

    def subscribe_handlers(self) -> None:
        """Subscribes the orchestrator's handlers. Subscribe observers (event store, feed)
        first: a subscription sees an event before the follow-ups that handlers subscribed
        after it publish, so observers then see causes before effects."""
        stop_types = filter_by_type(EventType.SERVICE_FAILED, EventType.SERVICE_STOPPED)
        self.bus.subscribe(stop_types, self._on_down)
        self.bus.subscribe(filter_by_type(EventType.SERVICE_RUNNING), self._on_up)
        self.bus.subscribe(filter_by_type(EventType.HEALTH_FAILURE), self._on_health_failure)
        self.bus.subscribe(filter_by_type(EventType.HEALTH_RECOVERY), self._on_health_recovery)
        self.bus.subscribe(filter_by_type(EventType.USER_ACTION), self._on_user_action)

    def _cascade(
        self, event: ServiceStateEvent, action: str, wanted: Callable[[ServiceState], bool]
    ) -> None:
        svc = self.services.get(event.source)
        if svc is None or not svc.dependents:
            return
        affected = [d for d in svc.dependents if wanted(self.state_of(d))]
        if not affected:
            return
        # Published from a handler: joins the correlation of `event`, with it as parent.
        dep = DependencyEvent(svc.label, svc.type, affected, action)
        self.bus.publish(dep)
        with correlation(
            f"cascade_{action}", correlation_id=dep.correlation_id, parent_id=dep.event_id
        ):
            for label in affected:
                (self._start if action == "start" else self._stop)(label)

    def _on_down(self, event: ServiceStateEvent) -> None:
        self._cascade(
            event,
            "stop",
            lambda s: s in (ServiceState.STARTING, ServiceState.RUNNING, ServiceState.RETRYING),
        )

    def _on_up(self, event: ServiceStateEvent) -> None:
        self._cascade(
            event,
            "start",
            lambda s: s in (ServiceState.UNKNOWN, ServiceState.STOPPED, ServiceState.FAILED),
        )

    def _port_forwards_of(self, cluster: str) -> list[str]:
        kube = self.services[f"k8s-{cluster}"]
        return list(kube.dependents)

    def _on_health_failure(self, event: Any) -> None:
        name = event.cluster_short_name
        pfs = [p for p in self._port_forwards_of(name) if self.state_of(p) == ServiceState.RUNNING]
        if not pfs:
            return
        self._failure = (event.correlation_id, event.event_id)
        self._remember(event.correlation_id, f"cluster {name} fails")
        for pf in pfs:
            self._set(
                pf, ServiceState.FAILED, f"lost connection to pod: cluster {name} unreachable"
            )

    def _on_health_recovery(self, event: Any) -> None:
        self._remember(event.correlation_id, f"cluster {event.cluster_short_name} recovers")
        for pf in self._port_forwards_of(event.cluster_short_name):
            if self.state_of(pf) in (
                ServiceState.FAILED,
                ServiceState.STOPPED,
                ServiceState.RETRYING,
            ):
                self._start(pf)

    def _on_user_action(self, event: UserActionEvent) -> None:
        if event.action == "restart" and event.target_name in self.services:
            self._stop(event.target_name)
            self._start(event.target_name)

    # -- the scenario steps ------------------------------------------------------------

    def _remember(self, corr: str, name: str) -> None:
        if corr not in self.cascade_names:
            self.cascades.append(corr)
            self.cascade_names[corr] = name

    def startup(self) -> None:
        """Starts the system: connections, then (by cascade) port-forwards and MCP servers."""
        with correlation("system_startup") as ctx:
            self._remember(ctx.correlation_id, "startup")
            boot = SystemEvent("tracebus-demo", "startup", f"{len(self.services)} services")
            self.bus.publish(boot)
        with correlation(
            "system_startup", correlation_id=ctx.correlation_id, parent_id=boot.event_id
        ):
            for svc in self.services.values():
                if svc.type == ServiceType.KUBE_OPERATION:
                    self._start(svc.label)

    def health_round(self) -> None:
        """One health check of every cluster (one correlation per check)."""
        for c in self.clusters:
            with correlation("health_check"):
                ready = c.nodes if c.healthy else self.rng.randint(0, c.nodes // 2)
                err = None if c.healthy else "API server unreachable: connection refused"
                self.reporter.report_health(
                    HealthStatusUpdate(
                        c.context,
                        c.name,
                        c.is_mc,
                        c.healthy,
                        ready_nodes=ready,
                        total_nodes=c.nodes,
                        error=err,
                    )
                )

    def fail_cluster(self) -> None:
        """A workload cluster goes down: from the next health check on it is unhealthy."""
        workloads = [c for c in self.clusters if not c.is_mc]
        c = self.rng.choice(workloads)
        c.healthy = False
        self._failed_cluster = c

    def retry(self, attempt: int) -> None:
        """The failed port-forwards retry (and fail again while their cluster is down)."""
        c = self._failed_cluster
        if c is None or c.healthy or self._failure is None:
            return
        corr, parent = self._failure
        with correlation("retry", correlation_id=corr, parent_id=parent):
            for pf in self._port_forwards_of(c.name):
                if self.state_of(pf) == ServiceState.FAILED:
                    self._set(pf, ServiceState.RETRYING, f"retry {attempt}/2")
                    self._set(
                        pf,
                        ServiceState.FAILED,
                        f"retry {attempt}/2 failed: cluster {c.name} unreachable",
                    )

    def recover_cluster(self) -> None:
        """The failed cluster is healthy again from the next health check on."""
        if self._failed_cluster is not None:
            self._failed_cluster.healthy = True

    def user_restart(self) -> str | None:
        """A user restarts a running port-forward (with MCP servers) of a healthy cluster."""
        candidates = [
            s.label
            for s in self.services.values()
            if s.type == ServiceType.PORT_FORWARD and self.state_of(s.label) == ServiceState.RUNNING
        ]
        if not candidates:
            return None
        with_deps = [c for c in candidates if self.services[c].dependents] or candidates
        label = self.rng.choice(with_deps)
        with correlation("user_action") as ctx:
            self._remember(ctx.correlation_id, f"user restarts {label}")
            self.bus.publish(UserActionEvent("restart", ServiceType.PORT_FORWARD, label))
        return label

    def timeline(self) -> list[tuple[float, str, Callable[[], object]]]:
        """(simulated time, name, step) in order."""
        d = float(self.config.duration)
        # Below 8 simulated seconds the fixed offsets and the health interval are compressed
        # in proportion, so the whole scenario fits any positive duration.
        k = min(1.0, d / 8.0)
        steps: list[tuple[float, str, Callable[[], object]]] = [(0.0, "startup", self.startup)]
        t = HEALTH_INTERVAL * k / 2
        while t < d:
            steps.append((t, "health", self.health_round))
            t += HEALTH_INTERVAL * k
        steps += [
            (0.25 * d - 0.6 * k, "fail", self.fail_cluster),
            (0.25 * d + 2.2 * k, "retry", lambda: self.retry(1)),
            (0.25 * d + 3.4 * k, "retry", lambda: self.retry(2)),
            (0.55 * d - 0.5 * k, "recover", self.recover_cluster),
            (0.75 * d, "user", self.user_restart),
        ]
        steps.sort(key=lambda s: s[0])
        return steps


# -- running it --------------------------------------------------------------------------


def run_demo(config: DemoConfig, out: TextIO | None = None, *, live: bool | None = None) -> int:
    """Runs the demo, printing to ``out`` (default stdout). ``live`` (default: ``out`` is a
    terminal and not ``config.plain``) shows the rich live view. Returns an exit status."""
    out = out if out is not None else sys.stdout
    config.validate()
    use_live = (not config.plain and out.isatty()) if live is None else live
    tui = (
        TUIReporter(Channel(100_000), TUIReporterConfig(buffer_size=100_000)) if use_live else None
    )
    env = DemoEnvironment(config, tui=tui)
    db_path = os.path.abspath(config.db)
    bridge: Any = None
    if config.redis is not None:
        # Started first: an unreachable server fails the demo before anything runs.
        from ..redis import RedisStreamBridge

        kw: dict[str, Any] = {} if config.stream is None else {"stream": config.stream}
        # Send-only: events other processes write to the stream stay out of the demo's
        # bus, store and handlers.
        bridge = RedisStreamBridge(env.bus, config.redis, inbound=False, **kw).start()
    try:
        es = SqliteEventStore(db_path)
    except BaseException:
        if bridge is not None:
            bridge.stop()
        raise
    start_seq = es.last_seq()
    es.attach(env.bus)
    feed = env.bus.subscribe_channel(None, 1_000_000)
    env.subscribe_handlers()
    monitor = PerformanceMonitor(env.bus, env.state)
    monitor.sample()  # baseline: the summary's sample covers the whole run
    sim_now = 0.0
    watch = PerformanceMonitor(env.bus, anomalies=DEMO_ANOMALIES, clock=lambda: sim_now)
    steps = env.timeline()
    steps += [
        (k * HEALTH_INTERVAL, "anomalies", watch.sample)
        for k in range(int(config.duration // HEALTH_INTERVAL) + 1)
    ]
    steps.sort(key=lambda s: s[0])
    t0 = time.time()
    wall0 = time.perf_counter()
    printed = 0

    def pump_plain() -> None:
        nonlocal printed
        for e in feed.drain():
            out.write(_fmt_event(e, t0) + "\n")
            printed += 1

    view: Any = None
    if use_live:
        from .live import DemoLiveView

        view = DemoLiveView(env, feed, out, title="tracebus demo")
        view.start()
    try:
        for sim_t, _name, step in steps:
            if config.speed > 0:
                due = wall0 + sim_t / config.speed
                while True:
                    left = due - time.perf_counter()
                    if left <= 0:
                        break
                    if view is not None:
                        view.refresh(min(left, 0.1))
                    else:
                        pump_plain()
                        time.sleep(min(left, 0.05))
            sim_now = sim_t
            step()
            if view is None:
                pump_plain()
        if config.speed > 0:
            end = wall0 + config.duration / config.speed
            while time.perf_counter() < end:
                if view is not None:
                    view.refresh(min(end - time.perf_counter(), 0.1))
                else:
                    time.sleep(min(max(end - time.perf_counter(), 0), 0.05))
        es.flush()
        if view is not None:
            view.refresh(0)
    finally:
        if view is not None:
            view.stop()
        feed.close()
        if view is None:
            pump_plain()
        persisted = es.detach()
        redis_ok = True
        if bridge is not None:
            redis_ok = bridge.flush(timeout=30.0)
            bridge.stop()
    elapsed = time.perf_counter() - wall0
    _summary(env, es, out, start_seq, persisted, elapsed, db_path, monitor.sample())
    if bridge is not None:
        m = bridge.metrics()
        published = env.bus.get_metrics()["events_published"]
        out.write(
            f"  redis: {m['sent']} of {published} events sent to stream {bridge.stream} at "
            f"{config.redis}, errors {m['errors']}"
            f"{'' if redis_ok else ' — NOT ALL SENT (flush timed out)'}\n"
            f"  try: tracebus watch --redis {config.redis} --stream {bridge.stream}\n"
        )
    es.close()
    if tui is not None:
        tui.close()
    return 0 if redis_ok else 1
