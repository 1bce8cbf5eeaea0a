"""Cascade trees: the events of one correlation arranged parent → children.

Trees are built and walked iteratively (a retry loop makes parent chains thousands deep),
and a parent cycle is cut and shown, never hidden: the first event of the cycle in publish
order becomes a root with ``cycle_parent`` set to the parent it was cut from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._core import Event

__all__ = ["Trace", "TraceNode", "build_trace", "fit"]


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

    def lines(
        self,
        width: int | None = None,
        max_lines: int | None = None,
        *,
        title: str | None = None,
        causes: bool = True,
    ) -> list[str]:
        """The tree as text lines: a title (``correlation ID (N events)``, after ``title:``
        if given), then one event a line, ``[type] text  (caused_by)`` (without the cause
        unless ``causes``), roots marked ``●``
        and each child by ``├─`` (``└─`` for the last child) under its parent's guide
        lines. With ``width`` every line is cut to fit, ending in ``…``; with
        ``max_lines`` at most that many event lines, then a ``… N more events`` line."""
        head = f"correlation {self.correlation_id} ({len(self)} events)"
        out = [f"{title}: {head}" if title else head]
        shown = 0
        total = len(self)
        # (node, guide prefix, connector) depth-first, without recursion
        stack: list[tuple[TraceNode, str, str]] = [(r, "", "● ") for r in reversed(self.roots)]
        while stack:
            node, prefix, connector = stack.pop()
            if max_lines is not None and shown >= max_lines:
                out.append(f"… {total - shown} more events")
                break
            e = node.event
            cause = f"  ({e.caused_by})" if causes else ""
            out.append(f"{prefix}{connector}[{e.type}] {e}{cause}{node.note}")
            shown += 1
            if connector == "● ":
                child_prefix = prefix + "  "
            else:
                child_prefix = prefix + ("│  " if connector == "├─ " else "   ")
            kids = node.children
            for i in range(len(kids) - 1, -1, -1):
                stack.append((kids[i], child_prefix, "└─ " if i == len(kids) - 1 else "├─ "))
        if width is not None:
            out = [fit(line, width) for line in out]
        return out

    def render(self, width: int | None = None) -> str:
        """The tree as text (``lines``), cut to ``width`` columns if given."""
        return "\n".join(self.lines(width))

    def __str__(self) -> str:
        return self.render()

    def __rich__(self) -> Any:
        """``rich.print(trace)``: the tree, fitted to the console's width (lines are cut
        with ``…``, never wrapped)."""
        from rich.text import Text

        class _Fitted:
            def __init__(self, trace: Trace) -> None:
                self.trace = trace

            def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
                for line in self.trace.lines(options.max_width):
                    yield Text(line, no_wrap=True, overflow="ellipsis")

        return _Fitted(self)


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` terminal cells, ending in ``…`` when cut."""
    from rich.cells import cell_len, set_cell_size

    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    if cell_len(line) <= width:
        return line
    return set_cell_size(line, width - 1) + "…"


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
