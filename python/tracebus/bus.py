"""The event bus's Python face: delivery-mode selection, the ``on`` decorator, tracing."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Literal, TypeAlias, TypeVar, overload

from . import _aio, _core
from ._enums import EventType
from .trace import Trace, build_trace

__all__ = ["EventBus"]

_log = logging.getLogger("tracebus")

# A forked child has none of the parent's threads: what needs one raises a clear error there
# (a bus's thread-mode subscriptions, batch processors: ``_core._after_fork_in_child``) or
# gets a fresh one (attached event stores, Redis bridges: their modules register theirs).
os.register_at_fork(after_in_child=_core._after_fork_in_child)
_tasks: set[asyncio.Task[None]] = set()
#: The pump tasks of each bus's async handlers, by ``id(bus)`` (``aclose`` awaits them).
_bus_tasks: dict[int, set[asyncio.Task[None]]] = {}

H = TypeVar("H", bound=Callable[..., Any])
E = TypeVar("E", bound=_core.Event)
R = TypeVar("R")

_Mode: TypeAlias = Literal["sync", "thread", "async"]
_Strategy: TypeAlias = _core.SimpleBufferStrategy | _core.PriorityBufferStrategy | str
#: What ``subscribe`` / ``on`` / ``once`` / ``wait_for`` accept as a filter: a ``Filter``, an
#: event class (``HealthEvent``: its events and its subclasses'), or None (every event).
FilterLike: TypeAlias = "_core.Filter | type[_core.Event] | None"

_ANOMALY = _core.register_event_type("system.anomaly")
#: The event types each built-in kind can carry (its constructor picks one of them).
_KIND_TYPES: dict[type[_core.Event], tuple[EventType | str, ...]] = {
    _core.ServiceStateEvent: (
        EventType.SERVICE_STARTING,
        EventType.SERVICE_RUNNING,
        EventType.SERVICE_STOPPING,
        EventType.SERVICE_STOPPED,
        EventType.SERVICE_FAILED,
        EventType.SERVICE_RETRYING,
    ),
    _core.HealthEvent: (
        EventType.HEALTH_CHECK,
        EventType.HEALTH_RECOVERY,
        EventType.HEALTH_FAILURE,
    ),
    _core.DependencyEvent: (
        EventType.DEPENDENCY_START,
        EventType.DEPENDENCY_STOP,
        EventType.CASCADE_STOP,
        EventType.CASCADE_START,
    ),
    _core.UserActionEvent: (EventType.USER_ACTION,),
    _core.SystemEvent: (
        EventType.SYSTEM_STARTUP,
        EventType.SYSTEM_SHUTDOWN,
        EventType.CONFIG_CHANGE,
        EventType.SYSTEM_ERROR,
        _ANOMALY,
    ),
}


def _forget(bus_id: int, task: asyncio.Task[None]) -> None:
    """Done callback of a pump task: drops it (and its bus's entry once empty)."""
    _tasks.discard(task)
    group = _bus_tasks.get(bus_id)
    if group is not None:
        group.discard(task)
        if not group:
            del _bus_tasks[bus_id]


def class_filter(cls: type[_core.Event]) -> _core.Filter | None:
    """The filter of an event class: instances of ``cls`` (subclasses included). For a
    built-in kind (or a subclass of one) dispatch is indexed by the types the kind can carry;
    the instance check (a C call, no Python frame) runs on those candidates only. ``Event``
    itself is every event (None)."""
    if cls is _core.Event:
        return None
    kind = next((k for k in cls.__mro__ if k in _KIND_TYPES), None)
    check = _core.filter_by(cls.__instancecheck__)
    if kind is None:
        return check  # a custom kind may carry any type: a full scan
    return _core.filter_by_type(*_KIND_TYPES[kind]) & check


def _as_filter(param: str, value: object) -> _core.Filter | None:
    """A ``Filter`` (or None) from a ``FilterLike``; TypeError naming ``param`` otherwise."""
    if value is None or isinstance(value, _core.Filter):
        return value
    if isinstance(value, type) and issubclass(value, _core.Event):
        return class_filter(value)
    raise TypeError(
        f"{param} must be a tracebus Filter, an Event class (such as HealthEvent) or None, "
        f"got {type(value).__name__}"
    )


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


#: Close hooks, by ``id(bus)``: run (and dropped) after the bus closed, e.g. an attached
#: event store storing what is still buffered (``SqliteEventStore.attach``).
_close_hooks: dict[int, dict[int, Callable[[], object]]] = {}


def _run_close_hooks(bus: _core.EventBus) -> None:
    """Runs (and drops) the close hooks of ``bus``."""
    for hook in list(_close_hooks.pop(id(bus), {}).values()):
        hook()


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

    @overload
    def subscribe(
        self,
        filter: type[E],
        handler: Callable[[E], object],
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> _core.Subscription: ...
    @overload
    def subscribe(
        self,
        filter: _core.Filter | None,
        handler: Callable[[Any], object],
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> _core.Subscription: ...
    def subscribe(
        self,
        filter: FilterLike,
        handler: Callable[[Any], object],
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> _core.Subscription:
        """Subscribes ``handler`` to events passing ``filter``: a ``Filter``, an event class
        (``HealthEvent``: its instances, subclasses included) or None (every event).

        ``mode`` defaults to ``"async"`` for coroutine functions and ``"sync"`` otherwise.
        Thread and async modes buffer up to ``buffer_size`` events (default 1000) with
        ``strategy`` (default: block the publisher, GIL released).

        The bus holds ``handler`` strongly until ``unsubscribe`` (or ``sub.close()``, or
        ``close()``), whether or not the returned ``Subscription`` is kept. (A channel from
        ``subscribe_channel``, by contrast, unsubscribes itself once nobody holds it.)

        Every handler error is counted and passed to ``on_error``. A ``BaseException`` that
        is not an ``Exception`` (SystemExit, KeyboardInterrupt, a custom one) then: in sync
        mode propagates to the publisher (the subscription stays); in thread mode is only
        counted and reported (the thread carries on); in async mode ends the subscription,
        counting what it could not deliver in ``get_metrics()["events_lost"]``, and leaves
        the pump task as asyncio does.
        """
        flt = _as_filter("filter", filter)
        if mode is None:
            mode = "async" if inspect.iscoroutinefunction(handler) else "sync"
        hook = _subscribe_hooks.get(id(self))
        bind = None
        if hook is not None:
            handler, bind = hook(flt, handler)
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
            sub = self._subscribe(flt, handler, "async", buffer_size, strategy)
            task = loop.create_task(_aio.pump(sub, handler), name=f"tracebus-{sub.id}")
            _tasks.add(task)
            _bus_tasks.setdefault(id(self), set()).add(task)
            task.add_done_callback(partial(_forget, id(self)))
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
        sub = self._subscribe(flt, handler, mode, buffer_size, strategy)
        if bind is not None:
            bind(sub)
        return sub

    @overload
    def on(
        self,
        filter: type[E],
        /,
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Callable[[Callable[[E], R]], Callable[[E], R]]: ...
    @overload
    def on(
        self,
        filter: _core.Filter | None = None,
        /,
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Callable[[H], H]: ...
    @overload
    def on(self, filter: H, /) -> H: ...
    def on(
        self,
        filter: FilterLike | Callable[..., Any] = None,
        /,
        *,
        mode: _Mode | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Any:
        """Decorator form of ``subscribe``; the function is returned unchanged.

        ``@bus.on(HealthEvent)`` subscribes to an event class (the handler's parameter is
        typed by it), ``@bus.on(filter)`` to a filter, and bare ``@bus.on`` (or
        ``@bus.on()``) to every event.

        >>> @bus.on(ServiceStateEvent)
        ... def alert(event: ServiceStateEvent) -> None: ...
        """
        if callable(filter) and not isinstance(filter, type):
            # Bare ``@bus.on``: the "filter" is the handler itself.
            self.subscribe(None, filter)
            return filter
        flt = _as_filter("filter", filter)

        def deco(handler: H) -> H:
            self.subscribe(flt, handler, mode=mode, buffer_size=buffer_size, strategy=strategy)
            return handler

        return deco

    @overload
    def once(
        self, filter: type[E], handler: Callable[[E], object], *, mode: _Mode | None = None
    ) -> _core.Subscription: ...
    @overload
    def once(
        self,
        filter: _core.Filter | None,
        handler: Callable[[Any], object],
        *,
        mode: _Mode | None = None,
    ) -> _core.Subscription: ...
    @overload
    def once(
        self, filter: type[E], *, mode: _Mode | None = None
    ) -> Callable[[Callable[[E], R]], Callable[[E], R]]: ...
    @overload
    def once(
        self, filter: _core.Filter | None = None, *, mode: _Mode | None = None
    ) -> Callable[[H], H]: ...
    def once(
        self,
        filter: FilterLike = None,
        handler: Callable[[Any], Any] | None = None,
        *,
        mode: _Mode | None = None,
    ) -> Any:
        """Subscribes ``handler`` for the first matching event only: it is called once, then
        the subscription ends (``Subscription.active`` is False). Without ``handler``, a
        decorator (``@bus.once(HealthEvent)``) returning the function unchanged. Modes as
        for ``subscribe``; later matching events are not delivered to it, even when several
        publishers race."""
        flt = _as_filter("filter", filter)

        def subscribe_once(fn: Callable[[Any], Any]) -> _core.Subscription:
            if not callable(fn):
                raise TypeError(f"handler must be callable, got {type(fn).__name__}")
            lock = threading.Lock()
            fired = False
            box: list[_core.Subscription] = []

            def first() -> bool:
                nonlocal fired
                with lock:
                    was, fired = fired, True
                if box:
                    box[0].close()
                return not was

            if inspect.iscoroutinefunction(fn):

                async def wrapper_async(event: Any) -> object:
                    return await fn(event) if first() else None

                wrapper: Callable[[Any], object] = wrapper_async
            else:

                def wrapper(event: Any) -> object:
                    return fn(event) if first() else None

            sub = self.subscribe(flt, wrapper, mode=mode)
            box.append(sub)
            if fired:
                sub.close()  # delivered before ``box`` was filled
            return sub

        if handler is not None:
            return subscribe_once(handler)

        def deco(fn: H) -> H:
            subscribe_once(fn)
            return fn

        return deco

    @overload
    def wait_for(
        self, filter: type[E], *, timeout: float | None = None
    ) -> Coroutine[Any, Any, E]: ...
    @overload
    def wait_for(
        self, filter: _core.Filter | None = None, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, _core.Event]: ...
    def wait_for(
        self, filter: FilterLike = None, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]:
        """``await bus.wait_for(filter, timeout=5)``: the first event passing ``filter`` (a
        ``Filter``, an event class or None) published from now on; ``TimeoutError`` after
        ``timeout`` seconds (None: no limit). Call it from a running event loop.

        The subscription is made when ``wait_for`` is called, not when it is awaited, so
        ``waiter = bus.wait_for(f); bus.publish(...); await waiter`` cannot miss the event.
        It ends with the wait (event, timeout or cancellation). Events may come from any
        thread; the matching one is handed to the loop thread-safely.
        """
        flt = _as_filter("filter", filter)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(
                    f"timeout must be a number of seconds or None, got {type(timeout).__name__}"
                )
            if not timeout >= 0:
                raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("wait_for must be called from a running event loop") from None
        fut: asyncio.Future[_core.Event] = loop.create_future()

        def settle(event: _core.Event) -> None:
            if not fut.done():
                fut.set_result(event)

        def first(event: _core.Event) -> None:
            loop.call_soon_threadsafe(settle, event)

        sub = self.once(flt, first, mode="sync")

        async def wait() -> _core.Event:
            try:
                return await asyncio.wait_for(fut, timeout)
            finally:
                sub.close()

        return wait()

    def close(self, timeout: float = 5.0) -> None:
        """Closes the bus: no more publishing; handler threads finish their buffers (waited
        up to ``timeout`` s). Async handlers finish theirs on their loop: called from a
        thread other than that loop's, ``close`` also waits for them (up to ``timeout``);
        on the loop itself it cannot block, so ``await bus.aclose()`` there. What is
        attached to the bus finishes too: an event store attached with
        ``SqliteEventStore.attach`` has stored every event published before ``close``."""
        super().close(timeout)
        _run_close_hooks(self)
        tasks = [t for t in _bus_tasks.get(id(self), ()) if not t.done()]
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop in {t.get_loop() for t in tasks}:
            if loop is current or not loop.is_running():
                continue
            mine = [t for t in tasks if t.get_loop() is loop]

            async def gather(group: list[asyncio.Task[None]] = mine) -> None:
                await asyncio.wait(group)

            try:
                asyncio.run_coroutine_threadsafe(gather(), loop).result(timeout)
            except TimeoutError:
                _log.warning("EventBus.close: async handlers still running after %ss", timeout)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Closes the bus (see ``close``) and waits, without blocking the loop, until the
        async handlers subscribed from this loop have finished their buffers (up to
        ``timeout`` s, then ``TimeoutError``)."""
        await asyncio.to_thread(super().close, timeout)
        await asyncio.to_thread(_run_close_hooks, self)
        loop = asyncio.get_running_loop()
        mine = [t for t in _bus_tasks.get(id(self), ()) if t.get_loop() is loop]
        if mine:
            _done, pending = await asyncio.wait(mine, timeout=timeout)
            if pending:
                raise TimeoutError(
                    f"{len(pending)} async handler(s) still running after {timeout}s"
                )

    def trace(self, correlation_id: str) -> Trace:
        """The cascade of ``correlation_id`` from the in-memory history, as a tree.

        A correlation the history does not hold (unknown, or every event pushed out of the
        bounded history) gives an empty ``Trace`` with ``complete == False``; one whose
        oldest events were pushed out gives the rest with ``complete == False`` too (see
        ``Trace.complete``). ``TypeError`` / ``ValueError`` for a non-str or empty id."""
        if not isinstance(correlation_id, str):
            raise TypeError(
                f"correlation_id must be a str (an event's correlation_id), got "
                f"{type(correlation_id).__name__}"
            )
        if not correlation_id:
            raise ValueError("correlation_id must be a non-empty str")
        return build_trace(correlation_id, self.history(correlation_id))
