"""The live terminal view (``rich``): a table of services, a scrolling event feed and a
footer with the bus's figures. Used by ``tracebus demo`` (fed by a ``TUIReporter`` and a bus
channel) and ``tracebus watch`` (following an event store another process writes, or a
Redis stream other processes' bridges send to).

While a view runs, log records of the ``tracebus`` loggers (e.g. the Redis bridge's
reconnect warnings) are printed through its console, above the live region, instead of
going to the usual handlers (where they would draw over the view).

The demo's footer shows a ``PerformanceMonitor`` sample: events/s, p99 handler latency,
drops, and the performance score (the reference's formula with capped penalties; healthy
above 70).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .._core import (
    Channel,
    Event,
    HealthEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceStateEvent,
)
from ..performance import PerformanceMetrics, PerformanceMonitor

__all__ = [
    "DemoLiveView",
    "EventFeed",
    "FeedLine",
    "LiveModel",
    "LiveView",
    "ServiceRow",
    "ServiceTable",
    "cluster_line",
    "footer_text",
    "render",
]

STATE_STYLES = {
    "Running": "bold green",
    "Starting": "cyan",
    "Stopping": "yellow",
    "Stopped": "dim",
    "Failed": "bold red",
    "Retrying": "magenta",
    "Unknown": "dim",
}
SEVERITY_STYLES = {
    "trace": "dim",
    "debug": "blue",
    "info": "green",
    "warn": "yellow",
    "error": "bold red",
    "fatal": "bold white on red",
}


@dataclass
class ServiceRow:
    """What the table shows of one service."""

    type: str
    state: str
    ready: bool
    port: int
    pid: int
    changed: float
    correlation_id: str
    error: str | None = None


class FeedLine(NamedTuple):
    """One line of the event feed: ``text``, then ``keep`` (a service's transition,
    ``Starting → Running``: always visible), then ``tail`` (an error: cut first)."""

    timestamp: float
    severity: str
    type: str
    text: str
    keep: str
    correlation_id: str
    tail: str = ""


class LiveModel:
    """What the live view shows, updated from updates and events (no rendering here)."""

    def __init__(self, feed_size: int = 200) -> None:
        self.services: dict[str, ServiceRow] = {}
        self.clusters: dict[str, tuple[bool, int, int]] = {}
        self.feed: deque[FeedLine] = deque(maxlen=feed_size)
        self.events = 0
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=50)

    def on_update(self, u: ManagedServiceUpdate) -> None:
        """A service state update (from a ``TUIReporter``)."""
        self.services[u.source_label] = ServiceRow(
            str(u.source_type),
            str(u.state),
            u.is_ready,
            u.proxy_port,
            u.pid,
            u.timestamp,
            u.correlation_id,
            u.error_detail,
        )

    def on_health(self, u: HealthStatusUpdate | HealthEvent) -> None:
        """A cluster health update or event."""
        self.clusters[u.cluster_short_name] = (u.is_healthy, u.ready_nodes, u.total_nodes)

    def on_event(self, e: Event, *, apply_state: bool = False) -> None:
        """An event for the feed; with ``apply_state`` a ``ServiceStateEvent`` or
        ``HealthEvent`` also updates the table (when no reporter feeds it)."""
        self.events += 1
        if isinstance(e, ServiceStateEvent):
            # the transition is kept visible when the line is cut (see EventFeed)
            text = f"{e.source} ({e.service_type})"
            keep = f"{e.old_state} → {e.new_state}"
            tail = f" (error: {e.error})" if e.error else ""
        else:
            text, keep, tail = str(e), "", ""
        self.feed.append(
            FeedLine(e.timestamp, str(e.severity), str(e.type), text, keep, e.correlation_id, tail)
        )
        if apply_state:
            if isinstance(e, ServiceStateEvent):
                self.services[e.source] = ServiceRow(
                    str(e.service_type),
                    str(e.new_state),
                    e.is_ready,
                    e.proxy_port,
                    e.pid,
                    e.timestamp,
                    e.correlation_id,
                    e.error,
                )
            elif isinstance(e, HealthEvent):
                self.on_health(e)

    def consume(self, items: Iterable[Any], *, apply_state: bool = False) -> None:
        """Feeds updates, health updates and events, whatever their kind."""
        for item in items:
            if isinstance(item, Event):
                self.on_event(item, apply_state=apply_state)
            elif isinstance(item, ManagedServiceUpdate):
                self.on_update(item)
            elif isinstance(item, HealthStatusUpdate):
                self.on_health(item)

    def rate(self, total: int | None = None) -> float:
        """Events per second over the last few seconds (``total``: a running count, default
        the events seen)."""
        now = time.monotonic()
        n = self.events if total is None else total
        self._rate_window.append((now, n))
        while len(self._rate_window) > 2 and now - self._rate_window[0][0] > 3.0:
            self._rate_window.popleft()
        t0, n0 = self._rate_window[0]
        return (n - n0) / (now - t0) if now > t0 else 0.0


def _age(ts: float, now: float) -> str:
    d = max(0.0, now - ts)
    return f"{d:.1f}s ago" if d < 60 else time.strftime("%H:%M:%S", time.localtime(ts))


def _table_width(widths: list[int]) -> int:
    """Columns of a table (heavy head, no edge padding) whose cells are ``widths`` wide."""
    return sum(widths) + 2 * len(widths) + len(widths) + 1 - 2


class ServiceTable:
    """The live view's service table: one row per service of a ``LiveModel``, trouble
    first, then the most recent changes.

    Columns have priorities: ``service`` and ``state`` are never cut; when the width is
    short, ``correlation`` goes first, then ``last change``, ``pid``, ``port``, ``type``
    and ``ready``; only then is the service name cut (with ``…``). Columns take their
    content's width, so a wide terminal shows no stretched blank column."""

    #: (header, cell key, priority: higher stays longer)
    COLUMNS: tuple[tuple[str, int], ...] = (
        ("service", 100),
        ("type", 30),
        ("state", 100),
        ("ready", 35),
        ("port", 20),
        ("pid", 10),
        ("last change", 5),
        ("correlation", 1),
    )

    def __init__(self, model: LiveModel, title: str = "services") -> None:
        self.model = model
        self.title = title

    def heading(self) -> str:
        """``title — N services (n Running, …)``; ``title — no services yet`` when empty."""
        services = self.model.services
        if not services:
            return f"{self.title} — no services yet"
        counts: dict[str, int] = {}
        for r in services.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"{self.title} — {len(services)} services ({summary})"

    def render(self, width: int, max_rows: int) -> Table:
        """The table for ``width`` columns with at most ``max_rows`` rows (then an ``… and
        N more`` caption)."""
        now = time.time()
        rows = sorted(
            self.model.services.items(),
            key=lambda kv: (kv[1].state == "Running", -kv[1].changed, kv[0]),
        )
        shown = rows[:max_rows]
        cells = [
            {
                "service": label,
                "type": r.type,
                "state": r.state,
                "ready": "yes" if r.ready else "no",
                "port": str(r.port or "-"),
                "pid": str(r.pid or "-"),
                "last change": _age(r.changed, now),
                "correlation": r.correlation_id,
            }
            for label, r in shown
        ]
        cols = [name for name, _ in self.COLUMNS]

        def natural(name: str) -> int:
            return max([len(name), *(len(c[name]) for c in cells)])

        widths = {name: natural(name) for name in cols}
        by_priority = sorted(self.COLUMNS, key=lambda c: c[1])
        for name, prio in by_priority:
            if _table_width([widths[c] for c in cols]) <= width or prio >= 100:
                break
            cols.remove(name)
        service_width = widths["service"]
        over = _table_width([widths[c] for c in cols]) - width
        if over > 0:
            service_width = max(4, widths["service"] - over)
        table = Table(
            title=Text(self.heading(), no_wrap=True, overflow="ellipsis"),
            title_justify="left",
            expand=False,
            pad_edge=False,
        )
        for name in cols:
            kw: dict[str, Any] = {"no_wrap": True}
            if name == "service":
                kw.update(max_width=service_width, overflow="ellipsis")
            if name in ("port", "pid"):
                kw["justify"] = "right"
            table.add_column(name, **kw)
        for c in cells:
            row: list[Any] = []
            for name in cols:
                v = c[name]
                if name == "state":
                    row.append(Text(v, style=STATE_STYLES.get(v, "")))
                elif name == "ready":
                    row.append(Text(v, style="green" if v == "yes" else "dim"))
                else:
                    row.append(v)
            table.add_row(*row)
        if len(rows) > max_rows:
            table.caption = f"… and {len(rows) - max_rows} more"
        return table


class EventFeed:
    """The live view's event feed: the latest events of a ``LiveModel``, one line each:
    time, severity, type, text (cut with ``…`` when the line is too long, keeping a
    service's transition — the new state — visible) and, on wide terminals, the
    correlation id."""

    def __init__(self, model: LiveModel) -> None:
        self.model = model

    def render(self, width: int, lines: int) -> Text:
        """The last ``lines`` events for a panel ``width`` columns wide (inside)."""
        show_corr = width >= 116
        narrow = width < 76
        type_w = 15 if narrow else 17
        feed = Text(no_wrap=True, overflow="ellipsis")
        for ln in list(self.model.feed)[-lines:]:
            style = SEVERITY_STYLES.get(ln.severity, "")
            ts = ln.timestamp
            stamp = time.strftime("%H:%M:%S", time.localtime(ts))
            if not narrow:
                stamp += f".{int(ts * 1000) % 1000:03d}"
            head = f"{stamp} {ln.severity.upper():5} {ln.type[:type_w]:{type_w}} "
            corr = f"  {ln.correlation_id}" if show_corr else ""
            room = width - len(head) - len(corr)
            keep, tail, text = ln.keep, ln.tail, ln.text
            if keep:
                # the transition stays whole; the error goes first, then the name is cut
                # (keeping at least 12 characters of it, else just the new state shows)
                if narrow and len(text) + 1 + len(keep) > room:
                    keep = "→ " + keep.split(" → ", 1)[-1]
                name_room = room - len(keep) - 1
                tail_room = name_room - min(len(text), 12)
                tail = _cut(tail, max(0, tail_room)) if len(tail) > tail_room else tail
                name_room -= len(tail)
                text = _cut(text, name_room) if len(text) > name_room else text
            feed.append(stamp + " ")
            feed.append(f"{ln.severity.upper():5} ", style=style)
            feed.append(f"{ln.type[:type_w]:{type_w}} ", style=style)
            feed.append(text + (" " if text and keep else ""))
            if keep:
                feed.append(keep, style="bold")
                feed.append(tail)
            feed.append(f"{corr}\n" if show_corr else "\n", style="dim")
        feed.rstrip()
        return feed


def _cut(text: str, room: int) -> str:
    """``text`` in at most ``room`` characters, ending in ``…`` when cut."""
    if room <= 0:
        return ""
    return text if len(text) <= room else text[: room - 1] + "…"


def cluster_line(model: LiveModel) -> Text:
    """One line of cluster health (unhealthy first, at most 16), cut at the edge."""
    clusters = Text(no_wrap=True, overflow="ellipsis")
    ranked = sorted(model.clusters.items(), key=lambda kv: (kv[1][0], kv[0]))
    for name, (ok, ready, total) in ranked[:16]:
        clusters.append(f" {name} ", style="bold green" if ok else "bold white on red")
        clusters.append(f"{ready}/{total} nodes  ")
    if len(ranked) > 16:
        clusters.append(f"… {len(ranked) - 16} more")
    return clusters


def render(model: LiveModel, title: str, footer: str, height: int = 40, width: int = 150) -> Group:
    """The whole view (``ServiceTable``, clusters, ``EventFeed``, footer) as one rich
    renderable for a terminal ``height`` lines by ``width`` columns."""
    # Fixed lines: table title, header (3), bottom border, caption; clusters panel (3);
    # events panel borders (2); footer; one spare for the cursor. The rest is shared by the
    # table rows and the event lines.
    # Below 20 lines the clusters panel gives way to the table and the feed.
    clusters = bool(model.clusters) and height >= 20
    fixed = 6 + (3 if clusters else 0) + 2 + 1 + 1
    free = max(2, height - fixed)
    feed_lines = max(1, min(12, free // 3))
    table_rows = max(1, free - feed_lines)
    parts: list[Any] = [ServiceTable(model, title).render(width, table_rows)]
    if clusters:
        parts.append(
            Panel(cluster_line(model), title="clusters", title_align="left", padding=(0, 1))
        )
    feed = EventFeed(model).render(width - 4, feed_lines)
    parts.append(Panel(feed, title="events", title_align="left", padding=(0, 1)))
    parts.append(Text(footer, style="bold", no_wrap=True, overflow="ellipsis"))
    return Group(*parts)


def _logs_through(console: Console) -> Callable[[], None]:
    """Sends the ``tracebus`` loggers' records to ``console`` (a live view prints them above
    its region) and not to the handlers further up (``propagate`` off); returns the
    function that undoes it."""
    logger = logging.getLogger("tracebus")
    handler = RichHandler(console=console, show_path=False)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False

    def restore() -> None:
        logger.removeHandler(handler)
        logger.propagate = propagate

    return restore


def footer_text(m: PerformanceMetrics, extra: str = "") -> str:
    """``events/s · p99 latency · drops · score`` from a ``PerformanceMonitor`` sample."""
    health = "healthy" if m.system_healthy else "unhealthy"
    return (
        f" events/s {m.events_per_second:,.0f} │ published {m.events_sent:,} │ "
        f"p99 latency {m.p99_event_latency_ms:.3f} ms │ drops {m.events_dropped} │ "
        f"score {m.performance_score:.0f} ({health}){extra}"
    )


class LiveView:
    """A live dashboard of a bus, for your own tools: the service table (``ServiceTable``),
    the event feed (``EventFeed``) and a footer, redrawn by ``refresh``.

    - ``bus``: an ``EventBus``; a channel subscribed to it (``buffer`` events; beyond that
      the view skips events, counted as ``view drops`` in the footer) feeds the view.
      Service rows follow its ``ServiceStateEvent``s, cluster health its ``HealthEvent``s.
    - ``state_store``: a ``StateStore`` whose services are shown at once (optional); with
      it the footer's performance figures include the store.
    - ``event_store``: a ``SqliteEventStore`` whose stored service events are applied first
      (the table then shows the state the history left), optional.
    - ``out``: the terminal (default stdout); ``title``: the table's heading.
    - ``footer``: a function returning the footer's text (default: a
      ``PerformanceMonitor`` sample: events/s, p99 latency, drops, score).

    Use it as a context manager (``start``/``stop``) and call ``refresh(wait)`` in your
    loop; ``stop`` leaves the last frame on screen. While it runs, ``tracebus`` log records
    print above it."""

    def __init__(
        self,
        bus: Any,
        state_store: Any = None,
        *,
        event_store: Any = None,
        out: TextIO | None = None,
        title: str = "tracebus",
        footer: Callable[[], str] | None = None,
        buffer: int = 100_000,
    ) -> None:
        import sys

        self.bus = bus
        self.title = title
        self.model = LiveModel()
        self.feed: Channel | None = None if bus is None else bus.subscribe_channel(None, buffer)
        self.monitor = PerformanceMonitor(bus, state_store) if bus is not None else None
        self.metrics = self.monitor.sample() if self.monitor is not None else None
        self._sampled = time.monotonic()
        self._footer = footer
        if event_store is not None:
            for r in event_store.records():
                if isinstance(r.event, (ServiceStateEvent, HealthEvent)):
                    self.model.on_event(r.event, apply_state=True)
            self.model.events = 0
            self.model.feed.clear()
        if state_store is not None:
            for label, snap in state_store.get_all_service_states().items():
                self.model.services[label] = ServiceRow(
                    str(snap.source_type),
                    str(snap.state),
                    snap.is_ready,
                    snap.proxy_port,
                    snap.pid,
                    snap.last_updated,
                    snap.correlation_id,
                    snap.error_detail,
                )
        self.console = Console(file=out if out is not None else sys.stdout, force_terminal=True)
        self.live = Live(
            console=self.console, auto_refresh=False, transient=False, redirect_stdout=False
        )
        self._restore_logs: Callable[[], None] | None = None

    def _size(self) -> tuple[int, int]:
        size = self.console.size
        return size.height, size.width

    def start(self) -> None:
        """Shows the view (``tracebus`` log records print above it until ``stop``)."""
        self.live.start()
        self._restore_logs = _logs_through(self.console)

    def _take_in(self) -> None:
        """Feeds what arrived to the model."""
        if self.feed is not None:
            self.model.consume(self.feed.drain(), apply_state=True)

    def _drops(self) -> int:
        return int(self.feed.stats()["dropped"]) if self.feed is not None else 0

    def footer(self) -> str:
        """The footer's text: ``footer()`` if given, else the performance figures."""
        if self._footer is not None:
            return self._footer()
        now = time.monotonic()
        if self.monitor is not None and self.metrics is not None:
            if now - self._sampled >= 0.5 or self.metrics.events_sent < self.model.events:
                # (also the first frame: its footer counts the events it shows)
                self.metrics = self.monitor.sample()
                self._sampled = now
            return footer_text(self.metrics, f" │ view drops {self._drops()}")
        return f" events {self.model.events:,}"

    def refresh(self, wait: float = 0.0) -> None:
        """Takes in what arrived, redraws, then waits up to ``wait`` seconds."""
        self._take_in()
        self.live.update(render(self.model, self.title, self.footer(), *self._size()), refresh=True)
        if wait > 0:
            time.sleep(wait)

    def stop(self) -> None:
        """Draws the last frame and leaves it on screen."""
        try:
            self.refresh(0)
        finally:
            if self._restore_logs is not None:
                self._restore_logs()
                self._restore_logs = None
            self.live.stop()

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DemoLiveView(LiveView):
    """The demo's live view: the table from the ``TUIReporter``'s channel, the feed from a
    bus channel, the footer from a ``PerformanceMonitor`` sampling the bus and the store
    twice a second."""

    def __init__(self, env: Any, feed: Channel, out: TextIO, title: str = "tracebus demo") -> None:
        super().__init__(None, out=out, title=title)
        self.env = env
        self.feed = feed
        self.monitor = PerformanceMonitor(env.bus, env.state)
        self.metrics = self.monitor.sample()

    def _take_in(self) -> None:
        tui = self.env.tui
        if tui is not None:
            self.model.consume(tui.channel.drain())
        if self.feed is not None:
            self.model.consume(self.feed.drain())

    def _drops(self) -> int:
        tui = self.env.tui
        return int(tui.stats()["dropped"]) if tui is not None else 0
