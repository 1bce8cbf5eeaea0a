"""The inputs shared by the contenders of a case: prebuilt events, topics per subscriber."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._core import Event, ServiceStateEvent, register_event_type
from .._enums import ServiceState, ServiceType

_POOL = 10_000  # distinct objects per input; longer inputs repeat them


def _cycle(pool: list[Any], n: int) -> list[Any]:
    return (pool * (n // len(pool) + 1))[:n]


def _state_events(n: int) -> list[Any]:
    pool = [
        ServiceStateEvent(
            ServiceType.PORT_FORWARD, f"svc-{i % 100}", ServiceState.STARTING, ServiceState.RUNNING
        )
        for i in range(min(n, _POOL))
    ]
    return _cycle(pool, n)


_RUNNING_TOPIC = "service.running"


@dataclass
class _Topics:
    """Input of the fan-out cases: events of one type and, per subscriber, its topic."""

    events: list[Any]
    match: str  # the events' type
    topics: list[str]  # one per subscriber; exactly `matching` of them equal `match`
    matching: int


def _prepare_fanout(k: int) -> Callable[[int], _Topics]:
    def prepare(n: int) -> _Topics:
        return _Topics(_state_events(n), _RUNNING_TOPIC, [_RUNNING_TOPIC] * k, k)

    return prepare


def _prepare_filtered(subscribers: int, types: int, prefix: str) -> Callable[[int], _Topics]:
    """`subscribers` type-filtered subscribers over `types` registered custom types; exactly
    one subscriber (in the middle) wants the events' type, the others want the other types.
    The registry holds at most 1024 types, so with more subscribers than types several
    non-matching subscribers share a type (what matters is that none matches)."""

    def prepare(n: int) -> _Topics:
        names = [str(register_event_type(f"{prefix}.{i:04d}")) for i in range(types)]
        match, others = names[0], names[1:]
        topics = [others[j % len(others)] for j in range(subscribers - 1)]
        topics.insert(subscribers // 2, match)
        pool = [Event(match, f"svc-{i % 100}") for i in range(min(n, _POOL))]
        return _Topics(_cycle(pool, n), match, topics, 1)

    return prepare
