"""Issue 12, item 8: traces of deep parent chains (a retry loop) and of parent cycles.

Trees are built and walked iteratively (no RecursionError at any depth); a parent cycle is
cut at its first event in publish order and marked, so no event vanishes from the tree.
"""

from __future__ import annotations

import sys

import pytest

from tracebus import Event, EventBus, EventType, build_trace, new_correlation_id
from tracebus.cli.summary import render_tree

DEPTH = max(3000, sys.getrecursionlimit() * 2)


def chain(n: int, corr: str) -> list[Event]:
    events: list[Event] = []
    parent = None
    for i in range(n):
        e = Event(EventType.HEALTH_CHECK, f"retry{i}", correlation_id=corr, parent_id=parent)
        events.append(e)
        parent = e.event_id
    return events


@pytest.mark.timeout(60)
def test_a_deep_parent_chain_traces_and_renders() -> None:
    corr = new_correlation_id()
    bus = EventBus(history_size=DEPTH + 10)
    try:
        for e in chain(DEPTH, corr):  # a retry loop: each attempt caused by the last
            bus.publish(e)
        trace = bus.trace(corr)
        assert len(trace) == DEPTH and len(trace.roots) == 1
        depths = [d for d, _ in trace.roots[0].walk()]
        assert depths == list(range(DEPTH))
        text = trace.render()
        assert text.count("\n") == DEPTH and "retry2999" in text
        lines = render_tree(trace, "trace", max_lines=1_000_000)  # what `tracebus trace` prints
        assert len(lines) == DEPTH + 1
    finally:
        bus.close()


def test_a_parent_cycle_is_cut_and_shown() -> None:
    corr = new_correlation_id()
    a = Event(EventType.HEALTH_CHECK, "a", correlation_id=corr, event_id="evt_" + "c" * 16)
    b = Event(EventType.HEALTH_CHECK, "b", correlation_id=corr, parent_id=a.event_id)
    c = Event(EventType.HEALTH_CHECK, "c", correlation_id=corr, parent_id=b.event_id)
    # a's parent is c: a -> b -> c -> a, plus d hanging below the cycle and a normal root.
    a2 = Event(
        EventType.HEALTH_CHECK, "a", correlation_id=corr, event_id=a.event_id, parent_id=c.event_id
    )
    d = Event(EventType.HEALTH_CHECK, "d", correlation_id=corr, parent_id=c.event_id)
    root = Event(EventType.HEALTH_CHECK, "root", correlation_id=corr)
    trace = build_trace(corr, [root, a2, b, c, d])
    assert len(trace) == 5  # nothing vanished
    assert [n.event.source for n in trace.roots] == ["root", "a"]
    cut = trace.roots[1]
    assert cut.cycle_parent == c.event_id
    assert [(depth, n.event.source) for depth, n in cut.walk()] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
        (3, "d"),
    ]
    assert "parent cycle" in trace.render()
    assert any("parent cycle" in line for line in render_tree(trace, "t", 100))


def test_an_event_that_is_its_own_parent_is_shown_as_a_cycle() -> None:
    corr = new_correlation_id()
    eid = "evt_" + "d" * 16
    e = Event(EventType.HEALTH_CHECK, "self", correlation_id=corr, event_id=eid, parent_id=eid)
    trace = build_trace(corr, [e])
    assert len(trace) == 1 and trace.roots[0].cycle_parent == eid
    assert "parent cycle" in trace.render()
