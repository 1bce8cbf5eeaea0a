"""Case (d): an asyncio handler, tracebus and its peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .._core import filter_by_type
from ..bus import EventBus
from .framework import Trial, _ahandler, _ahandler2, _Count, _mod
from .inputs import _Topics


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
