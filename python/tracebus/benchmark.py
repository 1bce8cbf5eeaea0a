"""The benchmark engine behind ``tracebus bench``: tracebus against the Python peers a user
would pick instead, every case in one process, ratios measured side by side.

Each case prepares its input once (prebuilt events, updates), gives every contender the same
input, runs every contender ``repeats`` times round-robin (so machine noise hits them alike)
and keeps the median. Every run returns the number of deliveries it observed (handler calls,
drained events, distinct ids, store hits) and the engine checks it against the expected
number, so no contender can be fast by skipping work.

Contenders (peers are imported only when installed; ``pip install tracebus[bench]``):

- ``hand-written``: the 10-line dict-of-handler-lists dispatcher (``DictDispatcher``) or, for
  the store and reporter cases, a dict store behind a lock with dataclass events;
- ``pyee``, ``blinker``, ``aiopubsub``, ``reactivex``: each used at its fastest (prebuilt
  keys, signals held by the publisher, handlers connected strongly);
- stdlib baselines: ``asyncio.Queue`` to a consumer task, ``queue.SimpleQueue``/``queue.Queue``
  between threads, and *floors* (what the interpreter alone costs, e.g. calling 10 handlers
  from a Python loop). Floors are shown and used by goals but never count as "best peer".

Usage::

    tracebus bench                      # every case, full size (about 2 minutes)
    tracebus bench --quick --cases a,c  # smaller inputs, fewer repeats
    tracebus bench --json               # machine-readable results

or from Python: ``tracebus.benchmark.run(["--quick"])``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import itertools
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._core import Event, ServiceStateEvent, StateStore, filter_by_type, register_event_type
from ._enums import ServiceState, ServiceType
from .bus import EventBus
from .reporters import EventBusAdapter

__all__ = [
    "CASES",
    "Case",
    "Contender",
    "DictDispatcher",
    "Goal",
    "Result",
    "Trial",
    "measure_case",
    "ratio",
    "run",
]

# ----------------------------------------------------------------------------- framework


@dataclass
class Trial:
    """One contender set up for one case: ``run()`` is the timed part (``ops`` operations);
    ``check(run())`` (untimed) returns the deliveries observed, which must equal
    ``expected``."""

    ops: int
    expected: int
    run: Callable[[], Any]
    check: Callable[[Any], int] = int
    close: Callable[[], object] = lambda: None
    extra: Callable[[], dict[str, float]] = dict


@dataclass(frozen=True)
class Contender:
    """A way of doing a case's job. ``setup(shared, n)`` builds a ``Trial`` of ``n``
    operations; slow peers run ``n // n_div`` operations (ops/s is per operation anyway)."""

    name: str
    setup: Callable[[Any, int], Trial]
    kind: str = "peer"  # "tracebus", "peer", "floor" or "reference" (tracebus, other setup)
    requires: str | None = None
    n_div: int = 1


@dataclass(frozen=True)
class Goal:
    """``tracebus ops/s >= minimum x reference``: the reference is a contender of the same
    case (measured side by side), or 1 op/s for an absolute goal."""

    minimum: float
    ref: str | None = None

    def describe(self) -> str:
        if self.ref is not None:
            return f">= {self.minimum:g}x {self.ref}"
        return f">= {_fmt_rate(self.minimum)}/s"


@dataclass(frozen=True)
class Case:
    """A benchmark case: ``prepare(n)`` builds the input shared by all contenders."""

    key: str
    title: str
    unit: str
    n: int
    prepare: Callable[[int], Any]
    contenders: tuple[Contender, ...]
    goals: tuple[Goal, ...]
    n_quick: int | None = None
    note: str = ""


@dataclass
class Result:
    """Measured throughput of one contender in one case (median of the runs)."""

    name: str
    kind: str
    ops: int = 0
    runs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ops_per_s(self) -> float | None:
        return statistics.median(self.runs) if self.runs and self.error is None else None


class _Count:
    """A delivery counter shared by the counting handlers of one trial."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def _handler(c: _Count) -> Callable[[Any], None]:
    """A fresh counting handler (distinct object each call: some peers key by handler)."""

    def handler(_event: Any) -> None:
        c.n += 1

    return handler


def _handler2(c: _Count) -> Callable[[Any, Any], None]:
    """A counting handler with aiopubsub's (key, message) signature."""

    def handler(_key: Any, _message: Any) -> None:
        c.n += 1

    return handler


def _ahandler(c: _Count) -> Callable[[Any], Any]:
    async def handler(_event: Any) -> None:
        c.n += 1

    return handler


def _ahandler2(c: _Count) -> Callable[[Any, Any], Any]:
    async def handler(_key: Any, _message: Any) -> None:
        c.n += 1

    return handler


def _mod(name: str) -> Any:
    return importlib.import_module(name)


def _available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        _mod(module)
    except ImportError:
        return False
    return True


class DictDispatcher:
    """The hand-written peer: a dict of handler lists (what people write in 10 lines)."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callable[[Any], object]]] = {}

    def subscribe(self, topic: str, handler: Callable[[Any], object]) -> None:
        self._subs.setdefault(topic, []).append(handler)

    def publish(self, topic: str, event: Any) -> None:
        for h in self._subs.get(topic, ()):
            h(event)

    def publish_many(self, topic: str, events: Sequence[Any]) -> None:
        hs = self._subs.get(topic, ())
        for e in events:
            for h in hs:
                h(e)


# ------------------------------------------------------------------- shared inputs

_POOL = 10_000  # distinct objects per input; longer inputs repeat them


def _cycle(pool: list[Any], n: int) -> list[Any]:
    return (pool * (n // len(pool) + 1))[:n]


def _state_events(n: int) -> list[Any]:
    pool = [
        ServiceStateEvent(
            ServiceType.PORT_FORWARD, f"svc-{i % 100}", ServiceState.STARTING, ServiceState.RUNNING
        )
        for i in range(min(n, _POOL))
    ]
    return _cycle(pool, n)


_RUNNING_TOPIC = "service.running"


@dataclass
class _Topics:
    """Input of the fan-out cases: events of one type and, per subscriber, its topic."""

    events: list[Any]
    match: str  # the events' type
    topics: list[str]  # one per subscriber; exactly `matching` of them equal `match`
    matching: int


def _prepare_fanout(k: int) -> Callable[[int], _Topics]:
    def prepare(n: int) -> _Topics:
        return _Topics(_state_events(n), _RUNNING_TOPIC, [_RUNNING_TOPIC] * k, k)

    return prepare


def _prepare_filtered(subscribers: int, types: int, prefix: str) -> Callable[[int], _Topics]:
    """`subscribers` type-filtered subscribers over `types` registered custom types; exactly
    one subscriber (in the middle) wants the events' type, the others want the other types.
    The registry holds at most 1024 types, so with more subscribers than types several
    non-matching subscribers share a type (what matters is that none matches)."""

    def prepare(n: int) -> _Topics:
        names = [str(register_event_type(f"{prefix}.{i:04d}")) for i in range(types)]
        match, others = names[0], names[1:]
        topics = [others[j % len(others)] for j in range(subscribers - 1)]
        topics.insert(subscribers // 2, match)
        pool = [Event(match, f"svc-{i % 100}") for i in range(min(n, _POOL))]
        return _Topics(_cycle(pool, n), match, topics, 1)

    return prepare


# ---------------------------------------------------------------- sync fan-out (a, b, c)


def _tb_sync(shared: _Topics, n: int) -> Trial:
    bus = EventBus()
    c = _Count()
    for t in shared.topics:
        bus.subscribe(filter_by_type(t), _handler(c))
    events = shared.events[:n]
    publish = bus.publish

    def run() -> int:
        c.n = 0
        for e in events:
            publish(e)
        return c.n

    return Trial(n, n * shared.matching, run, close=bus.close)


def _dict_sync(shared: _Topics, n: int) -> Trial:
    d = DictDispatcher()
    c = _Count()
    for t in shared.topics:
        d.subscribe(t, _handler(c))
    events, topic, publish = shared.events[:n], shared.match, d.publish

    def run() -> int:
        c.n = 0
        for e in events:
            publish(topic, e)
        return c.n

    return Trial(n, n * shared.matching, run)


def _floor_loop(shared: _Topics, n: int) -> Trial:
    """The interpreter's floor: calling each matching handler from a Python loop."""
    c = _Count()
    hs = [_handler(c) for t in shared.topics if t == shared.match]
    events = shared.events[:n]

    def run() -> int:
        c.n = 0
        for e in events:
            for h in hs:
                h(e)
        return c.n

    return Trial(n, n * shared.matching, run)


def _pyee_sync(shared: _Topics, n: int) -> Trial:
    ee = _mod("pyee").EventEmitter()
    c = _Count()
    for t in shared.topics:
        ee.on(t, _handler(c))
    events, topic, emit = shared.events[:n], shared.match, ee.emit

    def run() -> int:
        c.n = 0
        for e in events:
            emit(topic, e)
        return c.n

    return Trial(n, n * shared.matching, run)


def _blinker_sync(shared: _Topics, n: int) -> Trial:
    # One named signal per topic, looked up per publish (as the dict dispatcher does).
    ns = _mod("blinker").Namespace()
    c = _Count()
    for t in shared.topics:
        ns.signal(t).connect(_handler(c), weak=False)
    events, topic = shared.events[:n], shared.match

    def run() -> int:
        c.n = 0
        for e in events:
            ns[topic].send(e)
        return c.n

    return Trial(n, n * shared.matching, run)


def _aiopubsub_sync(shared: _Topics, n: int) -> Trial:
    aps = _mod("aiopubsub")
    hub = aps.Hub()
    c = _Count()
    for t in shared.topics:
        hub.add_subscriber(aps.Key(*t.split(".")), _handler2(c))
    key = aps.Key(*shared.match.split("."))
    events, publish = shared.events[:n], hub.publish

    def run() -> int:
        c.n = 0
        for e in events:
            publish(key, e)
        return c.n

    return Trial(n, n * shared.matching, run)


def _rx_sync(shared: _Topics, n: int) -> Trial:
    subject = _mod("reactivex.subject").Subject()
    c = _Count()
    events, topic = shared.events[:n], shared.match
    if all(t == topic for t in shared.topics):
        for _ in shared.topics:
            subject.subscribe(_handler(c))
        on_next = subject.on_next

        def run() -> int:
            c.n = 0
            for e in events:
                on_next(e)
            return c.n

    else:  # topics: the Rx way is one filter operator per subscriber
        ops = _mod("reactivex.operators")
        for t in shared.topics:
            subject.pipe(ops.filter(lambda m, t=t: m[0] == t)).subscribe(_handler(c))
        on_next = subject.on_next

        def run() -> int:
            c.n = 0
            for e in events:
                on_next((topic, e))
            return c.n

    return Trial(n, n * shared.matching, run, close=subject.dispose)


_C_REF = "tracebus, 100 subs"


def _tb_sync_100(shared: _Topics, n: int) -> Trial:
    """Case (c) inside case (c'): the same events, 100 subscribers (1 matches)."""
    others = sorted({t for t in shared.topics if t != shared.match})[:99]
    return _tb_sync(_Topics(shared.events, shared.match, [*others, shared.match], 1), n)


def _sync_peers(
    *, floor: bool = False, slow: int = 1, reference: bool = False
) -> tuple[Contender, ...]:
    out = [
        Contender("tracebus", _tb_sync, kind="tracebus"),
        *([Contender(_C_REF, _tb_sync_100, kind="reference")] if reference else []),
        Contender("hand-written", _dict_sync),
        Contender("pyee", _pyee_sync, requires="pyee", n_div=2),
        Contender("blinker", _blinker_sync, requires="blinker", n_div=4),
    ]
    out.append(Contender("aiopubsub", _aiopubsub_sync, requires="aiopubsub"))
    out.append(Contender("reactivex", _rx_sync, requires="reactivex", n_div=2 * slow))
    if floor:
        out.append(Contender("floor: Python loop", _floor_loop, kind="floor"))
    return tuple(out)


# ------------------------------------------------------------------------- asyncio (d)


def _drive(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return loop.run_until_complete(coro)


async def _wait_count(c: _Count, target: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while c.n < target:
        await asyncio.sleep(0)
        if time.monotonic() > deadline:
            break  # the check reports the shortfall


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for t in tasks:
        t.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.close()


def _tb_async(shared: _Topics, n: int) -> Trial:
    loop = asyncio.new_event_loop()
    bus = EventBus()
    c = _Count()
    events = shared.events[:n]

    async def setup() -> None:
        # The buffer holds a whole run: the publisher never waits for its own loop.
        bus.subscribe(filter_by_type(shared.match), _ahandler(c), buffer_size=max(n, 1000))

    _drive(loop, setup())
    publish = bus.publish

    async def go() -> int:
        c.n = 0
        for e in events:
            publish(e)
        await _wait_count(c, n)
        return c.n

    def close() -> None:
        bus.close()
        _close_loop(loop)

    return Trial(n, n, lambda: _drive(loop, go()), close=close)


def _queue_async(shared: _Topics, n: int) -> Trial:
    """An asyncio.Queue feeding one consumer task that awaits the handler."""
    loop = asyncio.new_event_loop()
    c = _Count()
    handler = _ahandler(c)
    events = shared.events[:n]
    q: asyncio.Queue[Any] = asyncio.Queue()

    async def consumer() -> None:
        get = q.get
        while True:
            await handler(await get())

    tasks: list[asyncio.Task[None]] = []

    async def setup() -> None:
        tasks.append(loop.create_task(consumer()))

    _drive(loop, setup())
    put = q.put_nowait

    async def go() -> int:
        c.n = 0
        for e in events:
            put(e)
        await _wait_count(c, n)
        return c.n

    return Trial(n, n, lambda: _drive(loop, go()), close=lambda: _close_loop(loop))


def _blinker_async(shared: _Topics, n: int) -> Trial:
    loop = asyncio.new_event_loop()
    sig = _mod("blinker").Signal()
    c = _Count()
    sig.connect(_ahandler(c), weak=False)
    events = shared.events[:n]
    send = sig.send_async

    async def go() -> int:
        c.n = 0
        for e in events:
            await send(e)
        return c.n

    return Trial(n, n, lambda: _drive(loop, go()), close=lambda: _close_loop(loop))


def _dict_async(shared: _Topics, n: int) -> Trial:
    """The hand-written dispatcher awaiting async handlers inline (no decoupling)."""
    loop = asyncio.new_event_loop()
    subs: dict[str, list[Callable[[Any], Any]]] = {}
    c = _Count()
    subs.setdefault(shared.match, []).append(_ahandler(c))
    events, topic = shared.events[:n], shared.match

    async def dispatch(t: str, e: Any) -> None:
        for h in subs.get(t, ()):
            await h(e)

    async def go() -> int:
        c.n = 0
        for e in events:
            await dispatch(topic, e)
        return c.n

    return Trial(n, n, lambda: _drive(loop, go()), close=lambda: _close_loop(loop))


def _pyee_async(shared: _Topics, n: int) -> Trial:
    loop = asyncio.new_event_loop()
    ee = _mod("pyee.asyncio").AsyncIOEventEmitter(loop=loop)
    c = _Count()
    ee.on(shared.match, _ahandler(c))
    events, topic, emit = shared.events[:n], shared.match, ee.emit

    async def go() -> int:
        c.n = 0
        for e in events:
            emit(topic, e)
        await _wait_count(c, n)
        return c.n

    return Trial(n, n, lambda: _drive(loop, go()), close=lambda: _close_loop(loop))


def _aiopubsub_async(shared: _Topics, n: int) -> Trial:
    aps = _mod("aiopubsub")
    loop = asyncio.new_event_loop()
    hub = aps.Hub()
    sub = aps.Subscriber(hub, "bench")
    c = _Count()
    key = aps.Key(*shared.match.split("."))

    async def setup() -> None:
        sub.add_async_listener(key, _ahandler2(c))

    _drive(loop, setup())
    events, publish = shared.events[:n], hub.publish

    async def go() -> int:
        c.n = 0
        for e in events:
            publish(key, e)
        await _wait_count(c, n)
        return c.n

    def close() -> None:
        _drive(loop, sub.remove_all_listeners())
        _close_loop(loop)

    return Trial(n, n, lambda: _drive(loop, go()), close=close)


# --------------------------------------------------------------- reporter adapter (e)


@dataclass(slots=True)
class PyUpdate:
    """The hand-written peer's service update."""

    source_type: str
    label: str
    state: str
    timestamp: float
    event_id: int
    correlation_id: str


@dataclass(slots=True)
class PyStateEvent:
    """The hand-written peer's state-change event."""

    service_type: str
    source: str
    old_state: str
    new_state: str
    event_id: Any
    correlation_id: Any
    timestamp: float


class PyStore:
    """The hand-written peer's state store: a dict behind a lock (the reference guards its
    store with a mutex too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, PyUpdate] = {}

    def set_service_state(self, u: PyUpdate) -> bool:
        with self._lock:
            old = self._services.get(u.label)
            self._services[u.label] = u
        return old is None or old.state != u.state

    def get_service_state(self, label: str) -> PyUpdate | None:
        with self._lock:
            return self._services.get(label)


class PyAdapter:
    """The hand-written peer of ``EventBusAdapter.report``: store, event, dispatch."""

    def __init__(self, dispatcher: DictDispatcher) -> None:
        self._store = PyStore()
        self._dispatcher = dispatcher
        self._ids = itertools.count()

    def report(self, u: PyUpdate) -> None:
        store = self._store
        with store._lock:
            old = store._services.get(u.label)
            store._services[u.label] = u
        old_state = old.state if old is not None else "Unknown"
        if old_state != u.state:
            self._dispatcher.publish(
                "service.state",
                PyStateEvent(
                    u.source_type,
                    u.label,
                    old_state,
                    u.state,
                    next(self._ids),
                    u.correlation_id,
                    u.timestamp,
                ),
            )


@dataclass
class _Updates:
    tb: list[Any]  # ManagedServiceUpdate
    py: list[PyUpdate]
    labels: list[str]


_LABELS = 100


def _prepare_updates(n: int) -> _Updates:
    """Updates of 100 labels, each label alternating Running/Stopped, so every update
    changes its label's state. `n` is rounded to a multiple of 200 so that consecutive runs
    keep alternating."""
    from ._core import ManagedServiceUpdate

    labels = [f"svc-{i:02d}" for i in range(_LABELS)]
    states = (ServiceState.RUNNING, ServiceState.STOPPED)
    tb = [
        ManagedServiceUpdate(ServiceType.PORT_FORWARD, labels[i], states[b])
        for b in range(2)
        for i in range(_LABELS)
    ]
    py = [
        PyUpdate(str(u.source_type), u.source_label, str(u.state), u.timestamp, k, u.correlation_id)
        for k, u in enumerate(tb)
    ]
    m = max(n // (2 * _LABELS), 1)
    return _Updates(tb * m, py * m, labels * (2 * m))


def _round_updates(n: int) -> int:
    return max(n // (2 * _LABELS), 1) * 2 * _LABELS


def _tb_report(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    adapter = EventBusAdapter(EventBus(), StateStore())
    c = _Count()
    adapter.bus.subscribe(None, _handler(c))
    updates, report = shared.tb[:n], adapter.report

    def run() -> int:
        c.n = 0
        for u in updates:
            report(u)
        return c.n

    return Trial(n, n, run, close=adapter.bus.close)


def _py_report(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    d = DictDispatcher()
    c = _Count()
    d.subscribe("service.state", _handler(c))
    adapter = PyAdapter(d)
    updates, report = shared.py[:n], adapter.report

    def run() -> int:
        c.n = 0
        for u in updates:
            report(u)
        return c.n

    return Trial(n, n, run)


# -------------------------------------------------------------- batches to a channel (f)


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


# ---------------------------------------------------------- publisher -> consumer thread (g)

_STAMP = 64  # one latency sample every 64 events


def _percentiles(samples: list[int]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)

    def at(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0

    return {
        "p50_latency_us": at(0.50),
        "p99_latency_us": at(0.99),
        "latency_samples": float(len(s)),
    }


def _threaded(
    n: int,
    events: list[Any],
    publish: Callable[[Any], object],
    consume: Callable[[int, list[int], list[int]], int],
    close: Callable[[], object] = lambda: None,
) -> Trial:
    """A publisher thread publishing `events` one by one and a consumer thread; the
    publisher stamps every 64th event's publish time, the consumer its arrival time."""
    latencies: list[int] = []

    def run() -> int:
        stamps = [0] * (n // _STAMP + 1)
        got = [0]
        pc = time.perf_counter_ns

        def publisher() -> None:
            for k in range(0, n, _STAMP):
                stamps[k // _STAMP] = pc()
                for e in events[k : k + _STAMP]:
                    publish(e)

        def consumer() -> None:
            got[0] = consume(n, stamps, latencies)

        threads = [threading.Thread(target=consumer), threading.Thread(target=publisher)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return got[0]

    return Trial(n, n, run, close=close, extra=lambda: _percentiles(latencies))


def _tb_thread(shared: _Topics, n: int) -> Trial:
    bus = EventBus()
    ch = bus.subscribe_channel(None, buffer_size=8192, strategy="block")
    recv, drain = ch.recv, ch.drain

    def consume(total: int, stamps: list[int], lat: list[int]) -> int:
        got = 0
        pc = time.perf_counter_ns
        while got < total:
            try:
                recv(timeout=10.0)
            except TimeoutError:
                break
            m = 1 + len(drain())
            t = pc()
            i = -(-got // _STAMP) * _STAMP
            while i < got + m:
                lat.append(t - stamps[i // _STAMP])
                i += _STAMP
            got += m
        return got

    return _threaded(n, shared.events[:n], bus.publish, consume, close=bus.close)


def _queue_thread(make: Callable[[], Any]) -> Callable[[_Topics, int], Trial]:
    def setup(shared: _Topics, n: int) -> Trial:
        q = make()
        get = q.get

        def consume(total: int, stamps: list[int], lat: list[int]) -> int:
            got = 0
            pc = time.perf_counter_ns
            while got < total:
                try:
                    get(timeout=10.0)
                except queue.Empty:
                    break
                if got % _STAMP == 0:
                    lat.append(pc() - stamps[got // _STAMP])
                got += 1
            return got

        return _threaded(n, shared.events[:n], q.put, consume)

    return setup


# ---------------------------------------------------------------- event creation (h)


_WINDOW = 10_000  # events kept alive at a time, like a bus history of 10,000


def _creation_trial(n: int, make_block: Callable[[range], list[Any]]) -> Trial:
    """Creates ``n`` events in blocks of 10,000 (``make_block(range(10_000))``, a list
    comprehension calling the constructor directly); each block is kept until the next one
    is made (retaining all ``n`` would mostly measure the cyclic GC walking a growing heap).
    The check: every block had 10,000 events, the first events of all blocks and all events
    of the last block have distinct event ids, and the last block distinct correlation ids."""
    blocks = max(n // _WINDOW, 1)
    rb, rw = range(blocks), range(_WINDOW)

    def run() -> tuple[list[Any], list[Any], int]:
        firsts: list[Any] = []
        block: list[Any] = []
        made = 0
        for _ in rb:
            block = make_block(rw)
            firsts.append(block[0])
            made += len(block)
        return firsts, block, made

    def check(out: tuple[list[Any], list[Any], int]) -> int:
        firsts, block, made = out
        ids = {e.event_id for e in firsts[:-1]} | {e.event_id for e in block}
        fresh = len(ids) == blocks - 1 + _WINDOW
        fresh &= len({e.correlation_id for e in block}) == _WINDOW
        return made if fresh else 0

    return Trial(blocks * _WINDOW, blocks * _WINDOW, run, check=check)


def _tb_create(shared: None, n: int) -> Trial:
    cls = ServiceStateEvent
    st, src, old, new = ServiceType.PORT_FORWARD, "svc", ServiceState.STARTING, ServiceState.RUNNING

    def make_block(r: range) -> list[Any]:
        return [cls(st, src, old, new) for _ in r]

    return _creation_trial(n, make_block)


def _dc_create(ids: str) -> Callable[[None, int], Trial]:
    def setup(shared: None, n: int) -> Trial:
        cls = PyStateEvent
        st, src, old, new = "PortForward", "svc", "Starting", "Running"
        now, u4, counter = time.time, uuid.uuid4, itertools.count()

        def uuid_block(r: range) -> list[Any]:
            return [cls(st, src, old, new, u4().hex, u4().hex, now()) for _ in r]

        def counter_block(r: range) -> list[Any]:
            return [cls(st, src, old, new, next(counter), next(counter), now()) for _ in r]

        return _creation_trial(n, uuid_block if ids == "uuid4" else counter_block)

    return setup


# --------------------------------------------------------------------------- store


def _tb_store(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    store = StateStore()
    pairs = list(zip(shared.tb[:n], shared.labels[:n], strict=True))
    set_state, get_state = store.set_service_state, store.get_service_state

    def applied() -> int:
        return int(store.get_metrics()["operations"])

    def run() -> tuple[int, int]:
        before, misses = applied(), 0
        for u, label in pairs:
            set_state(u)
            if get_state(label) is None:
                misses += 1
        return misses, applied() - before

    def check(out: tuple[int, int]) -> int:
        misses, sets = out
        return 2 * (n - misses) if sets == n else 0

    return Trial(2 * n, 2 * n, run, check=check)


def _py_store(locked: bool) -> Callable[[_Updates, int], Trial]:
    def setup(shared: _Updates, n: int) -> Trial:
        n = _round_updates(n)
        pairs = list(zip(shared.py[:n], shared.labels[:n], strict=True))
        if locked:
            store = PyStore()
            set_state, get_state = store.set_service_state, store.get_service_state

            def run() -> int:
                misses = 0
                for u, label in pairs:
                    set_state(u)
                    if get_state(label) is None:
                        misses += 1
                return misses

        else:
            d: dict[str, PyUpdate] = {}
            get = d.get

            def run() -> int:
                misses = 0
                for u, label in pairs:
                    d[u.label] = u
                    if get(label) is None:
                        misses += 1
                return misses

        return Trial(2 * n, 2 * n, run, check=lambda misses: 2 * (n - misses))

    return setup


# --------------------------------------------------------------------------- the cases


def _none(n: int) -> None:
    return None


CASES: tuple[Case, ...] = (
    Case(
        "a",
        "(a) prebuilt event -> 1 sync handler",
        "events/s",
        300_000,
        _prepare_fanout(1),
        _sync_peers(),
        (Goal(1.0, "hand-written"),),
        note="tracebus: default EventBus() (ids, counters, history on), filter_by_type",
    ),
    Case(
        "b",
        "(b) 10 sync handlers all receive",
        "events/s",
        100_000,
        _prepare_fanout(10),
        _sync_peers(floor=True),
        (Goal(0.85, "floor: Python loop"),),
    ),
    Case(
        "c",
        "(c) 100 filtered subscribers, 1 matches",
        "events/s",
        300_000,
        _prepare_filtered(100, 100, "bench.c"),
        _sync_peers(slow=20),
        (Goal(1.0, "hand-written"),),
        note="each subscriber filter_by_type of its own registered custom type",
    ),
    Case(
        "c'",
        "(c') 10,000 filtered subscribers, 1 matches",
        "events/s",
        300_000,
        _prepare_filtered(10_000, 800, "bench.cx"),
        _sync_peers(slow=1000, reference=True),
        (Goal(0.8, _C_REF),),
        note="9,999 non-matching subscribers over 799 other custom types (registry max 1024); "
        f"'{_C_REF}' is case (c) re-run here, side by side",
    ),
    Case(
        "d",
        "(d) asyncio: 1 async handler",
        "events/s",
        100_000,
        _prepare_fanout(1),
        (
            Contender("tracebus", _tb_async, kind="tracebus"),
            Contender("asyncio.Queue", _queue_async),
            Contender("blinker", _blinker_async, requires="blinker", n_div=2),
            Contender("hand-written", _dict_async),
            Contender("pyee", _pyee_async, requires="pyee", n_div=10),
            Contender("aiopubsub", _aiopubsub_async, requires="aiopubsub", n_div=10),
        ),
        (Goal(1.0, "asyncio.Queue"), Goal(2.0, "blinker")),
        note="hand-written awaits handlers inline (publisher waits for them); tracebus, Queue, "
        "pyee and aiopubsub hand events to the loop",
    ),
    Case(
        "e",
        "(e) adapter.report: store + event + 1 handler",
        "updates/s",
        200_000,
        _prepare_updates,
        (
            Contender("tracebus", _tb_report, kind="tracebus"),
            Contender("hand-written", _py_report),
        ),
        (Goal(1_000_000),),
        note="100 labels alternating Running/Stopped: every update changes state",
    ),
    Case(
        "f",
        "(f) publish_many(1,000) -> channel, drain()",
        "events/s",
        1_000_000,
        _prepare_batches,
        (
            Contender("tracebus", _tb_batches, kind="tracebus"),
            Contender("hand-written", _dict_batches),
            Contender("pyee", _pyee_batches, requires="pyee", n_div=4),
            Contender("blinker", _blinker_batches, requires="blinker", n_div=8),
            Contender("aiopubsub", _aiopubsub_batches, requires="aiopubsub", n_div=2),
            Contender("reactivex", _rx_batches, requires="reactivex", n_div=4),
        ),
        (Goal(10_000_000),),
        note="peers: handler appends to a list, drained by copy+clear",
    ),
    Case(
        "g",
        "(g) publisher thread -> channel -> consumer",
        "events/s",
        300_000,
        _prepare_fanout(1),
        (
            Contender("tracebus", _tb_thread, kind="tracebus"),
            Contender("queue.SimpleQueue", _queue_thread(queue.SimpleQueue)),
            Contender("queue.Queue(8192)", _queue_thread(lambda: queue.Queue(8192)), n_div=2),
        ),
        (Goal(2_000_000),),
        note="tracebus: publish() per event into a block-strategy channel (8192); "
        "the consumer recv()s then drain()s",
    ),
    Case(
        "h",
        "(h) ServiceStateEvent(...) with fresh ids",
        "events/s",
        300_000,
        _none,
        (
            Contender("tracebus", _tb_create, kind="tracebus"),
            Contender("dataclass+uuid4", _dc_create("uuid4"), n_div=4),
            Contender("dataclass+counter", _dc_create("counter")),
        ),
        (Goal(2_000_000),),
        note="ServiceStateEvent(type, source, old, new): new event id and correlation id each; "
        "made in blocks of 10,000 kept until the next block",
    ),
    Case(
        "store",
        "store: set_service_state + get_service_state",
        "ops/s",
        200_000,
        _prepare_updates,
        (
            Contender("tracebus", _tb_store, kind="tracebus"),
            Contender("hand-written", _py_store(locked=True)),
            Contender("floor: bare dict", _py_store(locked=False), kind="floor"),
        ),
        (Goal(2_000_000),),
        note="one set + one get = 2 ops; hand-written: dict behind a threading.Lock",
    ),
)

_BY_KEY = {c.key: c for c in CASES}


# --------------------------------------------------------------------------- measuring


def measure_case(
    case: Case, *, quick: bool = False, repeats: int = 5, log: Callable[[str], object] | None = None
) -> dict[str, Result]:
    """Runs every available contender of ``case`` round-robin ``repeats`` times (after one
    warm-up run each) and returns their results, tracebus first."""
    n = case.n_quick if (quick and case.n_quick) else (case.n // 4 if quick else case.n)
    results: dict[str, Result] = {}
    trials: dict[str, Trial] = {}
    shared = case.prepare(n)
    try:
        for c in case.contenders:
            res = results[c.name] = Result(c.name, c.kind)
            if not _available(c.requires):
                res.error = f"{c.requires} not installed"
                continue
            try:
                trials[c.name] = t = c.setup(shared, max(n // c.n_div, 1))
                res.ops = t.ops
                _verified(t, t.run())  # warm-up
            except Exception as exc:
                res.error = f"{type(exc).__name__}: {exc}"
                trials.pop(c.name, None)
        for r in range(repeats):
            for name, t in list(trials.items()):
                gc.collect()
                t0 = time.perf_counter_ns()
                out = t.run()
                dt = time.perf_counter_ns() - t0
                try:
                    _verified(t, out)
                except AssertionError as exc:
                    results[name].error = str(exc)
                    trials.pop(name)
                    continue
                results[name].runs.append(t.ops * 1e9 / max(dt, 1))
            if log is not None:
                log(f"  {case.key}: repeat {r + 1}/{repeats}")
        for name, t in trials.items():
            results[name].extra = t.extra()
    finally:
        for t in trials.values():
            try:
                t.close()
            except Exception:
                pass
        trials.clear()
        del shared
        gc.collect()
    return results


def _verified(t: Trial, out: Any) -> None:
    got = t.check(out)
    if got != t.expected:
        raise AssertionError(f"delivery check failed: observed {got}, expected {t.expected}")


@dataclass
class _Row:
    case: Case
    results: dict[str, Result]
    best_peer: str | None
    ratio: float | None
    goals: list[tuple[str, float | None, bool]]


def ratio(a: Result | None, b: Result | None) -> float | None:
    """``a`` over ``b``: the median of the per-repeat ratios (runs of one repeat are taken
    back to back, so load changes on a shared machine cancel out), or the ratio of the
    medians when the run counts differ."""
    if a is None or b is None or a.ops_per_s is None or b.ops_per_s is None:
        return None
    if len(a.runs) == len(b.runs):
        return statistics.median(x / y for x, y in zip(a.runs, b.runs, strict=True))
    return a.ops_per_s / b.ops_per_s


def _evaluate(case: Case, results: dict[str, Result]) -> _Row:
    tb = results.get("tracebus")
    tb_rate = tb.ops_per_s if tb else None
    peers = [r for r in results.values() if r.kind == "peer" and r.ops_per_s is not None]
    best = max(peers, key=lambda r: r.ops_per_s or 0.0, default=None)
    goals: list[tuple[str, float | None, bool]] = []
    for g in case.goals:
        if g.ref is not None:
            value = ratio(tb, results.get(g.ref))
        else:
            value = tb_rate
        goals.append((g.describe(), value, value is not None and value >= g.minimum))
    return _Row(case, results, best.name if best else None, ratio(tb, best), goals)


# --------------------------------------------------------------------------- output


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def _goal_text(desc: str, value: float | None, absolute: bool) -> str:
    if value is None:
        return f"{desc}: n/a"
    return f"{desc}: {_fmt_rate(value) + '/s' if absolute else f'{value:.3f}x'}"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("tracebus", "pyee", "blinker", "aiopubsub", "reactivex"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def _spread(r: Result) -> str:
    """Half the range of the runs, in percent of the median (how noisy the machine was)."""
    med = r.ops_per_s
    if med is None or len(r.runs) < 2:
        return ""
    return f"±{50 * (max(r.runs) - min(r.runs)) / med:.0f}%"


def _print_table(rows: list[_Row], machine: dict[str, Any], argv: list[str], out: Any) -> None:
    w = out.write
    vers = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    w(f"tracebus bench {' '.join(argv)}\n")
    w(f"{machine['date']}; {machine['python']}; {machine['cpu']} x{machine['cpus']}; {vers}\n")
    w(
        "ops/s: median of the runs (± half their range); tracebus/x: median over the repeats "
        "of tracebus ops/s / x ops/s (runs of a repeat are back to back); on the tracebus line "
        "x is the best peer\n\n"
    )
    hdr = (
        f"{'case':<46} {'contender':<22} {'ops/s':>9} {'':>5} {'tracebus/x':>10}  "
        f"{'goal':<36} met?\n"
    )
    w(hdr)
    w("-" * (len(hdr) + 2) + "\n")
    for row in rows:
        tb = row.results.get("tracebus")
        order = sorted(
            row.results.values(), key=lambda r: (r.kind != "tracebus", -(r.ops_per_s or 0.0))
        )
        goals = [
            (_goal_text(d, v, g.ref is None), "yes" if ok else "NO")
            for g, (d, v, ok) in zip(row.case.goals, row.goals, strict=True)
        ]
        lines = max(len(order), len(goals))
        for k in range(lines):
            title = row.case.title if k == 0 else ""
            goal, met = goals[k] if k < len(goals) else ("", "")
            if k >= len(order):
                w(f"{'':<46} {'':<22} {'':>9} {'':>5} {'':>10}  {goal:<36} {met}\n")
                continue
            r = order[k]
            if r.kind == "tracebus":
                rel = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
            else:
                x = ratio(tb, r)
                rel = f"{x:.2f}x" if x is not None else "-"
            name = r.name + (" (floor)" if r.kind == "floor" and "floor" not in r.name else "")
            rate = _fmt_rate(r.ops_per_s) if r.error is None else "error"
            w(f"{title:<46} {name:<22} {rate:>9} {_spread(r):>5} {rel:>10}  {goal:<36} {met}\n")
            if r.error is not None:
                w(f"{'':<46}   {r.error}\n")
        notes = [f"best peer: {row.best_peer}"] if row.best_peer else []
        for r in order:
            if r.extra and "p50_latency_us" in r.extra:
                p50, p99 = r.extra["p50_latency_us"], r.extra["p99_latency_us"]
                notes.append(f"{r.name}: end-to-end latency p50 {p50:.1f} us, p99 {p99:.1f} us")
        if row.case.note:
            notes.append(row.case.note)
        for e in notes:
            w(f"{'':<4}{e}\n")
        w("\n")
    missed = [
        f"{row.case.key}: {_goal_text(d, v, g.ref is None)}"
        for row in rows
        for g, (d, v, ok) in zip(row.case.goals, row.goals, strict=True)
        if not ok
    ]
    n_met = sum(1 for row in rows for _, _, ok in row.goals if ok)
    total = sum(len(row.goals) for row in rows)
    w(f"goals met: {n_met}/{total}" + (f"; missed: {'; '.join(missed)}" if missed else "") + "\n")


def _json(rows: list[_Row], machine: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    return {
        "argv": argv,
        "machine": machine,
        "cases": [
            {
                "key": row.case.key,
                "title": row.case.title,
                "unit": row.case.unit,
                "note": row.case.note,
                "results": {
                    name: {
                        "kind": r.kind,
                        "ops": r.ops,
                        "ops_per_s": r.ops_per_s,
                        "runs": r.runs,
                        "extra": r.extra,
                        "error": r.error,
                    }
                    for name, r in row.results.items()
                },
                "best_peer": row.best_peer,
                "ratio_vs_best_peer": row.ratio,
                "goals": [{"goal": d, "value": v, "met": m} for d, v, m in row.goals],
            }
            for row in rows
        ],
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tracebus bench",
        description="Benchmarks tracebus against its Python peers, all in one process.",
    )
    p.add_argument("--quick", action="store_true", help="smaller inputs and 3 repeats (about 30 s)")
    p.add_argument(
        "--cases",
        default=None,
        help="comma-separated case keys (default: all): " + ",".join(c.key for c in CASES),
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per contender (default 5, quick 3)"
    )
    p.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--verbose", action="store_true", help="report progress on stderr")
    return p


def run(argv: list[str]) -> int:
    """Runs the benchmark cases named by ``argv`` (see ``tracebus bench --help``) and prints
    the table (or JSON). Returns 0, or 2 when a case could not run or a delivery check
    failed (a missed goal is reported in the table, not as a failure)."""
    args = _parser().parse_args(argv)
    if args.list:
        for c in CASES:
            sys.stdout.write(f"{c.key:<6} {c.title}\n")
        return 0
    if args.cases:
        keys = [k.strip() for k in args.cases.split(",") if k.strip()]
        unknown = [k for k in keys if k not in _BY_KEY]
        if unknown:
            sys.stderr.write(
                f"unknown case(s): {', '.join(unknown)}; known: {', '.join(_BY_KEY)}\n"
            )
            return 2
    else:
        keys = [c.key for c in CASES]
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        sys.stderr.write("--repeats must be at least 1\n")
        return 2
    log = (lambda s: sys.stderr.write(s + "\n")) if args.verbose else None
    rows: list[_Row] = []
    failed = False
    for key in keys:
        case = _BY_KEY[key]
        if log:
            log(f"{case.title} ...")
        results = measure_case(case, quick=args.quick, repeats=repeats, log=log)
        failed |= any(
            r.error is not None and "not installed" not in r.error for r in results.values()
        )
        rows.append(_evaluate(case, results))
    machine = _machine()
    if args.json:
        json.dump(_json(rows, machine, argv), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(rows, machine, argv, sys.stdout)
    sys.stdout.flush()
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
