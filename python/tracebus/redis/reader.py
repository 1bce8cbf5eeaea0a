"""The inbound side of the bridge: the reader thread (XREAD / XREADGROUP, claims, acks),
dedupe and publishing received events on the local bus."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .._core import Event, ServiceStateEvent, StateStore, TracebusError, _decode_rows
from ..codec import decode_event
from ..eventstore.rebuild import update_from_event

if TYPE_CHECKING:
    import redis
from .base import _BridgeBase
from .checks import _redact
from .wire import _BACKOFF_CAP, _BACKOFF_FIRST, _EVENT, _ORIGIN, _id_key

_log = logging.getLogger("tracebus.redis")


def _raw(value: Any) -> Any:
    """A text as the bytes it came from (``surrogateescape``); other values as they are."""
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


class _BusGone(Exception):
    """The local bus was closed: the reader stops."""


class _Reader(_BridgeBase):
    """``RedisStreamBridge``'s inbound methods (run on the reader thread, except
    ``_prepare_read`` and ``_create_group``, called by ``start``)."""

    def _prepare_read(self, client: redis.Redis) -> None:
        """Creates the group, or fixes the XREAD position."""
        if self.group is not None:
            self._create_group(client)
        elif self.start_id == "$":
            # Resolve "$" now, so entries added between start() and the first read are
            # not missed.
            pipe = client.pipeline(transaction=True)  # one moment for both
            pipe.xrevrange(self.stream, count=1)
            pipe.xinfo_stream(self.stream)
            top, info = pipe.execute(raise_on_error=False)
            if isinstance(top, Exception):
                raise top
            self._last_id = top[0][0] if top else "0-0"
            # Entries up to our position: all ever added (for ``trimmed``); none if the
            # stream does not exist yet (XINFO fails).
            self._accounted = (
                0 if isinstance(info, Exception) else int(info.get("entries-added") or 0)
            )
        else:
            self._last_id = self.start_id
            if _id_key(self.start_id) == (0, 0):
                exists = client.exists(self.stream)
                if exists:
                    added, length, _ = self._entries_added(client)
                    self._accounted = added - length  # trimmed before we started: not ours
                else:
                    self._accounted = 0

    def _create_group(self, client: redis.Redis) -> None:
        try:
            client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)  # type: ignore[arg-type]
        except self._redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

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
                self._check_trimmed(client, len(entries))
                try:
                    self._deliver(entries)
                finally:
                    # Even if delivering failed (counted and logged by the loop): a batch
                    # read again would fail again, for ever.
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
        try:
            self._deliver(entries)
        finally:
            # Acknowledged even if delivering failed (counted and logged by the loop), or
            # the same batch would come back for ever.
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
                try:
                    self._deliver(entries)
                finally:
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
        self._batch, self._batch_rows = entries, rows
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
        if self._dead:
            self._bury()
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
            self._undecodable(entry[0], f, "the entry has no event field 'e'")
            return None
        return [_EVENT, text, _ORIGIN, fields.get(_ORIGIN, "")]

    def _decode_or_none(self, row: list[str]) -> Event | None:
        """The event of a row the native decoder declined; None (counted, logged with the
        entry id, dead-lettered if asked) if it cannot be decoded, whatever the error."""
        try:
            text = row[1]
            if isinstance(text, str):
                text.encode("utf-8")  # undecodable bytes arrive as lone surrogates
            return decode_event(text)
        except Exception as err:
            # EventDecodeError for any bad text; anything else (a UnicodeError, a bug) is
            # still one bad entry, not a reason to stop reading.
            entry_id = next(
                (e[0] for e, r in zip(self._batch, self._batch_rows, strict=False) if r is row),
                None,
            )
            if entry_id is None:  # rows and entries differ (skipped entries): search
                entry_id = next((e[0] for e in self._batch if e[1] is row), "?")
            self._undecodable(entry_id, row, f"{type(err).__name__}: {err}")
            return None

    def _undecodable(self, entry_id: str, fields: list[Any], reason: str) -> None:
        self._decode_errors += 1
        _log.error(
            "redis bridge: skipping entry %s of %r (cannot decode: %s)",
            entry_id,
            self.stream,
            reason[:500],
        )
        if self.dead_letter:
            self._dead.append((entry_id, fields, reason))

    def _bury(self) -> None:
        """Copies the undecodable entries of the batch to ``<stream>:dead`` with the
        reason (best effort: a failure is logged and counted)."""
        dead, self._dead = self._dead, []
        client = self._client
        assert client is not None
        try:
            pipe = client.pipeline(transaction=False)
            for entry_id, fields, reason in dead:
                f = dict(zip(fields[::2], fields[1::2], strict=False))
                f.update(id=entry_id, reason=reason[:2000])
                # The bytes as they were (undecodable ones arrived as lone surrogates).
                pipe.xadd(f"{self.stream}:dead", {_raw(k): _raw(v) for k, v in f.items()})
            pipe.execute()
            self._dead_lettered += len(dead)
        except Exception as err:
            self._read_errors += 1
            _log.error("redis bridge: cannot write %d dead letters: %s", len(dead), err)

    def _entries_added(self, client: redis.Redis) -> tuple[int, int, str | None]:
        """``(entries ever added, length, first entry id)`` of the stream (XINFO)."""
        info: Any = client.xinfo_stream(self.stream)
        first = info.get("first-entry")
        return int(info.get("entries-added") or 0), int(info["length"]), first[0] if first else None

    def _check_trimmed(self, client: redis.Redis, batch: int) -> None:
        """Plain XREAD: counts (``trimmed``) entries removed from the stream (``maxlen``
        trimming, XDEL) after our position before we read them. ``_accounted`` is the
        number of entries ever added that we read or counted; the entries past our
        position ever added, minus those still in the stream, were lost. Checked when
        reads come back full (a reader that keeps up reads partial batches: no cost)."""
        if self._accounted is None:
            return
        self._accounted += batch
        if batch < self.batch_size and not self._behind:
            return
        self._behind = batch >= self.batch_size
        added, length, first = self._entries_added(client)
        if first is None or _id_key(first) <= _id_key(self._last_id):
            return  # entries up to our position are still there: nothing past it was trimmed
        # Entries in the stream now: the ones just read (if not trimmed meanwhile) and
        # later ones; everything past our previous position that is not there was lost.
        lost = added - self._accounted - (length - batch)
        if lost > 0:
            self._accounted += lost
            self._trimmed += lost
            _log.warning(
                "redis bridge: %d entries of %r were trimmed (maxlen) before this reader read them",
                lost,
                self.stream,
            )

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
