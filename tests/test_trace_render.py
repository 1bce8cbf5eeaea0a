"""Issue 15: trees use ├─ for every child but the last and └─ for the last, are cut to a
width with …, and render through rich (``Trace.__rich__``)."""

from __future__ import annotations

import io

from rich.console import Console

from tracebus import Event, build_trace


def sample() -> object:
    root = Event("user.action", "root", correlation_id="c1")
    a = Event("health.check", "a-" + "x" * 80, correlation_id="c1", parent_id=root.event_id)
    b = Event("health.check", "b", correlation_id="c1", parent_id=root.event_id)
    a1 = Event("health.check", "a1", correlation_id="c1", parent_id=a.event_id)
    return build_trace("c1", [root, a, a1, b])


def test_connectors() -> None:
    lines = sample().lines()  # type: ignore[attr-defined]
    assert lines[1].startswith("● [user.action]")
    assert lines[2].startswith("  ├─ [health.check] [health.check] a-")
    assert lines[3].startswith("  │  └─ [health.check] [health.check] a1")
    assert lines[4].startswith("  └─ [health.check] [health.check] b")


def test_fitted_to_width() -> None:
    lines = sample().lines(60)  # type: ignore[attr-defined]
    assert all(len(ln) <= 60 for ln in lines)
    assert lines[2].endswith("…") and not lines[4].endswith("…")


def test_rich_print_renders_the_tree_fitted() -> None:
    console = Console(file=io.StringIO(), width=50)
    console.print(sample())
    out = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert out[0].startswith("correlation c1 (4 events)")
    assert any(ln.startswith("  ├─ ") for ln in out) and any(ln.startswith("  └─ ") for ln in out)
    assert all(len(ln) <= 50 for ln in out) and len(out) == 5  # cut, never wrapped
