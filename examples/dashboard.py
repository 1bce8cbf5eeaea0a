"""A dashboard of your own from the live view's parts (``tracebus.live``).

Run: ``python examples/dashboard.py`` (on a terminal; ``--seconds N``, default 5). Three
services of a made-up application start, one fails and recovers, while a ``LiveView``
fed by the bus redraws the table, the feed and a custom footer. Below it, a
``ServiceTable`` and an ``EventFeed`` of the same model are printed on their own, as a
tool would embed them in its own layout.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console

from tracebus import (
    EventBus,
    EventBusAdapter,
    ManagedServiceUpdate,
    ServiceState,
    StateStore,
)
from tracebus.live import EventFeed, LiveView, ServiceTable

SERVICES = ("api-gateway", "billing-worker", "search-indexer")


def main(seconds: float = 5.0) -> None:
    bus = EventBus()
    store = StateStore()
    adapter = EventBusAdapter(bus, store)  # each state change is published on the bus
    changes = [(s, st) for st in (ServiceState.STARTING, ServiceState.RUNNING) for s in SERVICES]
    changes += [("billing-worker", ServiceState.FAILED), ("billing-worker", ServiceState.RUNNING)]
    start = time.monotonic()
    with LiveView(
        bus,
        store,
        title="my app",
        footer=lambda: f" my app │ up {time.monotonic() - start:.1f} s │ q to quit: Ctrl-C",
    ) as view:
        for label, state in changes:
            adapter.report(ManagedServiceUpdate("Worker", label, state))
            view.refresh(seconds / len(changes))
    # The parts on their own, in any rich layout:
    console = Console()
    console.print(ServiceTable(view.model, "services").render(console.width, max_rows=10))
    console.print(EventFeed(view.model).render(console.width, lines=4))
    bus.close()


if __name__ == "__main__":
    main(float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 5.0)
