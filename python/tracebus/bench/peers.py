"""The hand-written peers: a dict of handler lists, and for the reporter and store cases a dict
store behind a lock with dataclass events."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class DictDispatcher:
    """The hand-written peer: a dict of handler lists (what people write in 10 lines)."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callable[[Any], object]]] = {}

    def subscribe(self, topic: str, handler: Callable[[Any], object]) -> None:
        self._subs.setdefault(topic, []).append(handler)

    def publish(self, topic: str, event: Any) -> None:
        for h in self._subs.get(topic, ()):
            h(event)

    def publish_many(self, topic: str, events: Sequence[Any]) -> None:
        hs = self._subs.get(topic, ())
        for e in events:
            for h in hs:
                h(e)


@dataclass(slots=True)
class PyUpdate:
    """The hand-written peer's service update."""

    source_type: str
    label: str
    state: str
    timestamp: float
    event_id: int
    correlation_id: str


@dataclass(slots=True)
class PyStateEvent:
    """The hand-written peer's state-change event."""

    service_type: str
    source: str
    old_state: str
    new_state: str
    event_id: Any
    correlation_id: Any
    timestamp: float


class PyStore:
    """The hand-written peer's state store: a dict behind a lock (the reference guards its
    store with a mutex too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, PyUpdate] = {}

    def set_service_state(self, u: PyUpdate) -> bool:
        with self._lock:
            old = self._services.get(u.label)
            self._services[u.label] = u
        return old is None or old.state != u.state

    def get_service_state(self, label: str) -> PyUpdate | None:
        with self._lock:
            return self._services.get(label)


class PyAdapter:
    """The hand-written peer of ``EventBusAdapter.report``: store, event, dispatch."""

    def __init__(self, dispatcher: DictDispatcher) -> None:
        self._store = PyStore()
        self._dispatcher = dispatcher
        self._ids = itertools.count()

    def report(self, u: PyUpdate) -> None:
        store = self._store
        with store._lock:
            old = store._services.get(u.label)
            store._services[u.label] = u
        old_state = old.state if old is not None else "Unknown"
        if old_state != u.state:
            self._dispatcher.publish(
                "service.state",
                PyStateEvent(
                    u.source_type,
                    u.label,
                    old_state,
                    u.state,
                    next(self._ids),
                    u.correlation_id,
                    u.timestamp,
                ),
            )
