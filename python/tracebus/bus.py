"""The event bus's Python face: delivery-mode selection, the ``on`` decorator, tracing."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from . import _aio, _core
from .trace import Trace, build_trace

__all__ = ["EventBus"]

_log = logging.getLogger("tracebus")
_tasks: set[asyncio.Task[None]] = set()

H = TypeVar("H", bound=Callable[..., Any])

#: Seconds that handler threads get at interpreter exit to deliver what they buffered;
#: what they still hold after that is counted in ``get_metrics()["events_lost"]``.
EXIT_TIMEOUT = 2.0


@atexit.register
def _close_buses_at_exit() -> None:
    # Handler threads must be gone before the interpreter finalizes: one that touches
    # Python after that aborts the process.
    _core._close_all_buses(EXIT_TIMEOUT)


#: Subscribe hooks of integrations (``tracebus.otel.instrument``), by ``id(bus)``:
#: ``hook(filter, handler)`` returns the handler to subscribe in its place (of the same kind,
#: plain or async) and a callback given the new subscription. Empty unless one is installed.
_subscribe_hooks: dict[
    int,
    Callable[
        [_core.Filter | None, Callable[[Any], object]],
        tuple[Callable[[Any], object], Callable[[_core.Subscription], object]],
    ],
] = {}


def log_handler_error(
    exc: BaseException, event: _core.Event, subscription: _core.Subscription
) -> None:
    """Default handler-error hook: logs the error with the event and the subscription."""
    _log.error(
        "handler %r of subscription %s failed on %r",
        subscription.handler,
        subscription.id,
        event,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


class EventBus(_core.EventBus):
    """Publish/subscribe with Rust dispatch.

    - ``subscribe(filter, handler)``: a plain callable runs in the publisher's thread, in
      subscription order; ``mode="thread"`` gives it its own worker thread fed by a bounded
      channel; an ``async def`` handler runs on the loop it was subscribed from.
    - ``subscribe_channel(filter)``: a bounded channel to iterate, ``drain`` or ``async for``.
    - Handler errors are isolated, counted and passed to ``on_error`` (default: logged).
    """

    __slots__ = ()

    def __new__(
        cls,
        *,
        history_size: int = 10_000,
        max_depth: int = 64,
        on_error: Callable[[BaseException, _core.Event, _core.Subscription], object] | None = None,
    ) -> EventBus:
        return super().__new__(
            cls,
            history_size=history_size,
            max_depth=max_depth,
            on_error=on_error if on_error is not None else log_handler_error,
        )

    def subscribe(
        self,
        filter: _core.Filter | None,
        handler: Callable[[Any], object],
        *,
        mode: Literal["sync", "thread", "async"] | None = None,
        buffer_size: int | None = None,
        strategy: _core.SimpleBufferStrategy | _core.PriorityBufferStrategy | str | None = None,
    ) -> _core.Subscription:
        """Subscribes ``handler`` to events passing ``filter`` (None = all).

        ``mode`` defaults to ``"async"`` for coroutine functions and ``"sync"`` otherwise.
        Thread and async modes buffer up to ``buffer_size`` events (default 1000) with
        ``strategy`` (default: block the publisher, GIL released).

        Every handler error is counted and passed to ``on_error``. A ``BaseException`` that
        is not an ``Exception`` (SystemExit, KeyboardInterrupt, a custom one) then: in sync
        mode propagates to the publisher (the subscription stays); in thread mode is only
        counted and reported (the thread carries on); in async mode ends the subscription,
        counting what it could not deliver in ``get_metrics()["events_lost"]``, and leaves
        the pump task as asyncio does.
        """
        if mode is None:
            mode = "async" if inspect.iscoroutinefunction(handler) else "sync"
        hook = _subscribe_hooks.get(id(self))
        bind = None
        if hook is not None:
            handler, bind = hook(filter, handler)
        if mode == "async":
            if not inspect.iscoroutinefunction(handler):
                raise TypeError("handler must be an async function (async def) for mode='async'")
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "async handlers must be subscribed from a running event loop "
                    "(the loop that will run them)"
                ) from None
            sub = self._subscribe(filter, handler, "async", buffer_size, strategy)
            task = loop.create_task(_aio.pump(sub, handler), name=f"tracebus-{sub.id}")
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
            if bind is not None:
                bind(sub)
            return sub
        if mode not in ("sync", "thread"):
            raise ValueError(f"mode must be 'sync', 'thread', 'async' or None, got {mode!r}")
        if inspect.iscoroutinefunction(handler):
            # Called synchronously it would only create a coroutine that nobody awaits.
            raise TypeError(
                f"handler is an async function; it needs mode='async' (or no mode), not {mode!r}"
            )
        sub = self._subscribe(filter, handler, mode, buffer_size, strategy)
        if bind is not None:
            bind(sub)
        return sub

    def on(
        self,
        filter: _core.Filter | None = None,
        *,
        mode: Literal["sync", "thread", "async"] | None = None,
        buffer_size: int | None = None,
        strategy: _core.SimpleBufferStrategy | _core.PriorityBufferStrategy | str | None = None,
    ) -> Callable[[H], H]:
        """Decorator form of ``subscribe``; the function is returned unchanged.

        >>> @bus.on(filter_by_type(EventType.SERVICE_FAILED))
        ... def alert(event): ...
        """

        def deco(handler: H) -> H:
            self.subscribe(filter, handler, mode=mode, buffer_size=buffer_size, strategy=strategy)
            return handler

        return deco

    def trace(self, correlation_id: str) -> Trace:
        """The cascade of ``correlation_id`` from the in-memory history, as a tree."""
        return build_trace(correlation_id, self.history(correlation_id))
