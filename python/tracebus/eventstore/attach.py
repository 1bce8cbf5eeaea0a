"""The writer thread of ``SqliteEventStore.attach``."""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import weakref
from typing import TYPE_CHECKING, Any

from .. import bus as _bus_module
from .._core import Channel, Event, _encode_rows
from .._drain import Drain
from .errors import EventStoreError
from .rows import _encode_row, _Row

if TYPE_CHECKING:
    from .store import SqliteEventStore

_log = logging.getLogger("tracebus.eventstore")


class _Attachment:
    """The writer of ``SqliteEventStore.attach``: a ``Drain`` thread storing batches."""

    def __init__(
        self, store: SqliteEventStore, bus: Any, channel: Channel, batch_size: int
    ) -> None:
        self.store = store
        self.bus_id = id(bus)
        self.persisted = 0
        self.failed = 0
        self.drain = Drain(channel, batch_size, self._persist, name="tracebus-eventstore-writer")
        self.drain.start()
        # Flushed by bus.close() (a tracebus.EventBus) and at interpreter exit; detach()
        # drops both.
        _bus_module._close_hooks.setdefault(self.bus_id, {})[id(self)] = store.detach
        _attached.add(store)

    def restart(self) -> None:
        """In a forked child: a fresh writer thread on the same channel (the parent's
        stayed in the parent)."""
        old = self.drain
        self.drain = Drain(old.channel, old.batch_size, self._persist, name=old.thread.name)
        # What the parent's writer took from the channel is the parent's to store.
        self.drain.done = old.channel.stats()["delivered"]
        self.drain.start()

    def forget(self) -> None:
        """Drops the close hook and the exit flush (``detach`` does it)."""
        hooks = _bus_module._close_hooks.get(self.bus_id)
        if hooks is not None:
            hooks.pop(id(self), None)
            if not hooks:
                _bus_module._close_hooks.pop(self.bus_id, None)
        _attached.discard(self.store)

    def _persist(self, batch: list[Event]) -> None:
        try:
            rows = _encode_rows(batch, None, self._encode_or_skip)
        except Exception as err:  # not expected (_encode_or_skip catches): keep writing
            self.failed += len(batch)
            _log.error("event store: cannot encode a batch of %d events: %s", len(batch), err)
            return
        try:
            self.persisted += self.store._append_deduped(rows)
        except (EventStoreError, sqlite3.Error) as err:
            self.failed += len(rows)
            _log.error("event store: lost a batch of %d events: %s", len(rows), err)

    def _encode_or_skip(self, e: Event) -> _Row | None:
        """The Python-codec row of an event the native encoder declined; None (logged and
        counted as failed) if it cannot be encoded."""
        try:
            return _encode_row(e, None)
        except Exception as err:  # e.g. RecursionError: this event only; the writer goes on
            self.failed += 1
            _log.error("event store: not persisting %r: %s", e, err)
            return None


# Stores attached and not detached: detached (flushing) at interpreter exit, also after an
# unhandled exception or sys.exit(), so buffered events are stored rather than lost with
# the daemon writer thread.
_attached: weakref.WeakSet[SqliteEventStore] = weakref.WeakSet()


@atexit.register
def _detach_attached_stores() -> None:
    for store in list(_attached):
        try:
            store.detach(timeout=30.0)
        except Exception:
            _log.exception("event store: flushing %s at exit failed", store.path)


# The stores whose lock ``_before_fork`` holds: no transaction is in flight when the
# process forks (SQLite's per-process lock bookkeeping is copied into the child: a write
# transaction in flight in the parent would leave the child's own connection locked out).
_held: list[SqliteEventStore] = []


def _before_fork() -> None:
    for store in list(_attached):
        store._lock.acquire()
        _held.append(store)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop()._lock.release()


def _after_fork_in_child() -> None:
    _held.clear()  # the child replaces the locks
    for store in list(_attached):
        store._after_fork_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
