"""``tracebus watch``: the live view following an event store another process writes
(``watch``) or a Redis stream (``watch_redis``); ``follow`` is the loop both run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from .._core import Event, HealthEvent, ServiceStateEvent, StateStore

__all__ = ["follow", "watch", "watch_redis"]

from .live import LiveModel, _logs_through, render


def follow(
    poll: Callable[[int], list[tuple[int, Event]]],
    out: TextIO,
    *,
    title: str,
    status: Callable[[], str],
    model: LiveModel | None = None,
    duration: float | None = None,
    interval: float = 0.25,
    live: bool = True,
    count: int | None = None,
) -> int:
    """Shows what ``poll(limit)`` returns — at most ``limit`` ``(number, event)`` pairs,
    oldest first, nothing when idle — until ``duration`` seconds have passed (None: until
    Ctrl-C) or ``count`` events were shown: the live view (``title``; the footer ends with
    ``status()``) when ``live``, else one line per event, ``number severity type text
    [correlation]``. ``model`` may already hold known state. Waits ``interval`` seconds
    after an empty poll. Returns how many events were shown. While the live view runs,
    ``tracebus`` log records print above it. Used by ``tracebus watch --db`` and
    ``--redis``."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive int or None, got {count!r}")
    model = LiveModel() if model is None else model
    deadline = None if duration is None else time.monotonic() + duration
    shown = 0
    console = Console(file=out, force_terminal=True) if live else None
    view = (
        Live(console=console, auto_refresh=False, transient=False) if console is not None else None
    )
    restore_logs = None
    if view is not None and console is not None:
        view.start()
        restore_logs = _logs_through(console)
    try:
        while (deadline is None or time.monotonic() < deadline) and (
            count is None or shown < count
        ):
            batch = poll(10_000 if count is None else min(10_000, count - shown))
            shown += len(batch)
            if view is not None and console is not None:
                model.consume((e for _, e in batch), apply_state=True)
                foot = f" events/s {model.rate():,.0f} │ shown {shown:,} │ {status()}"
                view.update(
                    render(model, title, foot, console.size.height, console.size.width),
                    refresh=True,
                )
            else:
                for n, e in batch:
                    sev = str(e.severity).upper()
                    out.write(f"{n:>8} {sev:5} {e.type!s:17} {e}  [{e.correlation_id}]\n")
                out.flush()
            if not batch:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if restore_logs is not None:
            restore_logs()
        if view is not None:
            view.stop()
    return shown


def watch(
    store: Any,
    out: TextIO,
    *,
    duration: float | None = None,
    interval: float = 0.25,
    live: bool = True,
    since: int | None = None,
    count: int | None = None,
    speed: float | None = None,
    select: dict[str, Any] | None = None,
) -> int:
    """Follows an event store that another process writes: the live view on a terminal,
    else one line per event (numbered by sequence). Stops after ``duration`` seconds (None:
    until Ctrl-C) or ``count`` events. Starts after the events already stored unless
    ``since`` is given; with ``speed`` (> 0) stored events are shown at that many times
    their recorded pace (re-watching an incident), new ones as they come. ``select``:
    ``read_records`` filters (``types``, ``sources``, ``severity``, ``correlation_id``).
    Events of types or classes this process does not know are shown from their stored
    fields. Returns how many events were shown."""
    from .stored import read_records

    if speed is not None and (not isinstance(speed, (int, float)) or not speed >= 0):
        raise ValueError(f"speed must be a number >= 0 or None, got {speed!r}")
    pos = store.last_seq() if since is None else since
    model = LiveModel()
    sel = select or {}
    # Services already known: their latest state from the history (cheap: one pass).
    if since is None and live:
        # (the last 100k events at most, so a huge store opens quickly)
        for r in read_records(store, max(0, pos - 100_000)):
            if isinstance(r.event, (ServiceStateEvent, HealthEvent)):
                model.on_event(r.event, apply_state=True)
        model.events = 0
        model.feed.clear()
    pending: list[tuple[int, Any]] = []
    clock: list[float] = []  # (first event's timestamp, wall time it was shown)

    def due(limit: int) -> list[tuple[int, Any]]:
        """The pending events whose time has come at ``speed``."""
        if not speed:
            batch = pending[:limit]
        else:
            if not clock:
                clock.extend((pending[0][1].timestamp, time.monotonic()))
            t0, w0 = clock
            now = (time.monotonic() - w0) * speed + t0
            n = 0
            while n < min(limit, len(pending)) and pending[n][1].timestamp <= now:
                n += 1
            batch = pending[:n]
        del pending[: len(batch)]
        return batch

    def poll(limit: int) -> list[tuple[int, Any]]:
        nonlocal pos
        if len(pending) < limit:
            fresh = [(r.seq, r.event) for r in read_records(store, pos, limit=limit, **sel)]
            if fresh:
                pending.extend(fresh)
            # skipped rows (filters) still advance the position
            pos = max(pos, fresh[-1][0] if fresh else pos)
        return due(limit)

    return follow(
        poll,
        out,
        title=f"tracebus watch {os.path.basename(store.path)}",  # (the path: in the footer)
        status=lambda: f"last seq {pos:,} │ db {store.path}",
        model=model,
        duration=duration,
        interval=interval if not speed else min(interval, 0.05),
        live=live,
        count=count,
    )


def watch_redis(
    url: str,
    out: TextIO,
    *,
    stream: str | None = None,
    duration: float | None = None,
    interval: float = 0.1,
    live: bool = True,
    count: int | None = None,
) -> int:
    """Follows the Redis stream that other processes' ``RedisStreamBridge``s send to (see
    ``tracebus demo --redis``): a local bus and ``StateStore`` fed by a receive-only bridge,
    shown like ``watch`` (the live view, else one line per event, numbered in arrival
    order). The stream is read from its start — what it keeps (``maxlen``) — so the table
    shows the current state at once. Stops after ``duration`` seconds (None: until Ctrl-C)
    or ``count`` events. Returns how many events were shown. Needs redis-py; raises
    ``BridgeError`` if the server does not answer, ``ValueError`` for a bad URL."""
    from ..bus import EventBus
    from ..redis import RedisStreamBridge

    bus = EventBus(history_size=0)
    state = StateStore()
    feed = bus.subscribe_channel(None, 1_000_000)
    kw: dict[str, Any] = {} if stream is None else {"stream": stream}
    # start_id "0": the whole stream, so the state is known at once. Receive-only: what it
    # receives is not handed to a writer only to be dropped as an echo.
    bridge = RedisStreamBridge(bus, url, state_store=state, start_id="0", outbound=False, **kw)
    received = 0

    def poll(limit: int) -> list[tuple[int, Event]]:
        nonlocal received
        batch = feed.drain(limit)
        first = received + 1
        received += len(batch)
        return list(enumerate(batch, first))

    def status() -> str:
        m = bridge.metrics()
        return (
            f"services {len(state.get_all_service_states()):,} │ errors {m['errors']} │ "
            f"view drops {feed.stats()['dropped']} │ {url} {bridge.stream}"
        )

    try:
        with bridge.start():
            shown = follow(
                poll,
                out,
                title=f"tracebus watch {url} {bridge.stream}",
                status=status,
                duration=duration,
                interval=interval,
                live=live,
                count=count,
            )
    finally:
        bus.close()
    dropped = feed.stats()["dropped"]
    if dropped:  # the view fell a million events behind: say so, not only in the footer
        sys.stderr.write(f"tracebus watch: {dropped} events arrived faster than shown, skipped\n")
    return shown
