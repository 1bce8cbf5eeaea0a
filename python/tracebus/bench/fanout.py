"""Cases (a), (b), (c), (c'): synchronous fan-out to subscribers, tracebus and its peers."""

from __future__ import annotations

from collections.abc import Callable

from .._core import Filter, filter_by_type
from ..bus import EventBus
from .framework import Contender, Trial, _Count, _handler, _handler2, _mod
from .inputs import _Topics
from .peers import DictDispatcher


def _tb_filtered(
    make: Callable[[str], Filter],
    *,
    catch_all: bool = False,
    prepare_bus: Callable[[EventBus], Callable[[], object]] | None = None,
) -> Callable[[_Topics, int], Trial]:
    """tracebus with one subscriber per topic, subscribed with ``make(topic)``, and with
    ``catch_all`` one more, subscribed first, that gets every event. ``prepare_bus(bus)``
    runs before anything subscribes and returns what to undo when the trial closes."""

    def setup(shared: _Topics, n: int) -> Trial:
        bus = EventBus()
        undo = prepare_bus(bus) if prepare_bus is not None else None
        c = _Count()
        if catch_all:
            bus.subscribe(None, _handler(c))
        for t in shared.topics:
            bus.subscribe(make(t), _handler(c))
        events = shared.events[:n]
        publish = bus.publish

        def run() -> int:
            c.n = 0
            for e in events:
                publish(e)
            return c.n

        def close() -> None:
            if undo is not None:
                undo()
            bus.close()

        return Trial(n, n * (shared.matching + catch_all), run, close=close)

    return setup


def _tb_type(topic: str) -> Filter:
    return filter_by_type(topic)


_tb_sync = _tb_filtered(_tb_type)


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


def _tb_first(k: int, setup: Callable[[_Topics, int], Trial]) -> Callable[[_Topics, int], Trial]:
    """``setup`` with ``k`` of the subscribers (the matching one and ``k - 1`` others): the
    smaller case re-run beside the bigger one."""

    def smaller(shared: _Topics, n: int) -> Trial:
        others = sorted({t for t in shared.topics if t != shared.match})[: k - 1]
        return setup(_Topics(shared.events, shared.match, [*others, shared.match], 1), n)

    return smaller


# Case (c) inside case (c'): the same events, 100 subscribers (1 matches).
_tb_sync_100 = _tb_first(100, _tb_sync)


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
