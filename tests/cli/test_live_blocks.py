"""Issue 15: the live view's parts are public API (``tracebus.live``), and the example
builds a dashboard from them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import tracebus.live as live
from tracebus import (
    EventBus,
    EventBusAdapter,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    SqliteEventStore,
    StateStore,
)

ROOT = Path(__file__).resolve().parents[2]


def test_public_names_are_documented() -> None:
    for name in live.__all__:
        obj = getattr(live, name)
        assert (obj.__doc__ or "").strip(), name
    assert "ServiceTable" in (live.__doc__ or "") and "examples/dashboard.py" in (
        live.__doc__ or ""
    )


@pytest.mark.timeout(60)
def test_live_view_fed_by_a_bus_a_state_store_and_an_event_store(tmp_path: Path) -> None:
    es = SqliteEventStore(tmp_path / "h.db")
    es.append(ServiceStateEvent("Worker", "from-history", "Unknown", "Running"))
    bus = EventBus()
    state = StateStore()
    state.set_service_state(ManagedServiceUpdate("Worker", "known", ServiceState.RUNNING))
    out = io.StringIO()
    view = live.LiveView(bus, state, event_store=es, out=out, title="mine")
    with view:
        EventBusAdapter(bus, state).report(
            ManagedServiceUpdate("Worker", "fresh", ServiceState.STARTING)
        )
        view.refresh()
    assert set(view.model.services) == {"from-history", "known", "fresh"}
    assert view.model.services["fresh"].state == "Starting"
    text = out.getvalue()
    assert "mine — 3 services" in text and "published 1" in text  # first frame counts it
    bus.close()
    es.close()


def test_parts_render_on_their_own() -> None:
    m = live.LiveModel()
    m.on_event(
        ServiceStateEvent("PortForward", "pf-" + "x" * 30, "Starting", "Running"), apply_state=True
    )
    console = Console(file=io.StringIO(), width=60, force_terminal=False)
    console.print(live.ServiceTable(m, "t").render(60, max_rows=5))
    console.print(live.EventFeed(m).render(56, lines=3))
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    assert "pf-" + "x" * 30 in screen  # the name is whole: pid/port gave way
    assert "→ Running" in screen
    assert all(len(ln) <= 60 for ln in screen.splitlines())
    assert live.ServiceTable(live.LiveModel(), "t").heading() == "t — no services yet"


@pytest.mark.timeout(60)
def test_dashboard_example_runs() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dashboard.py"), "--seconds", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "billing-worker" in r.stdout and "Failed → Running" in r.stdout
