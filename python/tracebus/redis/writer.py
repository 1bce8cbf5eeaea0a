"""The outbound side of the bridge: the writer thread's batches to the stream."""

from __future__ import annotations

import logging

from .._core import Event
from ..codec import encode_event
from .base import _BridgeBase
from .checks import _redact
from .wire import _BACKOFF_CAP, _BACKOFF_FIRST

_log = logging.getLogger("tracebus.redis")


class _Writer(_BridgeBase):
    """``RedisStreamBridge``'s outbound methods (run on the writer thread, a ``Drain``)."""

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
            except Exception as err:  # e.g. RecursionError: skip the one, send the rest
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
