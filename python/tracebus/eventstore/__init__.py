"""A persistent, append-only event store on SQLite, with replay and event sourcing.

``SqliteEventStore(path)`` keeps every event (header columns for queries plus the JSON
encoding of ``tracebus.codec`` for the payload) in one table with a global sequence number.
Each event also belongs to a *stream* (by default its ``source``) with contiguous versions
1, 2, 3, ...; ``append(..., expected_version=n)`` succeeds only if the stream holds exactly
``n`` events (optimistic concurrency), else raises ``ConcurrencyError``.

Durability: an event is acknowledged when ``append``/``append_many`` returns, i.e. when its
transaction has committed. The database runs in WAL mode with ``synchronous="NORMAL"`` by
default: a committed transaction survives the process being killed, but the last
transactions before an operating-system crash or power loss may be lost. Pass
``synchronous="FULL"`` to survive power loss too (each commit then waits for an fsync).
WAL checkpoints run in a background thread once the WAL passes 16 MiB (and when the last
connection closes), so an append never waits for one.

Speed (CPython 3.11, 2 vCPU, stdlib ``sqlite3``, transactions of 500, 20k events in 100
streams; ``benches/test_eventstore_bench.py``): appending ~470k events/s and replaying
~1.1M events/s, JSON encoding and decoding included (4.7x and 7.7x the
``eventsourcing`` library's SQLite recorder in the same run, medians). The built-in event
kinds are encoded and decoded natively (``_core._encode_rows`` and ``_decode_rows``: ~0.3
and ~0.55 µs an event); other classes take ``tracebus.codec``'s Python path. What remains
is SQLite (~1.6 µs an event appended, ~0.4 µs fetched): see the schema notes in
``schema.py`` for what made appends cheap. Appends leave copying the WAL into the database
to the background checkpoints; timing the final checkpoint too (``close()``) gives ~3x.

Selective reads (``replay(filter=...)``, ``records``, ``trace``, the CLI's ``--type/--source/
--severity/--correlation``) choose rows in SQL: types and sources through ``event_runs``
(each appended run's types and sources with their offsets), correlation through its index,
severity by its column; only matching rows are read and decoded, and the filter checks them
only when the query does not say all it requires. One type of 20 from 1 M events: ~12x a
full replay filtered in Python.

>>> store = SqliteEventStore("events.db")
>>> store.attach(bus)               # persist everything the bus publishes, in batches
>>> ...
>>> store.detach()                  # flushes
>>> state = rebuild_state(store)    # a StateStore equal to the live one
>>> print(store.trace(correlation_id).render())
"""

from .errors import ConcurrencyError, EventStoreError
from .rebuild import rebuild_state
from .rebuild import update_from_event as update_from_event
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .store import OnError, SqliteEventStore, StoredRecord, UndecodedRow

__all__ = [
    "ConcurrencyError",
    "EventStoreError",
    "OnError",
    "SqliteEventStore",
    "StoredRecord",
    "UndecodedRow",
    "rebuild_state",
]
