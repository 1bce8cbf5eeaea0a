"""The attributes ``RedisStreamBridge`` sets up (in ``bridge.py``) and its writer and reader
halves (``writer.py``, ``reader.py``) share."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from .._core import EventBus, Filter, StateStore
from .._drain import Drain
from .window import _Window

if TYPE_CHECKING:
    import redis


class _BridgeBase:
    """Declarations only: every attribute is assigned by ``RedisStreamBridge.__init__``."""

    _redis: Any  # the redis module
    url: str
    stream: str
    group: str | None
    consumer: str | None
    node_id: str
    start_id: str
    bus: EventBus
    filter: Filter | None
    maxlen: int | None
    batch_size: int
    block_ms: int
    state_store: StateStore | None
    buffer_size: int
    claim_min_idle_ms: int
    dedupe_window: int
    connect_timeout: float
    outbound: bool
    inbound: bool

    _client: redis.Redis | None
    _append: Any  # the registered _APPEND_LUA script
    _drain: Drain | None  # the writer (outbound)
    _reader: threading.Thread | None
    _state: Literal["new", "running", "stopped"]
    _stopping: threading.Event  # set by stop(): the reader ends
    _window: _Window
    # Ids of received events that pass ``filter``: the writer skips them when the outbound
    # channel hands them back (and forgets them then).
    _echo: set[str]
    _last_id: str  # XREAD position
    _unacked: list[str]  # delivered entries whose XACK goes with the next read
    dead_letter: bool
    # The batch being delivered: its entries and the rows decoded (to name a bad entry).
    _batch: list[list[Any]]
    _batch_rows: list[list[str]]
    _dead: list[tuple[str, list[Any], str]]  # undecodable entries of the batch, to bury
    # Plain XREAD: entries ever added that we read or counted as trimmed (None: unknown).
    _accounted: int | None
    _behind: bool  # the last read was a full batch
    # Counters; each is written by one thread only.
    _sent: int
    _batches: int
    _echo_skipped: int
    _unsent: int
    _encode_errors: int
    _write_errors: int
    _write_reconnects: int
    _received: int
    _acknowledged: int
    _reclaimed: int
    _deduplicated: int
    _own_skipped: int
    _decode_errors: int
    _publish_errors: int
    _read_errors: int
    _read_reconnects: int
    _state_applied: int
    _trimmed_pending: int
    _trimmed: int
    _dead_lettered: int
