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

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
import time
import urllib.parse
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._core import (
    Event,
    EventBus,
    Filter,
    ServiceStateEvent,
    SimpleBufferStrategy,
    StateStore,
    TracebusError,
    _decode_rows,
)
from ._drain import Drain, check_int
from .codec import decode_event, encode_event
from .eventstore.rebuild import update_from_event

if TYPE_CHECKING:
    import redis

__all__ = ["BridgeError", "RedisStreamBridge"]

_log = logging.getLogger("tracebus.redis")

_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0
# Stream entry fields: the event's JSON and the sending bridge's node id.
_EVENT = "e"
_ORIGIN = "o"
# Appends a batch: one XADD per event, run by the server in one call (EVALSHA). Measured
# 2.2x the events/s of the same XADDs pipelined through redis-py (whose per-command Python
# cost dominates), and a batch is applied whole or not at all.
# KEYS[1] = stream; ARGV = maxlen (0: no trimming), node id, the events' JSON texts.
_APPEND_LUA = """
local stream, maxlen, node = KEYS[1], tonumber(ARGV[1]), ARGV[2]
for i = 3, #ARGV do
  if maxlen > 0 then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', ARGV[i], 'o', node)
  else
    redis.call('XADD', stream, '*', 'e', ARGV[i], 'o', node)
  end
end
return #ARGV - 2
"""


class BridgeError(TracebusError):
    """The Redis bridge cannot do what was asked: the server is unreachable at start, the
    stream or group cannot be used, or the bridge was stopped."""


def _import_redis() -> Any:
    """redis-py, imported on first use (``import tracebus`` never imports it)."""
    try:
        import redis
    except ImportError as e:
        raise ImportError("RedisStreamBridge needs redis-py: pip install 'tracebus[redis]'") from e
    return redis


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    from redis.connection import parse_url

    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as e:
        raise ValueError(f"url {_redact(url)!r} is not a Redis URL: {e}") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ValueError(f"url {_redact(url)!r} is not a Redis URL: it names no host")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(
                f"url {_redact(url)!r} is not a Redis URL: the database {db!r} must be a number"
            )
    return url


def _check_name(name: str, value: object, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        allowed = "a str or None" if optional else "a str"
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _check_directions(
    outbound: object,
    inbound: object,
    reading: dict[str, object],
    sending: dict[str, object],
) -> tuple[bool, bool]:
    """Checks ``outbound``/``inbound`` and that no argument of a switched-off side
    (``reading``/``sending``: name -> value, None when not given) was given."""
    for name, value in (("outbound", outbound), ("inbound", inbound)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if not outbound and not inbound:
        raise ValueError(
            "outbound and inbound are both False: the bridge would neither send nor receive"
        )
    for on, switch, what, args in (
        (inbound, "inbound", "reading", reading),
        (outbound, "outbound", "sending to", sending),
    ):
        given = [name for name, value in args.items() if value is not None]
        if not on and given:
            raise ValueError(
                f"{', '.join(given)} only concern{'s' if len(given) == 1 else ''} {what} "
                f"the stream: not allowed with {switch}=False"
            )
    return bool(outbound), bool(inbound)


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``ms-seq`` as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class _Window:
    """The ids of recently received events, with the node each came from: drops duplicates
    and answers ``origin``. Two generations of ``size`` ids each (the older one is dropped
    when the newer fills up), so at least the last ``size`` ids are remembered, at the cost
    of two dict look-ups per event. Written by the reader thread only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[str, str] = {}
        self.old: dict[str, str] = {}

    def get(self, event_id: str) -> str | None:
        """The origin of ``event_id`` if it is remembered."""
        return self.new.get(event_id) or self.old.get(event_id)

    def add(self, event_id: str, origin: str) -> bool:
        """Records ``event_id``; False if it is already remembered (a duplicate)."""
        new = self.new
        if event_id in new or event_id in self.old:
            return False
        new[event_id] = origin
        if len(new) >= self.size:
            self.old, self.new = new, {}
        return True


class RedisStreamBridge:
    """Connects ``bus`` to the Redis stream ``stream`` at ``url`` (see the module docstring).

    - ``filter``: which local events are sent (None: all). Received events are published
      locally whatever the filter.
    - ``group``/``consumer``: read with ``XREADGROUP`` as ``consumer`` (default: a unique
      name) of ``group`` (created at ``start_id`` if missing). Consumers of one group share
      the entries (each goes to one of them); give each process that must see every event
      its own group. Without a group, ``XREAD`` from ``start_id``.
    - ``start_id``: where reading starts: ``"$"`` (default: entries added after ``start``)
      or an entry id such as ``"0"`` (the whole stream). For a group it only applies when
      the group is created.
    - ``maxlen``: trim the stream to about this many entries (``MAXLEN ~``) on each XADD.
    - ``batch_size``: events per append round trip, entries per read. ``block_ms``: how long a
      read waits for new entries (also bounds how long ``stop`` waits for the reader).
    - ``state_store``: ``ServiceStateEvent``s received update it (last writer wins).
    - ``node_id``: this bridge's name in the entries it writes (default: random).
    - ``buffer_size``: events buffered between publishers and the writer; a publisher
      waits while it is full (e.g. while Redis is down).
    - ``claim_min_idle_ms``: group mode: entries pending that long for another consumer are
      reclaimed. ``dedupe_window``: how many received event ids are remembered (at least;
      up to twice as many, ~110 bytes each: ~4 MB at the default 20,000). Raise it to drop
      replays of older entries too.
    - ``connect_timeout``: seconds to wait for a connection.
    - ``outbound``/``inbound`` (default both True): ``outbound=False`` makes a
      receive-only bridge (no channel on the bus, no writer thread: nothing is sent,
      ``flush()`` returns True at once); ``inbound=False`` a send-only one (no reader
      thread: the stream is never read, no group is created). Not both False. Arguments
      of the side switched off are refused (``ValueError``): ``filter`` and ``maxlen``
      with ``outbound=False``; ``group``, ``consumer``, ``start_id`` (other than ``"$"``)
      and ``state_store`` with ``inbound=False``.

    ``start()`` connects (``BridgeError`` naming the URL if Redis does not answer) and
    starts the threads; ``stop()`` flushes and stops them; usable as a context manager.
    ``metrics()`` counts what happened.
    """

    def __init__(
        self,
        bus: EventBus,
        url: str = "redis://127.0.0.1:6379/0",
        stream: str = "tracebus:events",
        *,
        filter: Filter | None = None,
        group: str | None = None,
        consumer: str | None = None,
        maxlen: int | None = None,
        batch_size: int = 500,
        block_ms: int = 100,
        state_store: StateStore | None = None,
        node_id: str | None = None,
        start_id: str = "$",
        buffer_size: int = 10_000,
        claim_min_idle_ms: int = 30_000,
        dedupe_window: int = 20_000,
        connect_timeout: float = 2.0,
        outbound: bool = True,
        inbound: bool = True,
    ) -> None:
        self._redis = _import_redis()
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be a tracebus EventBus, got {type(bus).__name__}")
        self.url = _check_url(url)
        self.stream: str = _check_name("stream", stream, False)  # type: ignore[assignment]
        if filter is not None and not isinstance(filter, Filter):
            raise TypeError(
                f"filter must be a tracebus Filter or None, got {type(filter).__name__}"
            )
        self.group = _check_name("group", group, True)
        consumer = _check_name("consumer", consumer, True)
        if consumer is not None and self.group is None:
            raise ValueError("consumer needs a group (consumer names exist only within a group)")
        if maxlen is not None:
            check_int("maxlen", maxlen, 1)
        if state_store is not None and not isinstance(state_store, StateStore):
            raise TypeError(
                f"state_store must be a StateStore or None, got {type(state_store).__name__}"
            )
        self.node_id: str = _check_name("node_id", node_id, True) or secrets.token_hex(6)
        self.consumer = consumer or (
            None if self.group is None else f"{os.getpid()}-{self.node_id}"
        )
        self.start_id: str = _check_name("start_id", start_id, False)  # type: ignore[assignment]
        if start_id != "$":
            try:
                _id_key(start_id)
            except ValueError:
                raise ValueError(
                    f"start_id must be '$' or a stream entry id like '0' or '1700000000000-0', "
                    f"got {start_id!r}"
                ) from None
        if (
            isinstance(connect_timeout, bool)
            or not isinstance(connect_timeout, (int, float))
            or not connect_timeout > 0
        ):
            raise ValueError(
                f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}"
            )
        self.bus = bus
        self.filter = filter
        self.maxlen = maxlen
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.block_ms = check_int("block_ms", block_ms, 1)
        self.state_store = state_store
        self.buffer_size = check_int("buffer_size", buffer_size, 1)
        self.claim_min_idle_ms = check_int("claim_min_idle_ms", claim_min_idle_ms, 1)
        self.dedupe_window = check_int("dedupe_window", dedupe_window, 1)
        self.connect_timeout = float(connect_timeout)
        self.outbound, self.inbound = _check_directions(
            outbound,
            inbound,
            reading={
                "group": group,
                "consumer": consumer,
                "start_id": None if start_id == "$" else start_id,
                "state_store": state_store,
            },
            sending={"filter": filter, "maxlen": maxlen},
        )

        self._client: redis.Redis | None = None
        self._append: Any = None  # the registered _APPEND_LUA script
        self._drain: Drain | None = None  # the writer (outbound)
        self._reader: threading.Thread | None = None
        self._state: Literal["new", "running", "stopped"] = "new"
        self._stopping = threading.Event()  # set by stop(): the reader ends
        self._window = _Window(self.dedupe_window)
        # Ids of received events that pass ``filter``: the writer skips them when the
        # outbound channel hands them back (and forgets them then).
        self._echo: set[str] = set()
        self._last_id = "0-0"  # XREAD position
        self._unacked: list[str] = []  # delivered entries whose XACK goes with the next read
        # Counters; each is written by one thread only.
        self._sent = 0
        self._batches = 0
        self._echo_skipped = 0
        self._unsent = 0
        self._encode_errors = 0
        self._write_errors = 0
        self._write_reconnects = 0
        self._received = 0
        self._acknowledged = 0
        self._reclaimed = 0
        self._deduplicated = 0
        self._own_skipped = 0
        self._decode_errors = 0
        self._publish_errors = 0
        self._read_errors = 0
        self._read_reconnects = 0
        self._state_applied = 0
        self._trimmed_pending = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> RedisStreamBridge:
        """Connects and starts the writer (``outbound``) and reader (``inbound``) threads;
        returns the bridge. Raises ``BridgeError`` naming the URL if Redis does not answer
        ``PING``. Does nothing if already running; a stopped bridge cannot be started
        again."""
        if self._state == "running":
            return self
        if self._state == "stopped":
            raise BridgeError("this bridge was stopped; create a new RedisStreamBridge")
        r = self._redis
        client = r.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self.connect_timeout,
            # Blocking reads wait up to block_ms; a server that stops answering is noticed.
            socket_timeout=self.block_ms / 1000 + 10.0,
            # The bridge retries itself (a batch retried inside redis-py would be sent
            # twice without the bridge knowing).
            retry=r.retry.Retry(r.backoff.NoBackoff(), 0),
            health_check_interval=0,
            protocol=2,
        )
        for command in ("XREAD", "XREADGROUP", "XAUTOCLAIM"):
            # Entries stay [id, [field, value, ...]] lists (redis-py would build a dict per
            # entry in Python: ~0.5 us an event).
            client.set_response_callback(command, _raw_reply)
        try:
            client.ping()
            if self.outbound:
                client.script_load(_APPEND_LUA)  # a server refusing scripts fails here
            if self.inbound:
                self._prepare_read(client)
        except r.RedisError as e:
            client.close()
            raise BridgeError(
                f"cannot use Redis at {_redact(self.url)} (stream {self.stream!r}): "
                f"{type(e).__name__}: {e}"
            ) from None
        self._client = client
        self._state = "running"
        if self.outbound:
            self._append = client.register_script(_APPEND_LUA)
            channel = self.bus.subscribe_channel(
                self.filter, self.buffer_size, SimpleBufferStrategy("block")
            )
            # (assigned before the thread starts: _send watches its give_up)
            self._drain = Drain(
                channel,
                self.batch_size,
                self._write_batch,
                name="tracebus-redis-writer",
                abandon=self._abandon,
            )
            self._drain.start()
        if self.inbound:
            self._reader = threading.Thread(
                target=self._read_loop, name="tracebus-redis-reader", daemon=True
            )
            self._reader.start()
        _running.add(self)
        return self

    def _prepare_read(self, client: redis.Redis) -> None:
        """Creates the group, or fixes the XREAD position."""
        if self.group is not None:
            self._create_group(client)
        elif self.start_id == "$":
            # Resolve "$" now, so entries added between start() and the first read are
            # not missed.
            top: Any = client.xrevrange(self.stream, count=1)
            self._last_id = top[0][0] if top else "0-0"
        else:
            self._last_id = self.start_id

    def _create_group(self, client: redis.Redis) -> None:
        try:
            client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)  # type: ignore[arg-type]
        except self._redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stops the bridge: sends what is still buffered (trying for up to ``timeout``
        seconds while Redis is unreachable; what is left then counts as ``unsent``), then
        ends the threads and closes the connection. Idempotent."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        deadline = None if timeout is None else time.monotonic() + timeout
        self._stopping.set()
        _running.discard(self)
        assert self._client is not None
        reader = self._reader
        # stop() may be called by a handler of a received event (on the reader thread).
        if reader is not None and threading.current_thread() is not reader:
            reader.join(_left(deadline))
        if self._drain is not None:
            self._drain.stop(_left(deadline))  # then gives up (counted as unsent)
        self._client.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event published on the bus before the call (and passing the
        filter) was appended to the stream (its ``XADD`` returned), up to ``timeout``
        seconds; True if so. False at the timeout, e.g. while Redis is unreachable. True at
        once for a receive-only bridge (``outbound=False``)."""
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0
        ):
            raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
        return True if self._drain is None else self._drain.flush(timeout)

    def __enter__(self) -> RedisStreamBridge:
        """Starts the bridge."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stops the bridge (flushing)."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the bridge was started and not stopped."""
        return self._state == "running"

    def origin(self, event: Event) -> str | None:
        """The ``node_id`` of the bridge a received event came from; None for events
        published locally (or received before the last ``dedupe_window`` received ids)."""
        return self._window.get(event.event_id)

    def metrics(self) -> dict[str, int]:
        """Counters:

        - ``sent``: events appended to the stream (XADD returned); ``batches``: round trips.
        - ``received``: events from other bridges published on the local bus.
        - ``acknowledged``: entries XACKed (group mode; own and duplicate entries included).
        - ``reclaimed``: entries taken over from other consumers with XAUTOCLAIM.
        - ``deduplicated``: entries dropped because their event id was already received.
        - ``own_skipped``: entries this bridge wrote, read back and skipped.
        - ``echo_skipped``: received events the writer did not send back.
        - ``errors``: connection errors, events that could not be encoded or decoded,
          failed publishes and abandoned events; ``reconnects``: connections regained.
        - ``unsent``: events given up at ``stop`` (Redis unreachable until the timeout).
        - ``buffered``: events waiting for the writer; ``state_applied``: service states
          written to ``state_store``; ``trimmed_pending``: pending entries trimmed from the
          stream before they could be reclaimed.
        """
        drain = self._drain
        return {
            "sent": self._sent,
            "batches": self._batches,
            "received": self._received,
            "acknowledged": self._acknowledged,
            "reclaimed": self._reclaimed,
            "deduplicated": self._deduplicated,
            "own_skipped": self._own_skipped,
            "echo_skipped": self._echo_skipped,
            "errors": self._write_errors
            + self._read_errors
            + self._encode_errors
            + self._decode_errors
            + self._publish_errors
            + self._unsent,
            "encode_errors": self._encode_errors,
            "decode_errors": self._decode_errors,
            "publish_errors": self._publish_errors,
            "connection_errors": self._write_errors + self._read_errors,
            "reconnects": self._write_reconnects + self._read_reconnects,
            "unsent": self._unsent,
            "buffered": 0 if drain is None else drain.channel.stats()["buffered"],
            "state_applied": self._state_applied,
            "trimmed_pending": self._trimmed_pending,
        }

    def __repr__(self) -> str:
        return (
            f"RedisStreamBridge({_redact(self.url)!r}, stream={self.stream!r}, "
            f"group={self.group!r}, node_id={self.node_id!r}, state={self._state})"
        )

    # -- outbound ----------------------------------------------------------------------

    def _write_batch(self, batch: list[Event]) -> None:
        try:
            self._send(batch)
        except BaseException:
            self._unsent += len(batch)
            _log.exception("redis bridge: lost a batch of %d events", len(batch))

    def _abandon(self, rest: list[Event]) -> None:
        """stop() timed out: what is still buffered counts as unsent."""
        self._unsent += len(rest)
        if rest:
            _log.error("redis bridge: stopped; %d buffered events not sent", len(rest))

    def _send(self, batch: list[Event]) -> None:
        echo = self._echo
        texts: list[str] = []
        for e in batch:
            if echo:
                eid = e.event_id
                if eid in echo:
                    echo.discard(eid)
                    self._echo_skipped += 1
                    continue
            try:
                texts.append(encode_event(e))
            except (TypeError, ValueError) as err:
                self._encode_errors += 1
                _log.error("redis bridge: cannot send %r: %s", e, err)
        if not texts:
            return
        script = self._append
        assert script is not None
        args = [self.maxlen or 0, self.node_id, *texts]
        delay = _BACKOFF_FIRST
        failed = False
        while True:
            try:
                script(keys=[self.stream], args=args)
                break
            except (self._redis.ConnectionError, self._redis.TimeoutError) as err:
                self._write_errors += 1
                failed = True
                _log.warning(
                    "redis bridge: sending %d events to %s failed (%s); retrying in %.2f s",
                    len(texts),
                    _redact(self.url),
                    err,
                    delay,
                )
                assert self._drain is not None
                if self._drain.give_up.wait(delay):
                    self._unsent += len(texts)
                    _log.error(
                        "redis bridge: stopped before Redis came back; %d events not sent",
                        len(texts),
                    )
                    return
                delay = min(delay * 2, _BACKOFF_CAP)
            except self._redis.ResponseError as err:
                # E.g. the key holds something that is not a stream: retrying cannot help.
                self._unsent += len(texts)
                _log.error(
                    "redis bridge: Redis refused %d events for %r: %s", len(texts), self.stream, err
                )
                return
        if failed:
            self._write_reconnects += 1
        self._sent += len(texts)
        self._batches += 1

    # -- inbound -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        client = self._client
        assert client is not None
        errors = self._redis.ConnectionError, self._redis.TimeoutError
        group = self.group
        delay = _BACKOFF_FIRST
        failed = False
        # Group mode: first this consumer's own pending entries (a restarted consumer
        # left them unacknowledged), then new ones, with XAUTOCLAIM every claim_every s.
        own_pending = group is not None
        claim_every = min(max(self.claim_min_idle_ms / 2000, 0.05), 5.0)
        next_claim = time.monotonic()
        while not self._stopping.is_set():
            try:
                if failed:
                    client.ping()
                    self._reconnected(client)
                    failed = False
                    own_pending = group is not None
                    delay = _BACKOFF_FIRST
                if group is None:
                    self._read_plain(client)
                    continue
                if own_pending:
                    own_pending = self._read_group(client, "0") > 0
                    continue
                if time.monotonic() >= next_claim:
                    self._claim(client)
                    next_claim = time.monotonic() + claim_every
                self._read_group(client, ">")
            except errors as err:
                self._read_errors += 1
                # Unacknowledged entries stay pending; re-read after the reconnect (own
                # pending first), they are dropped as duplicates and acknowledged then.
                self._unacked = []
                if not failed:
                    _log.warning(
                        "redis bridge: lost the connection to %s (%s); reconnecting",
                        _redact(self.url),
                        err,
                    )
                failed = True
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2, _BACKOFF_CAP)
            except self._redis.ResponseError as err:
                if group is not None and "NOGROUP" in str(err):
                    # The stream or group vanished (a restart without persistence).
                    _log.warning("redis bridge: group %r missing; creating it again", group)
                    self._read_errors += 1
                    try:
                        self._create_group(client)
                    except self._redis.RedisError:
                        failed = True
                    continue
                self._read_errors += 1
                _log.error("redis bridge: reading %r failed: %s", self.stream, err)
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2, _BACKOFF_CAP)
            except _BusGone:
                break
            except Exception:
                # Not expected (a bug, a failing state store): logged and counted; the
                # reader carries on after a pause rather than dying silently.
                self._read_errors += 1
                _log.exception("redis bridge: the reader failed; carrying on")
                if self._stopping.wait(delay):
                    break
                delay = min(delay * 2, _BACKOFF_CAP)
        if self._unacked:
            try:
                self._ack(client, self._unacked)
            except self._redis.RedisError as err:
                self._read_errors += 1
                _log.warning("redis bridge: last XACK failed (entries stay pending): %s", err)
            self._unacked = []

    def _reconnected(self, client: redis.Redis) -> None:
        self._read_reconnects += 1
        if self.group is None:
            # After a restart that lost data, our position may lie beyond the stream's end.
            top: Any = client.xrevrange(self.stream, count=1)
            if _id_key(top[0][0] if top else "0-0") < _id_key(self._last_id):
                _log.warning(
                    "redis bridge: stream %r is behind our position %s after a reconnect; "
                    "reading from its start",
                    self.stream,
                    self._last_id,
                )
                self._last_id = "0-0"

    def _read_plain(self, client: redis.Redis) -> None:
        reply: Any = client.xread({self.stream: self._last_id}, self.batch_size, self.block_ms)
        if reply:
            entries = reply[0][1]
            if entries:
                self._deliver(entries)
                self._last_id = entries[-1][0]

    def _read_group(self, client: redis.Redis, position: str) -> int:
        """Reads and delivers one batch; its XACK goes out with the next read (XACK first,
        in one round trip). Returns the number of entries read."""
        assert self.group is not None and self.consumer is not None
        group, consumer = self.group, self.consumer
        streams: dict[Any, Any] = {self.stream: position}
        count, block = self.batch_size, None if position == "0" else self.block_ms
        reply: Any
        if self._unacked:
            pipe = client.pipeline(transaction=False)
            pipe.xack(self.stream, self.group, *self._unacked)
            pipe.xreadgroup(group, consumer, streams, count, block)
            acked, reply = pipe.execute()
            self._acknowledged += int(acked)
            self._unacked = []
        else:
            reply = client.xreadgroup(group, consumer, streams, count, block)
        if not reply:
            return 0
        entries = reply[0][1]
        if not entries:
            return 0
        self._deliver(entries)
        self._unacked = [entry[0] for entry in entries]
        return len(entries)

    def _claim(self, client: redis.Redis) -> None:
        assert self.group is not None and self.consumer is not None
        if self._unacked:  # else XAUTOCLAIM could hand this consumer its own entries again
            self._ack(client, self._unacked)
            self._unacked = []
        cursor = "0-0"
        while not self._stopping.is_set():
            reply: Any = client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.claim_min_idle_ms,
                cursor,
                count=self.batch_size,
            )
            cursor, entries = reply[0], reply[1]
            if len(reply) > 2 and reply[2]:
                self._trimmed_pending += len(reply[2])
                _log.error(
                    "redis bridge: %d pending entries were trimmed from %r before delivery",
                    len(reply[2]),
                    self.stream,
                )
            if entries:
                self._reclaimed += len(entries)
                self._deliver(entries)
                self._ack(client, [eid for eid, _ in entries])
            if cursor == "0-0":
                return

    def _ack(self, client: redis.Redis, ids: list[str]) -> None:
        assert self.group is not None
        self._acknowledged += int(client.xack(self.stream, self.group, *ids))

    def _deliver(self, entries: list[list[Any]]) -> None:
        """Decodes raw entries (``[id, [field, value, ...]]``) and publishes the new events
        on the bus (states applied first)."""
        node = self.node_id
        # Rows for _decode_rows: [_EVENT, json, _ORIGIN, origin] (the JSON at index 1).
        rows: list[list[str]] = []
        for entry in entries:
            f = entry[1]
            if not (f and len(f) == 4 and f[0] == _EVENT and f[2] == _ORIGIN):
                f = self._normalise(entry)
                if f is None:
                    continue
            if f[3] == node:
                self._own_skipped += 1
                continue
            rows.append(f)
        if not rows:
            return
        events = _decode_rows(rows, 1, self._decode_or_none)
        window, echo, flt = self._window, self._echo, self.filter
        fresh: list[Event] = []
        add = window.add
        outbound = self.outbound  # else no writer takes the ids out of ``echo`` again
        for row, e in zip(rows, events, strict=True):
            if e is None:
                continue
            eid = e.event_id
            if not add(eid, row[3]):
                self._deduplicated += 1
                continue
            if outbound and (flt is None or flt.matches(e)):
                echo.add(eid)
            fresh.append(e)
        self._publish(fresh)

    def _normalise(self, entry: list[Any]) -> list[str] | None:
        """The ``[_EVENT, json, _ORIGIN, origin]`` row of an entry not written by a bridge
        (other field order, no origin); None (counted) if it has no event or was deleted."""
        f = entry[1]
        if not f:  # an entry deleted from the stream while pending
            return None
        fields = dict(zip(f[::2], f[1::2], strict=False))
        text = fields.get(_EVENT)
        if text is None:
            self._decode_errors += 1
            _log.error("redis bridge: entry %s of %r has no event", entry[0], self.stream)
            return None
        return [_EVENT, text, _ORIGIN, fields.get(_ORIGIN, "")]

    def _decode_or_none(self, row: list[str]) -> Event | None:
        try:
            return decode_event(row[1])
        except (TypeError, ValueError) as err:
            self._decode_errors += 1
            _log.error("redis bridge: cannot decode an entry of %r: %s", self.stream, err)
            return None

    def _publish(self, events: list[Event]) -> None:
        store = self.state_store
        run: list[Event] = []
        for e in events:
            if store is not None and isinstance(e, ServiceStateEvent):
                # Each state is applied before its event is published (as EventBusAdapter
                # does), so a handler sees the store already updated.
                self._publish_run(run)
                run = []
                self._apply_state(store, e)
                self._publish_run([e])
            else:
                run.append(e)
        self._publish_run(run)

    def _publish_run(self, events: list[Event]) -> None:
        if not events:
            return
        try:
            self.bus.publish_many(events)
        except TracebusError as err:
            if self.bus.closed:
                self._publish_errors += len(events)
                _log.error("redis bridge: the bus is closed; %d events not delivered", len(events))
                raise _BusGone from None
            self._publish_errors += len(events)
            _log.error("redis bridge: publishing %d received events failed: %s", len(events), err)
            return
        self._received += len(events)

    def _apply_state(self, store: StateStore, e: ServiceStateEvent) -> None:
        if store.transition(update_from_event(e), if_newer=True).stored:
            self._state_applied += 1


# Bridges started and not stopped: stopped (flushing) at interpreter exit, so events still
# buffered are sent (or counted as unsent) rather than lost with the daemon threads.
_running: weakref.WeakSet[RedisStreamBridge] = weakref.WeakSet()


@atexit.register
def _stop_running_bridges() -> None:
    for bridge in list(_running):
        bridge.stop(timeout=5.0)


class _BusGone(Exception):
    """The local bus was closed: the reader stops."""


def _raw_reply(response: Any, **options: Any) -> Any:
    return response


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
