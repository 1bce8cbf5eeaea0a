"""Cascade trees: the events of one correlation arranged parent → children."""

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

    def walk(self, depth: int = 0) -> Iterator[tuple[int, TraceNode]]:
        """Depth-first (depth, node) pairs, this node first."""
        yield depth, self
        for c in self.children:
            yield from c.walk(depth + 1)


@dataclass
class Trace:
    """The cascade of one correlation id. Roots are events whose parent is not in the trace."""

    correlation_id: str
    roots: list[TraceNode]

    def __len__(self) -> int:
        return sum(1 for r in self.roots for _ in r.walk())

    @property
    def complete(self) -> bool:
        """Whether the trace holds the whole cascade as far as this process can tell: False
        when it is empty (an unknown correlation, or one pushed out of the bus's bounded
        history) or when a root is an event created inside a handler (``depth > 0``) whose
        parent is missing, i.e. was pushed out. A root with ``depth == 0`` is a real root,
        even with a ``parent_id`` from elsewhere (``from_traceparent``, an explicit one), and
        so is one without a parent (``correlation.new`` inside a handler)."""
        return bool(self.roots) and all(
            r.event.depth == 0 or r.event.parent_id is None for r in self.roots
        )

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
    roots: list[TraceNode] = []
    for node in order:
        parent = node.event.parent_id
        if parent is not None and parent in nodes and nodes[parent] is not node:
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    return Trace(correlation_id, roots)
