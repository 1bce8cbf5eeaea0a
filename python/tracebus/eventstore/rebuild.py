"""Event sourcing: a ``StateStore`` rebuilt from the stored ``ServiceStateEvent``s."""

from __future__ import annotations

import datetime

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
    event_store: SqliteEventStore,
    since: int = 0,
    *,
    until: int | float | datetime.datetime | None = None,
    on_error: OnError = "skip",
) -> StateStore:
    """Event sourcing: a fresh ``StateStore`` rebuilt by replaying the stored
    ``ServiceStateEvent``s in order. Each event becomes the ``ManagedServiceUpdate`` that
    produced it (``update_from_event``), so the snapshots equal the live store's for
    services whose every change was published (``EventBusAdapter`` publishes each state
    change).

    ``until`` rebuilds the state as it was at a point of the history: an ``int`` is a
    sequence number (events up to and including it), a ``float`` a timestamp (seconds
    since the epoch) and a ``datetime`` a moment (naive means UTC): events stamped at or
    before it. ``None`` (default): every event."""
    if not isinstance(event_store, SqliteEventStore):
        raise TypeError(f"event_store must be a SqliteEventStore, got {type(event_store).__name__}")
    until_seq, until_ts = _until(until)
    store = StateStore()
    for r in event_store.records(since, on_error=on_error, _types=_SERVICE_TYPES):
        if until_seq is not None and r.seq > until_seq:
            break
        if until_ts is not None and r.event.timestamp > until_ts:
            continue
        if isinstance(r.event, ServiceStateEvent):
            store.set_service_state(update_from_event(r.event))
    return store


def _until(until: object) -> tuple[int | None, float | None]:
    """``until`` as (sequence number, timestamp), one of them None."""
    if until is None:
        return None, None
    if isinstance(until, bool):
        raise TypeError("until must be a sequence number (int), a timestamp (float) or a datetime")
    if isinstance(until, int):
        if until < 0:
            raise ValueError(f"until must be a sequence number >= 0, got {until}")
        return until, None
    if isinstance(until, float):
        if until != until or until in (float("inf"), float("-inf")):
            raise ValueError(f"until must be a finite timestamp, got {until!r}")
        return None, until
    if isinstance(until, datetime.datetime):
        if until.tzinfo is None:
            until = until.replace(tzinfo=datetime.UTC)
        return None, until.timestamp()
    raise TypeError(
        "until must be a sequence number (int), a timestamp (float) or a datetime, "
        f"got {type(until).__name__}"
    )
