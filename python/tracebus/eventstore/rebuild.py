"""Event sourcing: a ``StateStore`` rebuilt from the stored ``ServiceStateEvent``s."""

from __future__ import annotations

from .._core import ManagedServiceUpdate, ServiceStateEvent, StateStore
from .._enums import EventType
from .store import OnError, SqliteEventStore

_SERVICE_TYPES = tuple(
    t.value for t in EventType if t.value.startswith("service.")
)  # the types a ServiceStateEvent can have


def update_from_event(event: ServiceStateEvent) -> ManagedServiceUpdate:
    """The ``ManagedServiceUpdate`` that produced ``event`` (same type, label, state,
    readiness, error, port, pid, ids and timestamp): applying it to a ``StateStore`` gives
    the snapshot the publishing process's store holds. Used by ``rebuild_state`` and by the
    Redis bridge (``tracebus.redis``) for service states received from other
    processes."""
    return ManagedServiceUpdate(
        event.service_type,
        event.source,
        event.new_state,
        is_ready=event.is_ready,
        error_detail=event.error,
        proxy_port=event.proxy_port,
        pid=event.pid,
        correlation_id=event.correlation_id,
        caused_by=event.caused_by,
        parent_id=event.parent_id,
        timestamp=event.timestamp,
        event_id=event.event_id,
    )


def rebuild_state(
    event_store: SqliteEventStore, since: int = 0, *, on_error: OnError = "skip"
) -> StateStore:
    """Event sourcing: a fresh ``StateStore`` rebuilt by replaying the stored
    ``ServiceStateEvent``s in order. Each event becomes the ``ManagedServiceUpdate`` that
    produced it (``update_from_event``), so the snapshots equal the live store's for
    services whose every change was published (``EventBusAdapter`` publishes each state
    change)."""
    if not isinstance(event_store, SqliteEventStore):
        raise TypeError(f"event_store must be a SqliteEventStore, got {type(event_store).__name__}")
    store = StateStore()
    for r in event_store.records(since, on_error=on_error, _types=_SERVICE_TYPES):
        if isinstance(r.event, ServiceStateEvent):
            store.set_service_state(update_from_event(r.event))
    return store
