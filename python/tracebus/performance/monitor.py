"""``PerformanceMonitor``: samples a bus's and a store's counters into ``PerformanceMetrics``."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .._core import StateStore, SystemEvent
from ..correlation import correlation
from .anomaly import Anomaly, AnomalyConfig, AnomalyDetector
from .score import HEALTHY_SCORE, performance_score

_log = logging.getLogger("tracebus")


def _check_seconds(param: str, value: object) -> float:
    """A positive, finite number of seconds, or a TypeError/ValueError naming ``param``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number of seconds, got {type(value).__name__}")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{param} must be a positive, finite number of seconds, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    """One sample of a ``PerformanceMonitor``.

    Rates and the average latency are over the sample's interval (``interval_seconds``, the
    real time since the previous sample); counters are totals since the bus (or store) was
    created; p99 and max latency are over every sampled handler call since the bus was
    created (the bus keeps one cumulative histogram; it times each subscription's first 64
    handler calls, then every 128th). ``memory_usage_bytes`` is the bus's ``memory_bytes``
    (history and buffered events at ~200 bytes an event plus slots, 256 bytes a
    subscription) plus the store's (service snapshots with their strings, and subscriber
    buffers), plus, for an ``OptimizedEventBus``, its batch queue at the same ~208 bytes an
    event; Python objects held elsewhere (handlers, your own references) are not counted.
    """

    events_per_second: float = 0.0
    average_event_latency_ms: float = 0.0
    p99_event_latency_ms: float = 0.0
    max_event_latency_ms: float = 0.0
    event_processing_errors: int = 0
    active_subscriptions: int = 0
    events_sent: int = 0
    events_delivered: int = 0
    events_dropped: int = 0
    drop_ratio: float = 0.0
    memory_usage_bytes: int = 0
    state_store_operations: int = 0
    state_store_latency_ms: float = 0.0
    state_store_size: int = 0
    system_healthy: bool = True
    performance_score: float = 100.0
    interval_seconds: float = 0.0
    timestamp: float = 0.0


# A label that is never a real service: the store-latency probe reads it.
_PROBE_LABEL = "~tracebus-monitor-probe~"
#: Source of the monitor's ``system.anomaly`` events (left out of its own figures).
ANOMALY_SOURCE = "performance-monitor"
_ANOMALY_TYPE = "system.anomaly"


class PerformanceMonitor:
    """Samples an event bus (and optionally a state store) once per interval.

    ``start(interval)`` runs a daemon thread that wakes once per interval and calls
    ``sample()``; ``get_metrics()`` returns the latest ``PerformanceMetrics`` (all zero,
    score 100, before the first sample). ``sample()`` can also be called directly. The
    score is ``performance_score(drop_ratio, average_event_latency_ms,
    active_subscriptions)`` over the last interval; healthy means score > 70.

    Each sample reads ``bus.get_metrics()`` and ``store.get_metrics()`` and times one real
    store read (``get_service_state`` of a label that does not exist: the same lock and
    hash lookup as any point read) as ``state_store_latency_ms``.

    >>> with PerformanceMonitor(bus, store) as monitor:   # start(interval=1.0)
    ...     ...
    ...     print(monitor.get_metrics().events_per_second)

    ``anomalies=True`` (or an ``AnomalyConfig``) also keeps EWMA baselines, at each sample,
    of the event rate per event type (``rate.type.<type>``, from the bus's per-type
    counters) and per source (``rate.source.<source>``, counted in the bus's history of the
    interval's events, so at most ``history_size`` of them), the drop rate (``drop_rate``:
    dropped and evicted events a second) and the p99 handler latency (``p99_latency_ms``);
    when one stays out of its band for ``intervals`` samples in a row the monitor publishes
    on the bus a ``SystemEvent`` (source ``performance-monitor``, action ``anomaly``, type
    ``system.anomaly``, severity warn) whose metadata holds ``metric``, ``baseline``,
    ``observed``, ``z_score`` and ``intervals``, each one a new root operation (cause
    ``performance_anomaly``); ``anomalies()`` returns the recent ones. None of it runs on
    the publish path. ``clock`` (default ``time.monotonic``) is what rates are measured
    against: a simulation passes its own.
    """

    def __init__(
        self,
        bus: Any,
        store: StateStore | None = None,
        *,
        anomalies: bool | AnomalyConfig = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(getattr(bus, "get_metrics", None)):
            raise TypeError(
                f"bus must be an event bus with get_metrics(), got {type(bus).__name__}"
            )
        if store is not None and not isinstance(store, StateStore):
            raise TypeError(f"store must be a StateStore or None, got {type(store).__name__}")
        if isinstance(anomalies, AnomalyConfig):
            config: AnomalyConfig | None = anomalies
        elif isinstance(anomalies, bool):
            config = AnomalyConfig() if anomalies else None
        else:
            raise TypeError(
                f"anomalies must be a bool or an AnomalyConfig, got {type(anomalies).__name__}"
            )
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self._detector = AnomalyDetector(config) if config is not None else None
        self._recent: deque[Anomaly] = deque(maxlen=100)
        self._prev_by_type: dict[str, int] = {}
        self._clock = clock
        self._bus = bus
        self._store = store
        self._lock = threading.Lock()  # one sample at a time; guards _prev/_thread
        self._prev: tuple[float, int, int, int, int, int, float] | None = None
        self._metrics = PerformanceMetrics()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._interval = 1.0

    @property
    def bus(self) -> Any:
        """The sampled event bus."""
        return self._bus

    @property
    def store(self) -> StateStore | None:
        """The sampled state store, if any."""
        return self._store

    @property
    def running(self) -> bool:
        """Whether the sampling thread is running."""
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def interval(self) -> float:
        """Seconds between samples of the running (or last) sampling thread."""
        return self._interval

    def start(self, interval: float = 1.0) -> None:
        """Takes a baseline sample and starts sampling every ``interval`` seconds (> 0).
        Does nothing if already running."""
        iv = _check_seconds("interval", interval)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
        self.sample()  # baseline: the first interval's rates are measured from here
        stop = threading.Event()
        t = threading.Thread(
            target=self._run, args=(stop, iv), name="tracebus-monitor", daemon=True
        )
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return  # a concurrent start won
            self._stop, self._thread, self._interval = stop, t, iv
            t.start()

    def stop(self) -> None:
        """Stops sampling (waits for the thread). The last metrics stay readable."""
        with self._lock:
            t, stop = self._thread, self._stop
            self._thread = self._stop = None
        if stop is not None:
            stop.set()
        if t is not None and t is not threading.current_thread():
            t.join()

    def _run(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                self.sample()
            except Exception:  # a monitor must not die of one bad sample
                _log.exception("PerformanceMonitor: sampling failed")

    def get_metrics(self) -> PerformanceMetrics:
        """The latest sample."""
        return self._metrics

    def anomalies(self) -> list[Anomaly]:
        """The most recent anomalies (up to 100), oldest first; empty without
        ``anomalies=True``."""
        with self._lock:
            return list(self._recent)

    def _figures(
        self, m: Any, dt: float, d_pub: int, d_lost: int, by_type: dict[str, int]
    ) -> dict[str, float]:
        """One sample's figures for the anomaly detector (see the class docs)."""
        out: dict[str, float] = {
            "drop_rate": d_lost / dt,
            "p99_latency_ms": float(m.get("p99_latency_ms", 0.0)),
        }
        for t, n in by_type.items():
            if t != _ANOMALY_TYPE:
                out[f"rate.type.{t}"] = (n - self._prev_by_type.get(t, 0)) / dt
        history = getattr(self._bus, "history", None)
        if d_pub > 0 and callable(history):
            sources = Counter(e.source for e in history(limit=d_pub))
            sources.pop(ANOMALY_SOURCE, None)
            for src, n in sources.items():
                out[f"rate.source.{src}"] = n / dt
        return out

    def _publish(self, found: list[Anomaly]) -> None:
        publish = getattr(self._bus, "publish", None)
        for a in found:
            _log.info("PerformanceMonitor: anomaly %s", a.describe())
            if not callable(publish):
                continue
            meta = {
                "metric": a.metric,
                "baseline": a.baseline,
                "observed": a.observed,
                "z_score": a.z_score,
                "intervals": a.intervals,
            }
            with correlation.new("performance_anomaly"):
                event = SystemEvent(ANOMALY_SOURCE, "anomaly", a.describe(), metadata=meta)
            try:
                publish(event)
            except Exception:  # a closed bus: the anomaly stays in anomalies()
                _log.debug("PerformanceMonitor: could not publish %s", a.metric, exc_info=True)

    def sample(self) -> PerformanceMetrics:
        """Takes a sample now (rates over the time since the previous one) and returns it."""
        found: list[Anomaly] = []
        with self._lock:
            now = self._clock()
            m = self._bus.get_metrics()
            published = int(m.get("events_published", 0))
            delivered = int(m.get("events_delivered", 0))
            lost = int(m.get("events_dropped", 0)) + int(m.get("events_evicted", 0))
            dropped_only = int(m.get("events_dropped", 0))
            lat_n = int(m.get("latency_samples", 0))
            lat_sum = float(m.get("average_latency_ms", 0.0)) * lat_n
            subs = int(m.get("active_subscriptions", 0))

            st_ops = st_size = st_mem = 0
            st_lat = 0.0
            if self._store is not None:
                sm = self._store.get_metrics()
                st_ops = int(sm.get("operations", 0))
                st_size = int(sm.get("total_services", 0))
                st_mem = int(sm.get("memory_bytes", 0))
                t0 = time.perf_counter_ns()
                self._store.get_service_state(_PROBE_LABEL)
                st_lat = (time.perf_counter_ns() - t0) / 1e6

            prev = self._prev
            self._prev = (now, published, delivered, lost, dropped_only, lat_n, lat_sum)
            if prev is None:
                dt = 0.0
                d_pub = d_del = d_lost = d_drop = d_lat_n = 0
                d_lat_sum = 0.0
            else:
                dt = now - prev[0]
                d_pub, d_del, d_lost, d_drop, d_lat_n = (
                    published - prev[1],
                    delivered - prev[2],
                    lost - prev[3],
                    dropped_only - prev[4],
                    lat_n - prev[5],
                )
                d_lat_sum = lat_sum - prev[6]
            eps = d_pub / dt if dt > 0 else 0.0
            avg_lat = max(0.0, d_lat_sum / d_lat_n) if d_lat_n > 0 else 0.0
            attempts = d_del + d_drop
            drop_ratio = min(1.0, d_lost / attempts) if attempts > 0 and d_lost > 0 else 0.0
            score = performance_score(drop_ratio, avg_lat, subs)
            if self._detector is not None:
                by_type = {str(k): int(v) for k, v in dict(m.get("events_by_type", {})).items()}
                if dt > 0:
                    figures = self._figures(m, dt, d_pub, d_lost, by_type)
                    found = self._detector.observe(figures, time.time())
                    self._recent.extend(found)
                self._prev_by_type = by_type
            self._metrics = out = PerformanceMetrics(
                events_per_second=eps,
                average_event_latency_ms=avg_lat,
                p99_event_latency_ms=float(m.get("p99_latency_ms", 0.0)),
                max_event_latency_ms=float(m.get("max_latency_ms", 0.0)),
                event_processing_errors=int(m.get("handler_errors", 0)),
                active_subscriptions=subs,
                events_sent=published,
                events_delivered=delivered,
                events_dropped=lost,
                drop_ratio=drop_ratio,
                memory_usage_bytes=int(m.get("memory_bytes", 0)) + st_mem,
                state_store_operations=st_ops,
                state_store_latency_ms=st_lat,
                state_store_size=st_size,
                system_healthy=score > HEALTHY_SCORE,
                performance_score=score,
                interval_seconds=dt,
                timestamp=time.time(),
            )
        # Published outside the lock: a handler of the event may sample this monitor.
        self._publish(found)
        return out

    def __enter__(self) -> PerformanceMonitor:
        self.start(self._interval)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PerformanceMonitor(running={self.running}, interval={self._interval})"
