"""Case (f): ``publish_many`` batches into a channel, drained; tracebus and its peers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..bus import EventBus
from .framework import Trial, _mod
from .inputs import _POOL, _RUNNING_TOPIC, _cycle, _state_events
from .peers import DictDispatcher


@dataclass
class _Batches:
    batches: list[list[Any]]
    topic: str


_BATCH = 1000


def _prepare_batches(n: int) -> _Batches:
    pool = _state_events(_POOL)
    distinct = [pool[i : i + _BATCH] for i in range(0, _POOL, _BATCH)]
    return _Batches(_cycle(distinct, max(n // _BATCH, 1)), _RUNNING_TOPIC)


def _tb_batches(shared: _Batches, n: int) -> Trial:
    batches = shared.batches[: max(n // _BATCH, 1)]
    bus = EventBus()
    ch = bus.subscribe_channel(None, buffer_size=_BATCH)
    publish_many, drain = bus.publish_many, ch.drain

    def run() -> int:
        got = 0
        for b in batches:
            publish_many(b)
            got += len(drain())
        return got

    return Trial(len(batches) * _BATCH, len(batches) * _BATCH, run, close=bus.close)


def _drained_trial(
    batches: list[list[Any]],
    buf: list[Any],
    publish_batch: Callable[[list[Any]], object],
    close: Callable[[], object] | None = None,
) -> Trial:
    """A peer for (f): publish each batch into handlers appending to ``buf``, then take
    everything out of ``buf`` (copy + clear), like ``drain()``."""

    def run() -> int:
        got = 0
        for b in batches:
            publish_batch(b)
            items = buf[:]
            buf.clear()
            got += len(items)
        return got

    trial = Trial(len(batches) * _BATCH, len(batches) * _BATCH, run)
    if close is not None:
        trial.close = close
    return trial


def _dict_batches(shared: _Batches, n: int) -> Trial:
    d = DictDispatcher()
    buf: list[Any] = []
    d.subscribe(shared.topic, buf.append)
    publish_many, topic = d.publish_many, shared.topic
    batches = shared.batches[: max(n // _BATCH, 1)]
    return _drained_trial(batches, buf, lambda b: publish_many(topic, b))


def _pyee_batches(shared: _Batches, n: int) -> Trial:
    ee = _mod("pyee").EventEmitter()
    buf: list[Any] = []
    ee.on(shared.topic, buf.append)
    emit, topic = ee.emit, shared.topic

    def publish_batch(b: list[Any]) -> None:
        for e in b:
            emit(topic, e)

    return _drained_trial(shared.batches[: max(n // _BATCH, 1)], buf, publish_batch)


def _blinker_batches(shared: _Batches, n: int) -> Trial:
    sig = _mod("blinker").Signal()
    buf: list[Any] = []
    sig.connect(buf.append, weak=False)
    send = sig.send

    def publish_batch(b: list[Any]) -> None:
        for e in b:
            send(e)

    return _drained_trial(shared.batches[: max(n // _BATCH, 1)], buf, publish_batch)


def _rx_batches(shared: _Batches, n: int) -> Trial:
    subject = _mod("reactivex.subject").Subject()
    buf: list[Any] = []
    subject.subscribe(buf.append)
    on_next = subject.on_next

    def publish_batch(b: list[Any]) -> None:
        for e in b:
            on_next(e)

    batches = shared.batches[: max(n // _BATCH, 1)]
    return _drained_trial(batches, buf, publish_batch, close=subject.dispose)


def _aiopubsub_batches(shared: _Batches, n: int) -> Trial:
    aps = _mod("aiopubsub")
    hub = aps.Hub()
    buf: list[Any] = []
    append = buf.append

    def handler(_key: Any, message: Any) -> None:
        append(message)

    key = aps.Key(*shared.topic.split("."))
    hub.add_subscriber(key, handler)
    publish = hub.publish

    def publish_batch(b: list[Any]) -> None:
        for e in b:
            publish(key, e)

    return _drained_trial(shared.batches[: max(n // _BATCH, 1)], buf, publish_batch)
