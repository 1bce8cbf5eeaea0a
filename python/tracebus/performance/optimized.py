"""``OptimizedEventBus``: an ``EventBus`` with batching and monitoring wired in, and its
configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .. import _core
from .._core import Event, EventBatchProcessor, StateStore
from ..bus import EventBus
from ..types import OptimizedBusMetrics
from .monitor import PerformanceMetrics, PerformanceMonitor, _check_seconds


@dataclass(slots=True)
class OptimizedEventBusConfig:
    """Configuration of an ``OptimizedEventBus`` (defaults as in the reference).

    ``batch_flush_time`` and ``monitoring_interval`` are in seconds; ``state_store`` is the
    store the monitor samples (a new ``StateStore`` when None).
    """

    enable_batching: bool = True
    enable_monitoring: bool = True
    batch_size: int = 50
    batch_flush_time: float = 0.010
    monitoring_interval: float = 1.0
    state_store: StateStore | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises TypeError/ValueError naming the first bad field."""
        for name in ("enable_batching", "enable_monitoring"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise TypeError(f"batch_size must be an int, got {type(self.batch_size).__name__}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        _check_seconds("batch_flush_time", self.batch_flush_time)
        _check_seconds("monitoring_interval", self.monitoring_interval)
        if self.state_store is not None and not isinstance(self.state_store, StateStore):
            raise TypeError(
                f"state_store must be a StateStore or None, got {type(self.state_store).__name__}"
            )


# Estimated bytes of one event waiting in the batch queue: the slot and the event.
_QUEUED_EVENT_BYTES = 8 + 200

# The native publish, called directly (cheaper than super() on the per-event path; the
# Python EventBus in bus.py does not override publish).
_bus_publish = _core.EventBus.publish


def default_optimized_event_bus_config() -> OptimizedEventBusConfig:
    """Batching on (50 events or 10 ms), monitoring on (every second), a new store."""
    return OptimizedEventBusConfig()


class OptimizedEventBus(EventBus):
    """An ``EventBus`` with batching and monitoring wired in.

    With batching on, ``publish`` queues the event in an ``EventBatchProcessor`` and returns
    0; a Rust thread publishes batches of up to ``batch_size`` events (or what has queued
    for ``batch_flush_time`` seconds) through ``publish_many``, so sync handlers run in that
    thread, in publish order. ``publish(event, timeout=...)`` and ``publish_many`` publish
    at once, after flushing what was queued before (so one thread's events stay in order);
    a handler publishing while its batch is delivered publishes directly (a
    nested publish, bounded by ``max_depth`` as usual), and handlers running elsewhere
    (thread or async mode) never wait for room in the batch queue (see
    ``EventBatchProcessor``). ``flush()`` waits until everything
    published so far is delivered. ``get_performance_metrics()`` is the monitor's latest
    sample, or None with monitoring off. ``close()`` (or ``with``) stops the monitor,
    flushes and stops the batcher, then closes the bus: call it, as the batch and monitor
    threads keep the bus alive.

    >>> with OptimizedEventBus(default_optimized_event_bus_config()) as bus:
    ...     bus.subscribe(None, print)
    ...     bus.publish(event)
    ...     bus.flush()
    """

    __slots__ = ("__weakref__", "_batcher", "_config", "_monitor", "_store")

    _batcher: EventBatchProcessor | None
    _config: OptimizedEventBusConfig
    _monitor: PerformanceMonitor | None
    _store: StateStore

    def __new__(
        cls,
        config: OptimizedEventBusConfig | None = None,
        *,
        history_size: int = 10_000,
        max_depth: int = 64,
        on_error: Callable[[BaseException, Event, _core.Subscription], object] | None = None,
    ) -> OptimizedEventBus:
        if config is None:
            config = default_optimized_event_bus_config()
        if not isinstance(config, OptimizedEventBusConfig):
            raise TypeError(
                f"config must be an OptimizedEventBusConfig or None, got {type(config).__name__}"
            )
        config.validate()
        self: OptimizedEventBus = super().__new__(
            cls, history_size=history_size, max_depth=max_depth, on_error=on_error
        )  # type: ignore[assignment]
        self._config = config
        self._store = config.state_store if config.state_store is not None else StateStore()
        self._batcher = None
        self._monitor = None
        if config.enable_batching:
            self._batcher = EventBatchProcessor(self, config.batch_size, config.batch_flush_time)
            self._batcher.start()
        if config.enable_monitoring:
            self._monitor = PerformanceMonitor(self, self._store)
            self._monitor.start(config.monitoring_interval)
        return self

    def publish(self, event: Event, *, timeout: float | None = None) -> int:
        """Queues ``event`` for the next batch and returns 0 (deliveries happen when the
        batch goes out); without batching, or with a ``timeout``, publishes now (after what
        was queued before) and returns the number of deliveries."""
        b = self._batcher
        if b is None:
            return _bus_publish(self, event, timeout=timeout)
        if timeout is not None:
            b.flush()
            return _bus_publish(self, event, timeout=timeout)
        b.queue_event(event)
        return 0

    def publish_many(self, events: Any, *, timeout: float | None = None) -> int:
        """Publishes ``events`` now, in order, after everything queued before (it is already
        a batch); returns the number of deliveries. The batch thread publishes through this
        method too (its flush call returns at once there)."""
        b = self._batcher
        if b is not None:
            b.flush()
        return super().publish_many(events, timeout=timeout)

    def flush(self) -> None:
        """Returns when every event published so far has been delivered."""
        if self._batcher is not None:
            self._batcher.flush()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the monitor, flushes and stops the batcher, then closes the bus."""
        if self._monitor is not None:
            self._monitor.stop()
        if self._batcher is not None:
            self._batcher.stop()
        super().close(timeout)

    def get_metrics(self) -> OptimizedBusMetrics:
        """The bus's counters (see ``EventBus.get_metrics``) plus ``batch_queued``, the
        events waiting in the batch queue, which ``memory_bytes`` also counts (one queue
        slot and ~200 bytes of event each, as the bus counts its history)."""
        queued = self._batcher.stats()["queued"] if self._batcher is not None else 0
        d = OptimizedBusMetrics(**super().get_metrics(), batch_queued=queued)
        d["memory_bytes"] += queued * _QUEUED_EVENT_BYTES
        return d

    def get_performance_metrics(self) -> PerformanceMetrics | None:
        """The monitor's latest sample, or None when monitoring is off."""
        return self._monitor.get_metrics() if self._monitor is not None else None

    @property
    def config(self) -> OptimizedEventBusConfig:
        """The configuration the bus was built with."""
        return self._config

    @property
    def state_store(self) -> StateStore:
        """The store the monitor samples (the configured one, or the one created)."""
        return self._store

    @property
    def batch_processor(self) -> EventBatchProcessor | None:
        """The batch processor (None when batching is off)."""
        return self._batcher

    @property
    def performance_monitor(self) -> PerformanceMonitor | None:
        """The performance monitor (None when monitoring is off)."""
        return self._monitor

    def __enter__(self) -> OptimizedEventBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
