"""``RedisStreamBridge``: its arguments, start, stop, flush and metrics. What its two
threads do is in ``writer`` (outbound) and ``reader`` (inbound)."""

from __future__ import annotations

import atexit
import os
import secrets
import threading
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from .._core import (
    Channel,
    Event,
    EventBus,
    Filter,
    SimpleBufferStrategy,
    StateStore,
    TracebusError,
)
from .._drain import Drain, check_int, check_timeout, time_left
from .checks import _check_directions, _check_name, _check_url, _import_redis, _redact
from .reader import _Reader
from .window import _Window
from .wire import _APPEND_LUA, _id_key, _raw_reply
from .writer import _Writer

if TYPE_CHECKING:
    import redis


class BridgeError(TracebusError):
    """The Redis bridge cannot do what was asked: the server is unreachable at start, the
    stream or group cannot be used, or the bridge was stopped."""


class RedisStreamBridge(_Writer, _Reader):
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
    - ``connect_timeout``: seconds to wait for a connection (and for the server's answers
      while ``start`` checks it).
    - ``dead_letter``: copy entries that cannot be decoded to the stream ``<stream>:dead``
      (their fields plus ``id``, the entry id, and ``reason``). Whether or not, such an
      entry is skipped (acknowledged in group mode), counted (``decode_errors``) and logged
      once with its id, and the rest of its batch is delivered.
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
        dead_letter: bool = False,
    ) -> None:
        self._redis = _import_redis()
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be a tracebus EventBus, got {type(bus).__name__}")
        self.url = _check_url(url)
        self.stream = _check_name("stream", stream, False)  # type: ignore[assignment]
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
        self.node_id = _check_name("node_id", node_id, True) or secrets.token_hex(6)
        self.consumer = consumer or (
            None if self.group is None else f"{os.getpid()}-{self.node_id}"
        )
        self.start_id = _check_name("start_id", start_id, False)  # type: ignore[assignment]
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
        if not isinstance(dead_letter, bool):
            raise TypeError(f"dead_letter must be a bool, got {type(dead_letter).__name__}")
        self.dead_letter = dead_letter
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

        self._client = None
        self._append = None  # the registered _APPEND_LUA script
        self._drain = None  # the writer (outbound)
        self._reader = None
        self._state = "new"
        self._stopping = threading.Event()  # set by stop(): the reader ends
        self._window = _Window(self.dedupe_window)
        # Ids of received events that pass ``filter``: the writer skips them when the
        # outbound channel hands them back (and forgets them then).
        self._echo = set()
        self._last_id = "0-0"  # XREAD position
        self._unacked = []  # delivered entries whose XACK goes with the next read
        self._batch, self._batch_rows, self._dead = [], [], []
        self._accounted = None  # set by _prepare_read (plain XREAD from "$" or "0")
        self._behind = False
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
        self._trimmed = 0
        self._dead_lettered = 0

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
        client = self._make_client()
        try:
            client.ping()
            if self.outbound:
                client.script_load(_APPEND_LUA)  # a server refusing scripts fails here
            if self.inbound:
                self._prepare_read(client)
            # Blocking reads wait up to block_ms; a server that stops answering is noticed.
            # Connections made from now on use this timeout; the checked one is dropped.
            pool = client.connection_pool
            pool.connection_kwargs["socket_timeout"] = self.block_ms / 1000 + 10.0
            pool.disconnect()
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
            self._start_writer(channel)
        if self.inbound:
            self._start_reader()
        _running.add(self)
        return self

    def _start_writer(self, channel: Channel) -> None:
        # (assigned before the thread starts: _send watches its give_up)
        self._drain = Drain(
            channel,
            self.batch_size,
            self._write_batch,
            name="tracebus-redis-writer",
            abandon=self._abandon,
        )
        self._drain.start()

    def _start_reader(self) -> None:
        self._reader = threading.Thread(
            target=self._read_loop, name="tracebus-redis-reader", daemon=True
        )
        self._reader.start()

    def _after_fork_in_child(self) -> None:
        """In a forked child (the parent's threads and connection stayed in the parent): a
        new connection, a new ``node_id`` (the parent must not skip the child's entries as
        its own) and fresh threads. In group mode the child does not read (it would take
        entries of the parent's group away from the parent)."""
        if self._state != "running":
            return
        self.node_id = secrets.token_hex(6)
        self._client = self._make_client()
        self._client.connection_pool.connection_kwargs["socket_timeout"] = (
            self.block_ms / 1000 + 10.0
        )
        if self._drain is not None:
            self._append = self._client.register_script(_APPEND_LUA)
            old = self._drain
            self._start_writer(old.channel)
            # What the parent's writer took from the channel is the parent's to send.
            self._drain.done = old.channel.stats()["delivered"]
        if self._reader is not None:
            self._reader = None
            if self.group is None:
                self._stopping = threading.Event()
                self._start_reader()

    def _make_client(self) -> redis.Redis:
        r = self._redis
        client = r.Redis.from_url(
            self.url,
            decode_responses=True,
            # Bytes that are not UTF-8 arrive as lone surrogates, and the reader refuses
            # that one entry (instead of the whole reply failing to parse, for ever).
            encoding_errors="surrogateescape",
            socket_connect_timeout=self.connect_timeout,
            # While start() checks the server: a server that accepts connections but never
            # answers fails within connect_timeout too (the reading timeout is set after).
            socket_timeout=self.connect_timeout,
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
        made: redis.Redis = client
        return made

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stops the bridge: sends what is still buffered (trying for up to ``timeout``
        seconds while Redis is unreachable; what is left then counts as ``unsent``), then
        ends the threads and closes the connection. Idempotent."""
        timeout = check_timeout("timeout", timeout)
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
            reader.join(time_left(deadline))
        if self._drain is not None:
            self._drain.stop(time_left(deadline))  # then gives up (counted as unsent)
        self._client.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event published on the bus before the call (and passing the
        filter) was appended to the stream (its ``XADD`` returned), up to ``timeout``
        seconds; True if so. False at the timeout, e.g. while Redis is unreachable. True at
        once for a receive-only bridge (``outbound=False``)."""
        timeout = check_timeout("timeout", timeout)
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
        - ``unsent``: events given up at ``stop`` (Redis unreachable until the timeout),
          including one a publisher was blocked on when ``stop`` closed the channel (and
          events whose publish timed out on the full channel).
        - ``buffered``: events waiting for the writer; ``state_applied``: service states
          written to ``state_store``; ``trimmed_pending``: pending entries trimmed from the
          stream before they could be reclaimed; ``trimmed``: entries removed from the
          stream (``maxlen``) before this (plain XREAD) reader read them: lost, and warned
          about; ``dead_lettered``: undecodable entries copied to ``<stream>:dead``.
        """
        drain = self._drain
        channel = None if drain is None else drain.channel.stats()
        # Events the channel refused: a publisher blocked on it when stop() closed it, or
        # one whose publish timed out; never sent, so unsent too.
        unsent = self._unsent + (0 if channel is None else channel["dropped"])
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
            + unsent
            + self._trimmed,
            "encode_errors": self._encode_errors,
            "decode_errors": self._decode_errors,
            "publish_errors": self._publish_errors,
            "connection_errors": self._write_errors + self._read_errors,
            "reconnects": self._write_reconnects + self._read_reconnects,
            "unsent": unsent,
            "buffered": 0 if channel is None else channel["buffered"],
            "state_applied": self._state_applied,
            "trimmed_pending": self._trimmed_pending,
            "trimmed": self._trimmed,
            "dead_lettered": self._dead_lettered,
        }

    def __repr__(self) -> str:
        return (
            f"RedisStreamBridge({_redact(self.url)!r}, stream={self.stream!r}, "
            f"group={self.group!r}, node_id={self.node_id!r}, state={self._state})"
        )


# Bridges started and not stopped: stopped (flushing) at interpreter exit, so events still
# buffered are sent (or counted as unsent) rather than lost with the daemon threads.
_running: weakref.WeakSet[RedisStreamBridge] = weakref.WeakSet()


@atexit.register
def _stop_running_bridges() -> None:
    for bridge in list(_running):
        bridge.stop(timeout=5.0)


def _restart_running_bridges() -> None:
    for bridge in list(_running):
        bridge._after_fork_in_child()


os.register_at_fork(after_in_child=_restart_running_bridges)
