"""Cascade trees: the events of one correlation arranged parent → children.

Trees are built and walked iteratively (a retry loop makes parent chains thousands deep),
and a parent cycle is cut and shown, never hidden: the first event of the cycle in publish
order becomes a root with ``cycle_parent`` set to the parent it was cut from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._core import Event

__all__ = ["Trace", "TraceNode", "build_trace"]


@dataclass
class TraceNode:
    """One event of a cascade and the events it caused."""

    event: Event
    children: list[TraceNode] = field(default_factory=list)
    #: The parent id this node was cut from to break a parent cycle (None: no cycle).
    cycle_parent: str | None = None

    @property
    def note(self) -> str:
        """A marker for renderers: empty, or the parent cycle that was cut here."""
        if self.cycle_parent is None:
            return ""
        return f"  ↺ parent cycle cut (parent {self.cycle_parent})"

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TraceNode]]:
        """Depth-first (depth, node) pairs, this node first (iterative: any depth)."""
        stack = [(depth, self)]
        while stack:
            d, node = stack.pop()
            yield d, node
            stack.extend((d + 1, c) for c in reversed(node.children))


@dataclass
class Trace:
    """The cascade of one correlation id. Roots are events whose parent is not in the trace."""

    correlation_id: str
    roots: list[TraceNode]

    def __len__(self) -> int:
        return sum(1 for r in self.roots for _ in r.walk())

    def events(self) -> list[Event]:
        """Every event of the trace, depth-first."""
        return [n.event for r in self.roots for _, n in r.walk()]

    def render(self) -> str:
        """A text tree, one event a line: ``type source: text``."""
        lines = [f"correlation {self.correlation_id} ({len(self)} events)"]
        for r in self.roots:
            for depth, node in r.walk():
                e = node.event
                lines.append(
                    f"{'  ' * depth}{'└─ ' if depth else '● '}[{e.type}] {e}  ({e.caused_by})"
                    + node.note
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def build_trace(correlation_id: str, events: Iterable[Event]) -> Trace:
    """Arranges events (in publish order) into a tree by ``parent_id``."""
    nodes: dict[str, TraceNode] = {}
    order: list[TraceNode] = []
    for e in events:
        node = TraceNode(e)
        nodes[e.event_id] = node
        order.append(node)
    order_index = {id(n): i for i, n in enumerate(order)}
    roots: list[TraceNode] = []
    parent_of: dict[int, TraceNode] = {}
    for node in order:
        parent = node.event.parent_id
        if parent is not None and parent in nodes and nodes[parent] is not node:
            nodes[parent].children.append(node)
            parent_of[id(node)] = nodes[parent]
        else:
            if parent is not None and parent in nodes:
                node.cycle_parent = parent  # its own parent
            roots.append(node)
    # Nodes no root reaches sit on (or below) a parent cycle: cut each cycle at its first
    # event in publish order, which becomes a root, so every event is in the tree.
    reached = {id(n) for r in roots for _, n in r.walk()}
    for node in order:
        if id(node) in reached:
            continue
        cut = node
        seen = {id(cut)}
        while id(parent_of[id(cut)]) not in seen:  # climb to the cycle
            cut = parent_of[id(cut)]
            seen.add(id(cut))
        cut = parent_of[id(cut)]  # on the cycle: the climb came back to it
        on_cycle = [cut]
        while id(parent_of[id(on_cycle[-1])]) != id(cut):
            on_cycle.append(parent_of[id(on_cycle[-1])])
        first = min(on_cycle, key=lambda n: order_index[id(n)])
        parent_node = parent_of.pop(id(first))
        parent_node.children.remove(first)
        first.cycle_parent = parent_node.event.event_id
        roots.append(first)
        reached.update(id(n) for _, n in first.walk())
    roots.sort(key=lambda n: order_index[id(n)])
    return Trace(correlation_id, roots)
