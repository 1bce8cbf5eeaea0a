"""Building blocks of the live terminal view, for your own dashboards (``rich``).

- ``LiveView(bus, state_store, event_store=..., title=...)``: the whole view fed by a bus
  (a channel of its events), optionally seeded from a ``StateStore`` and an event store;
  a context manager, redrawn by ``refresh(wait)``.
- ``LiveModel``: what the view shows (services, clusters, the feed), fed by events,
  ``ManagedServiceUpdate``s and ``HealthStatusUpdate``s (``consume``); no rendering.
- ``ServiceTable(model, title).render(width, max_rows)``: the service table, fitted to the
  width by column priority (the service name and state are never cut).
- ``EventFeed(model).render(width, lines)``: the latest events, one line each, keeping a
  service's new state visible.
- ``cluster_line(model)``, ``footer_text(metrics)``, and ``render(model, title, footer,
  height, width)``: the clusters line, the footer from a ``PerformanceMonitor`` sample, and
  the whole frame as one renderable.

``examples/dashboard.py`` builds a dashboard from them; ``tracebus demo`` and ``tracebus
watch`` use the same parts.
"""

from __future__ import annotations

from .cli.live import *  # noqa: F403 (the public parts, listed in its __all__)
from .cli.live import __all__ as _parts

__all__ = [name for name in _parts if name != "DemoLiveView"]
