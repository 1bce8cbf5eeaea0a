"""asyncio glue: async iteration of channels and the pump behind async handlers.

One pump task per async subscription drains its channel in batches and awaits the handler
for each event in order; the loop is woken through ``call_soon_threadsafe`` only when the
channel goes from empty to non-empty, never per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from ._core import Channel, Subscription, _correlation_var

_VAR = _correlation_var()
_SAMPLE_EVERY = 128  # as the native dispatcher: a subscription's first 64 calls, then every 128th
_SAMPLE_WARMUP = 64


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def channel_anext(ch: Channel) -> Any:
    """``await anext(channel)``: the next item, waiting without spinning."""
    loop = asyncio.get_running_loop()
    while True:
        item = ch.try_recv()
        if item is not None:
            return item
        if ch.closed:
            raise StopAsyncIteration
        fut: asyncio.Future[None] = loop.create_future()
        if ch._arm_wakeup(loop, partial(_wake, fut)):
            await fut


async def pump(sub: Subscription, handler: Callable[[Any], Awaitable[object]]) -> None:
    """Runs ``_pump``; if it ends by an exception (the task was cancelled, or the handler
    raised a ``BaseException`` that is not an ``Exception``: SystemExit, KeyboardInterrupt,
    a PanicException, a custom one), the subscription ends first, so publishers never wait
    on a buffer that nobody drains any more, and what it could not deliver is counted in
    the bus's ``events_lost``. A handler's ``BaseException`` is also counted and passed to
    ``on_error`` (by ``_pump``), then re-raised out of the task as asyncio does."""
    undelivered = [0]
    try:
        await _pump(sub, handler, undelivered)
    except BaseException:
        sub._abandon(undelivered[0])
        raise


async def _pump(
    sub: Subscription, handler: Callable[[Any], Awaitable[object]], undelivered: list[int]
) -> None:
    """Delivers a subscription's events to an async handler, in order, one at a time.

    Each call runs with the event's correlation in the context, so events the handler
    publishes (even after awaiting) join the cascade. The first 64 calls and then every
    128th are timed. When it ends by an exception, ``undelivered[0]`` is the number of
    drained events not yet handed to the handler.
    """
    loop = asyncio.get_running_loop()
    var_set, var_reset, clock = _VAR.set, _VAR.reset, time.perf_counter_ns
    n = 0
    while True:
        batch = sub._drain()
        if not batch:
            if sub._finished:
                return
            fut: asyncio.Future[None] = loop.create_future()
            if sub._arm_wakeup(loop, partial(_wake, fut)):
                await fut
            continue
        ok = 0
        sample: int | None = None
        first = n
        try:
            for event in batch:
                token = var_set(event)  # children inherit from the event being handled
                n += 1
                timed = n <= _SAMPLE_WARMUP or n % _SAMPLE_EVERY == 0
                start = clock() if timed else 0
                try:
                    await handler(event)
                except Exception as exc:
                    sub._record_error(exc, event)
                except asyncio.CancelledError:
                    sub._record_delivery(ok, sample)
                    raise
                except BaseException as exc:
                    sub._record_error(exc, event)  # counted and to on_error; then it ends
                    sub._record_delivery(ok, sample)
                    raise
                else:
                    ok += 1
                    if timed:
                        sample = clock() - start
                finally:
                    var_reset(token)
        except BaseException:
            # Counted here, not per event: the events of the batch not yet handed over.
            undelivered[0] = len(batch) - (n - first)
            raise
        sub._record_delivery(ok, sample)
