"""The writer thread of ``SqliteEventStore.attach``."""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from .._core import Channel, Event, _encode_rows
from .._drain import Drain
from .errors import EventStoreError
from .rows import _encode_row, _Row

if TYPE_CHECKING:
    from .store import SqliteEventStore

_log = logging.getLogger("tracebus.eventstore")


class _Attachment:
    """The writer of ``SqliteEventStore.attach``: a ``Drain`` thread storing batches."""

    def __init__(self, store: SqliteEventStore, channel: Channel, batch_size: int) -> None:
        self.store = store
        self.persisted = 0
        self.failed = 0
        self.drain = Drain(channel, batch_size, self._persist, name="tracebus-eventstore-writer")
        self.drain.start()

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
