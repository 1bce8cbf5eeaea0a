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
from typing import Any, TextIO

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

__all__ = ["DemoLiveView", "LiveModel", "footer_text", "render"]

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


class LiveModel:
    """What the live view shows, updated from updates and events (no rendering here)."""

    def __init__(self, feed_size: int = 200) -> None:
        self.services: dict[str, ServiceRow] = {}
        self.clusters: dict[str, tuple[bool, int, int]] = {}
        self.feed: deque[tuple[float, str, str, str, str]] = deque(maxlen=feed_size)
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
        self.feed.append((e.timestamp, str(e.severity), str(e.type), str(e), e.correlation_id))
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


def render(model: LiveModel, title: str, footer: str, height: int = 40, width: int = 150) -> Group:
    """The view as one rich renderable for a terminal ``height`` lines by ``width`` columns
    (narrow terminals drop the correlation, then the last-change column)."""
    now = time.time()
    # Fixed lines: table title, header (3), bottom border, caption; clusters panel (3);
    # events panel borders (2); footer; one spare for the cursor. The rest is shared by the
    # table rows and the event lines.
    fixed = 6 + (3 if model.clusters else 0) + 2 + 1 + 1
    free = max(6, height - fixed)
    feed_lines = max(3, min(12, free // 3))
    table_rows = max(3, free - feed_lines)
    counts: dict[str, int] = {}
    for r in model.services.values():
        counts[r.state] = counts.get(r.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    table = Table(
        title=f"{title} — {len(model.services)} services ({summary})",
        title_justify="left",
        expand=True,
        pad_edge=False,
    )
    show_corr = width >= 120
    show_age = width >= 95
    columns: list[tuple[str, dict[str, Any]]] = [
        ("service", {"no_wrap": True, "ratio": 1}),
        ("type", {"no_wrap": True, "min_width": 9}),
        ("state", {"no_wrap": True, "min_width": 8}),
        ("ready", {"no_wrap": True, "min_width": 5}),
        ("port", {"justify": "right", "no_wrap": True, "min_width": 5}),
        ("pid", {"justify": "right", "no_wrap": True, "min_width": 5}),
    ]
    if show_age:
        columns.append(("last change", {"no_wrap": True, "min_width": 11}))
    if show_corr:
        columns.append(("correlation", {"no_wrap": True, "min_width": 21}))
    for col, kw in columns:
        table.add_column(col, **kw)
    # Trouble first, then the most recent changes.
    rows = sorted(
        model.services.items(),
        key=lambda kv: (kv[1].state == "Running", -kv[1].changed, kv[0]),
    )
    for label, r in rows[:table_rows]:
        cells: list[Any] = [
            label,
            r.type,
            Text(r.state, style=STATE_STYLES.get(r.state, "")),
            Text("yes", style="green") if r.ready else Text("no", style="dim"),
            str(r.port or "-"),
            str(r.pid or "-"),
        ]
        if show_age:
            cells.append(_age(r.changed, now))
        if show_corr:
            cells.append(r.correlation_id)
        table.add_row(*cells)
    if len(rows) > table_rows:
        table.caption = f"… and {len(rows) - table_rows} more"
    clusters = Text(no_wrap=True, overflow="ellipsis")  # one line, cut at the edge
    # Unhealthy clusters first; at most 16 shown.
    ranked = sorted(model.clusters.items(), key=lambda kv: (kv[1][0], kv[0]))
    for name, (ok, ready, total) in ranked[:16]:
        clusters.append(f" {name} ", style="bold green" if ok else "bold white on red")
        clusters.append(f"{ready}/{total} nodes  ")
    if len(ranked) > 16:
        clusters.append(f"… {len(ranked) - 16} more")
    feed = Text(no_wrap=True, overflow="ellipsis")  # one line an event, cut at the edge
    for ts, sev, typ, text, corr in list(model.feed)[-feed_lines:]:
        style = SEVERITY_STYLES.get(sev, "")
        feed.append(
            time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d} "
        )
        feed.append(f"{sev.upper():5} ", style=style)
        feed.append(f"{typ:17} ", style=style)
        feed.append(f"{text}  ")
        feed.append(f"{corr}\n" if show_corr else "\n", style="dim")
    parts: list[Any] = [table]
    if model.clusters:
        parts.append(Panel(clusters, title="clusters", title_align="left", padding=(0, 1)))
    feed.rstrip()
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


class DemoLiveView:
    """The demo's live view: the table from the ``TUIReporter``'s channel, the feed from a
    bus channel, the footer from a ``PerformanceMonitor`` sampling the bus and the store
    twice a second."""

    def __init__(self, env: Any, feed: Channel, out: TextIO, title: str = "tracebus demo") -> None:
        self.env = env
        self.feed = feed
        self.title = title
        self.model = LiveModel()
        self.monitor = PerformanceMonitor(env.bus, env.state)
        self.metrics = self.monitor.sample()
        self._sampled = time.monotonic()
        self.console = Console(file=out, force_terminal=True)
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

    def refresh(self, wait: float) -> None:
        """Takes in what arrived, redraws, then waits up to ``wait`` seconds."""
        tui = self.env.tui
        if tui is not None:
            self.model.consume(tui.channel.drain())
        self.model.consume(self.feed.drain())
        now = time.monotonic()
        if now - self._sampled >= 0.5:
            self.metrics = self.monitor.sample()
            self._sampled = now
        drops = tui.stats()["dropped"] if tui is not None else 0
        foot = footer_text(self.metrics, f" │ view drops {drops}")
        self.live.update(render(self.model, self.title, foot, *self._size()), refresh=True)
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
