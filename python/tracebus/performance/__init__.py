"""The performance layer: batching, an event bus with batching and monitoring wired in, a
performance monitor with a documented health score, and an event pool facade.

- ``EventBatchProcessor`` (Rust: ``rust/batch.rs`` and ``rust/py_batch.rs``): queues events
  and publishes them in batches from a Rust thread, one ``bus.publish_many(list)`` call and
  one interpreter acquisition per batch.
- ``OptimizedEventBus(config)``: an ``EventBus`` whose ``publish`` goes through a batch
  processor, with a ``PerformanceMonitor`` sampling it and its ``StateStore``.
- ``PerformanceMonitor(bus, store)``: samples the bus's and the store's counters once per
  interval into a frozen ``PerformanceMetrics``; ``performance_score`` is its formula. With
  ``anomalies=True`` it keeps EWMA baselines (``AnomalyDetector``) and publishes
  ``system.anomaly`` events.
- ``EventPoolManager``: the design's pool API as a thin, safe facade (events are immutable,
  so pooling cannot save what it saved in the reference; see its docstring for figures).
"""

from .anomaly import Anomaly, AnomalyConfig, AnomalyDetector
from .batch import EventBatchProcessor
from .monitor import PerformanceMetrics, PerformanceMonitor
from .optimized import (
    OptimizedEventBus,
    OptimizedEventBusConfig,
    default_optimized_event_bus_config,
)
from .pool import EventPoolManager
from .score import DROP_PENALTY_CAP as DROP_PENALTY_CAP
from .score import HEALTHY_SCORE as HEALTHY_SCORE
from .score import LATENCY_PENALTY_CAP as LATENCY_PENALTY_CAP
from .score import LATENCY_THRESHOLD_MS as LATENCY_THRESHOLD_MS
from .score import SUBSCRIPTION_PENALTY_CAP as SUBSCRIPTION_PENALTY_CAP
from .score import SUBSCRIPTION_THRESHOLD as SUBSCRIPTION_THRESHOLD
from .score import performance_score

__all__ = [
    "Anomaly",
    "AnomalyConfig",
    "AnomalyDetector",
    "EventBatchProcessor",
    "EventPoolManager",
    "OptimizedEventBus",
    "OptimizedEventBusConfig",
    "PerformanceMetrics",
    "PerformanceMonitor",
    "default_optimized_event_bus_config",
    "performance_score",
]
