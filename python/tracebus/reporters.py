"""Integration: the ``ServiceReporter`` protocol and its implementations."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from . import _core
from ._core import (
    Channel,
    ChannelClosed,
    HealthEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    PriorityBufferStrategy,
    SimpleBufferStrategy,
    StateStore,
    StateTransition,
)
from ._drain import check_timeout, time_left, work_part
from ._enums import ServiceState
from .bus import EventBus
from .logging import CorrelationFilter

__all__ = [
    "ConsoleReporter",
    "EventBusAdapter",
    "ServiceReporter",
    "TUIReporter",
    "TUIReporterConfig",
]


@runtime_checkable
class ServiceReporter(Protocol):
    """What services report to: state updates, health updates, and the state store."""

    def report(self, update: ManagedServiceUpdate) -> None:
        """Reports one service state update."""

    def report_health(self, update: HealthStatusUpdate) -> None:
        """Reports one cluster health update."""

    def get_state_store(self) -> StateStore:
        """The state store holding the reported states."""


class _HealthEdges:
    """Remembers each cluster's last health to detect the unhealthy → healthy edge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], bool] = {}

    def recovered(self, update: HealthStatusUpdate) -> bool:
        key = (update.context_name, update.cluster_short_name)
        with self._lock:
            before = self._last.get(key)
            self._last[key] = update.is_healthy
        return before is False and update.is_healthy


class EventBusAdapter:
    """A ``ServiceReporter`` that applies updates to a state store and publishes events.

    ``report`` applies the update atomically (old and new state from one transition) and
    publishes a ``ServiceStateEvent`` carrying the update's timestamp and ids when the state
    changed, and also when only readiness, error, port or pid changed (old and new state then
    equal), so that the event history alone rebuilds the store; an identical re-report
    publishes nothing. ``report_health`` publishes a ``HealthEvent``: ``health.recovery`` on an
    unhealthy → healthy edge, else ``health.check`` / ``health.failure``.

    ``close()`` closes the adapter's bus (ending its subscriptions; see ``EventBus.close``);
    the adapter is a context manager that closes it on exit.
    """

    def __init__(self, bus: EventBus | None = None, store: StateStore | None = None) -> None:
        if bus is not None and not isinstance(bus, _core.EventBus):
            raise TypeError(f"bus must be an EventBus or None, got {type(bus).__name__}")
        if store is not None and not isinstance(store, StateStore):
            raise TypeError(f"store must be a StateStore or None, got {type(store).__name__}")
        self.bus = bus if bus is not None else EventBus()
        self.store = store if store is not None else StateStore()
        self._health = _HealthEdges()

    def report(self, update: ManagedServiceUpdate) -> StateTransition:
        """Applies ``update`` and publishes the state change, if any, in the store's order
        for the label (``StateStore.transition_and_publish``): events of one label chain
        (``old_state`` is the previous event's ``new_state``) whatever the threads. A closed
        bus raises ``BusClosedError`` before the store is touched. Returns the transition."""
        return self.store.transition_and_publish(update, self.bus)

    def report_health(self, update: HealthStatusUpdate) -> None:
        """Publishes the health event for ``update``."""
        if not isinstance(update, HealthStatusUpdate):
            raise TypeError(f"update must be a HealthStatusUpdate, got {type(update).__name__}")
        self.bus.publish(HealthEvent.from_update(update, recovered=self._health.recovered(update)))

    def get_state_store(self) -> StateStore:
        """The adapter's state store."""
        return self.store

    def get_event_bus(self) -> EventBus:
        """The adapter's event bus."""
        return self.bus

    def close(self, timeout: float = 5.0) -> None:
        """Closes the adapter's bus: its subscriptions end, handler threads finish their
        buffers (waited up to ``timeout`` s); later reports raise ``BusClosedError``.
        Idempotent."""
        self.bus.close(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _default_strategy() -> PriorityBufferStrategy:
    return PriorityBufferStrategy()


@dataclass
class TUIReporterConfig:
    """TUI reporter settings (reference defaults: 1000 items, priority eviction)."""

    buffer_size: int = 1000
    buffer_strategy: SimpleBufferStrategy | PriorityBufferStrategy = field(
        default_factory=_default_strategy
    )
    state_store: StateStore | None = None


class TUIReporter:
    """Feeds a terminal UI: applies updates to the state store and forwards them (updates and
    health updates) to a consumer through a bounded buffer.

    ``update_queue`` may be a tracebus ``Channel`` (used as the buffer directly), a
    ``queue.Queue`` or an ``asyncio.Queue`` (fed from the buffer by a forwarder thread; create
    the reporter inside the running loop for an ``asyncio.Queue``), or None (read
    ``reporter.channel``). Every loss is counted: see ``stats()``. With the default priority
    strategy a FAILED update is never evicted while a less severe one is buffered.
    """

    def __init__(self, update_queue: Any = None, config: TUIReporterConfig | None = None) -> None:
        cfg = config if config is not None else TUIReporterConfig()
        if not isinstance(cfg, TUIReporterConfig):
            raise TypeError(f"config must be a TUIReporterConfig or None, got {type(cfg).__name__}")
        self.config = cfg
        self.store = cfg.state_store if cfg.state_store is not None else StateStore()
        self._forward_dropped = 0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        if isinstance(update_queue, Channel):
            self.channel = update_queue
            return
        self.channel = Channel(cfg.buffer_size, cfg.buffer_strategy)
        if update_queue is None:
            return
        if isinstance(update_queue, asyncio.Queue):
            loop = asyncio.get_running_loop()
            target = update_queue

            def put(item: object) -> None:
                try:
                    target.put_nowait(item)
                except asyncio.QueueFull:
                    self._forward_dropped += 1

            def forward(item: object) -> None:
                try:
                    loop.call_soon_threadsafe(put, item)
                except RuntimeError:  # the loop is closed: nobody reads the queue any more
                    self._forward_dropped += 1

            self._start_forwarder(forward)
        elif isinstance(update_queue, queue.Queue):
            q: queue.Queue[object] = update_queue

            def put_blocking(item: object) -> None:
                # Waits for room, but not past a close() whose timeout ran out: what cannot
                # be handed over then is counted (without waiting), not silently left behind.
                while not self._closing.is_set():
                    try:
                        q.put(item, timeout=0.02)
                        return
                    except queue.Full:
                        pass
                try:
                    q.put_nowait(item)
                except queue.Full:
                    self._forward_dropped += 1

            self._start_forwarder(put_blocking)
        else:
            raise TypeError(
                "update_queue must be a tracebus Channel, a queue.Queue, an asyncio.Queue or None, "
                f"got {type(update_queue).__name__}"
            )

    def _start_forwarder(self, put: Any) -> None:
        def run() -> None:
            for item in self.channel:
                put(item)

        self._thread = threading.Thread(target=run, name="tracebus-tui-forwarder", daemon=True)
        self._thread.start()

    def report(self, update: ManagedServiceUpdate) -> None:
        """Stores ``update`` and forwards it to the consumer."""
        self.store.set_service_state(update)
        self._send(update)

    def report_health(self, update: HealthStatusUpdate) -> None:
        """Forwards a health update to the consumer."""
        if not isinstance(update, HealthStatusUpdate):
            raise TypeError(f"update must be a HealthStatusUpdate, got {type(update).__name__}")
        self._send(update, severity="info" if update.is_healthy else "error")

    def _send(self, item: object, severity: str | None = None) -> None:
        try:
            self.channel.send(item, severity=severity)
        except ChannelClosed:
            pass  # counted as dropped by the channel

    def get_state_store(self) -> StateStore:
        """The reporter's state store."""
        return self.store

    def stats(self) -> dict[str, int]:
        """Buffer counters plus ``forward_dropped`` (an asyncio.Queue that was full)."""
        s = {k: int(v) for k, v in self.channel.stats().items() if isinstance(v, int)}
        s["forward_dropped"] = self._forward_dropped
        return s

    def close(self, timeout: float = 5.0) -> None:
        """Closes the buffer; the forwarder hands over what is buffered and stops. Returns
        within ``timeout`` seconds: updates a full ``queue.Queue`` still refuses then are
        counted in ``forward_dropped`` (by the forwarder, which finishes without waiting)."""
        t = check_timeout("timeout", timeout)
        self.channel.close()
        if self._thread is not None:
            deadline = None if t is None else time.monotonic() + t
            # Most of the time for the hand-over; the rest for the forwarder to count what
            # the queue refuses once ``_closing`` is set.
            self._thread.join(None if t is None else work_part(t))
            self._closing.set()
            self._thread.join(time_left(deadline))


class ConsoleReporter:
    """Logs updates through ``logging`` with the reference's level rules: FAILED → ERROR,
    UNKNOWN → WARNING, STARTING/STOPPING/RETRYING → DEBUG, RUNNING/STOPPED → INFO; unhealthy
    clusters → WARNING (ERROR with an error text).

    Each record carries ``correlation_id``, ``event_id``, ``parent_id`` and ``caused_by``: an
    update's own ids, else the current scope's (a ``tracebus.logging.CorrelationFilter`` is
    added to the logger unless it has one)."""

    def __init__(
        self, logger: logging.Logger | None = None, store: StateStore | None = None
    ) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or None, got {type(logger).__name__}")
        self.logger = logger if logger is not None else logging.getLogger("tracebus.console")
        if not any(isinstance(f, CorrelationFilter) for f in self.logger.filters):
            self.logger.addFilter(CorrelationFilter())
        self.store = store if store is not None else StateStore()

    _LEVELS = {
        ServiceState.FAILED: logging.ERROR,
        ServiceState.UNKNOWN: logging.WARNING,
        ServiceState.RETRYING: logging.DEBUG,
        ServiceState.STARTING: logging.DEBUG,
        ServiceState.STOPPING: logging.DEBUG,
    }

    def report(self, update: ManagedServiceUpdate) -> None:
        """Stores and logs ``update``."""
        self.store.set_service_state(update)
        ids = {
            "correlation_id": update.correlation_id,
            "event_id": update.event_id,
            "parent_id": update.parent_id,
            "caused_by": update.caused_by,
        }
        self.logger.log(self._LEVELS.get(update.state, logging.INFO), "%s", update, extra=ids)

    def report_health(self, update: HealthStatusUpdate) -> None:
        """Logs a health update."""
        if not isinstance(update, HealthStatusUpdate):
            raise TypeError(f"update must be a HealthStatusUpdate, got {type(update).__name__}")
        level = (
            logging.INFO
            if update.is_healthy
            else (logging.ERROR if update.error else logging.WARNING)
        )
        event = HealthEvent.from_update(update)
        ids = {
            "correlation_id": event.correlation_id,
            "event_id": event.event_id,
            "parent_id": event.parent_id,
            "caused_by": event.caused_by,
        }
        self.logger.log(level, "%s", event, extra=ids)

    def get_state_store(self) -> StateStore:
        """The reporter's state store."""
        return self.store
