"""Distributed events: a Redis Streams bridge, so several processes share one event stream
and one view of service states.

``RedisStreamBridge(bus, url, stream)`` connects a local ``EventBus`` to a Redis stream
(Redis >= 6.2; redis-py with hiredis, installed by ``pip install 'tracebus[redis]'``;
hiredis parses replies in C: reading runs ~3x faster with it, measured):

- **Outbound** (unless ``outbound=False``): events published on the local bus that pass
  ``filter`` go through a bounded channel (strategy *block*: a publisher waits rather than
  an event being lost, e.g. while Redis is down and the channel is full) to a writer thread,
  which appends them to the stream in batches of up to ``batch_size``, one round trip per
  batch: a server-side script (``EVALSHA``) runs one ``XADD`` per event (``MAXLEN ~ maxlen``
  trimming if ``maxlen`` is set). That is 2.2x the rate of the same XADDs pipelined through
  redis-py (whose per-command Python cost dominates), and a batch is applied whole or not at
  all. An event is *sent* (acknowledged by Redis) once the call that appended it returned;
  ``flush()`` waits until every event published before the call was sent.
- **Inbound** (unless ``inbound=False``): a reader thread reads the stream (``XREADGROUP``
  when ``group`` is set, plain ``XREAD`` otherwise), decodes each entry and publishes the
  event on the local bus with its original event id, correlation id, parent id, cause and
  timestamp (events of one sender arrive in the order it published them). Entries this
  bridge wrote itself are skipped; events received are never sent back (no echo loops).
  Entries are untrusted: one that cannot be decoded is skipped (acknowledged), counted
  (``decode_errors``), logged once with its id and, with ``dead_letter=True``, copied to
  ``<stream>:dead``; classes the reading program does not define arrive as
  ``tracebus.UnknownEvent`` (``tracebus.codec``: data never names code to import).
- **One direction only**: ``inbound=False`` gives a send-only bridge (a publisher such as
  ``tracebus demo --redis``: what other processes write to the stream never reaches its
  bus, and it does not read back its own entries only to skip them); ``outbound=False`` a
  receive-only one (a viewer such as ``tracebus watch --redis``: no writer thread, no
  channel on its bus).
- **At-least-once** (group mode): a batch is acknowledged (``XACK``, sent together with the
  next read) only after it was published locally; a restarted consumer (same ``consumer``
  name) first re-reads its own pending entries, and entries left pending by a crashed
  consumer for ``claim_min_idle_ms`` are taken over with ``XAUTOCLAIM``. Duplicates
  (re-deliveries, replayed entries, a batch sent twice) are dropped by event id within a
  window of at least the last ``dedupe_window`` received ids.
- **State**: with ``state_store``, ``ServiceStateEvent``s from other processes update it
  (with the update that produced the event, ``eventstore.update_from_event``), last writer
  wins by ``(timestamp, event_id)``, so every process converges to the same view. (The
  bridge applies received states only; local ones are the local ``EventBusAdapter``'s.
  The comparison and the write are one atomic store operation,
  ``StateStore.transition(update, if_newer=True)``, so an older received state never
  overwrites a newer snapshot, whatever else writes the store at the same time.)
- **Reconnects**: both threads survive Redis restarts (exponential back-off from 50 ms,
  capped at 2 s); a batch whose append failed is sent again (so a batch Redis applied but
  could not confirm arrives twice: receivers drop the copy by event id). ``stop`` and
  interpreter exit flush what is buffered; what cannot be sent by then counts as ``unsent``.

Stream entries have two fields: ``e``, the event's JSON (``tracebus.codec``; built-in kinds
without metadata take the native path), and ``o``, the sending bridge's ``node_id``. The
origin stays out of the event itself (as metadata it would push every event onto the slow
Python codec path): ``bridge.origin(event)`` gives the node id of the bridge a received
event came from, or None for local events (looked up in the dedupe window).

Consumers of one group share its entries (each entry goes to one of them): give every
process that must see every event its own group (or no group), and use one group with
several consumers for work that one process of several should handle.

>>> with RedisStreamBridge(bus, "redis://127.0.0.1:6379/0", group="workers") as bridge:
...     bus.publish(event)          # other processes' buses receive it
...     bridge.flush()              # every event published so far is in the stream
...     print(bridge.metrics())
"""

from .bridge import BridgeError, RedisStreamBridge

__all__ = ["BridgeError", "RedisStreamBridge"]
