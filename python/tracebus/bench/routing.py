"""Cases (i)-(m): routing the filters real programs write (source & type, one waiter per
in-flight correlation, a minimum severity, a catch-all beside type handlers) and
subscription churn; against a hand-written dict keyed the same way, or tracebus itself at
another size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import (
    Event,
    Filter,
    ServiceStateEvent,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
)
from .._enums import EventType, ServiceState, ServiceType, Severity
from ..bus import EventBus
from .fanout import _dict_sync, _tb_filtered, _tb_first, _tb_sync, _tb_type
from .framework import Contender, Trial
from .inputs import _POOL, _cycle, _Topics

_RUNNING = EventType.SERVICE_RUNNING


def _source_and_type(source: str) -> Filter:
    return filter_by_source(source) & filter_by_type(_RUNNING)


def _correlation(correlation_id: str) -> Filter:
    return filter_by_correlation(correlation_id)


def _severity_error(_topic: str) -> Filter:
    return filter_by_severity(Severity.ERROR)


def _prepare_sources(subscribers: int) -> Callable[[int], _Topics]:
    """One `source & type` subscriber per source `pf-i`; the events (service.running) come
    from the middle one's source."""

    def prepare(n: int) -> _Topics:
        topics = [f"pf-{i:05d}" for i in range(subscribers)]
        match = topics[subscribers // 2]
        ev = [
            ServiceStateEvent(
                ServiceType.PORT_FORWARD, match, ServiceState.STARTING, ServiceState.RUNNING
            )
            for _ in range(min(n, _POOL))
        ]
        return _Topics(_cycle(ev, n), match, topics, 1)

    return prepare


def _prepare_correlations(waiters: int) -> Callable[[int], _Topics]:
    """One waiter per correlation id; the events belong to the middle one's operation."""

    def prepare(n: int) -> _Topics:
        topics = [f"corr_{i:016d}" for i in range(waiters)]
        match = topics[waiters // 2]
        ev = [
            Event(EventType.USER_ACTION, "svc", correlation_id=match, caused_by="bench")
            for _ in range(min(n, _POOL))
        ]
        return _Topics(_cycle(ev, n), match, topics, 1)

    return prepare


def _prepare_severity(subscribers: int) -> Callable[[int], _Topics]:
    """`subscribers` severity >= ERROR subscribers, INFO events: none matches."""

    def prepare(n: int) -> _Topics:
        ev = [Event(EventType.USER_ACTION, "svc") for _ in range(min(n, _POOL))]
        return _Topics(_cycle(ev, n), "", [f"s{i}" for i in range(subscribers)], 0)

    return prepare


def _no_subscribers(shared: _Topics, n: int) -> Trial:
    return _tb_filtered(_severity_error)(_Topics(shared.events, "", [], 0), n)


def _with_catch_all(catch_all: bool) -> Callable[[_Topics, int], Trial]:
    """Case (c)'s 100 type subscribers plus one more subscriber that gets every event: a
    catch-all (``catch_all``), or a second subscriber of the events' type (the same handler
    calls, all reached by one key: the reference)."""
    if catch_all:
        return _tb_filtered(_tb_type, catch_all=True)

    def setup(shared: _Topics, n: int) -> Trial:
        return _tb_sync(_Topics(shared.events, shared.match, [*shared.topics, shared.match], 2), n)

    return setup


def _churn(count: int, inside: bool) -> Callable[[Any, int], Trial]:
    """Subscribes ``count`` `source & type` subscriptions then unsubscribes them, repeated
    to ``n`` operations; ``inside``: all of it from a handler while a publish is in flight."""

    def setup(_shared: Any, n: int) -> Trial:
        bus = EventBus()
        filters = [_source_and_type(f"pf-{i:05d}") for i in range(count)]
        reps = max(n // (2 * count), 1)

        def handler(_e: Any) -> None:
            return None

        def churn() -> int:
            done = 0
            for _ in range(reps):
                subs = [bus.subscribe(f, handler) for f in filters]
                for s in subs:
                    done += bus.unsubscribe(s)
                done += len(subs)
            return done

        if not inside:
            return Trial(2 * count * reps, 2 * count * reps, churn, close=bus.close)
        got = [0]

        def hook(_e: Any) -> None:
            got[0] = churn()

        bus.subscribe(filter_by_type(EventType.CONFIG_CHANGE), hook)
        ev = Event(EventType.CONFIG_CHANGE, "bench")

        def run() -> int:
            got[0] = 0
            bus.publish(ev)
            return got[0]

        return Trial(2 * count * reps, 2 * count * reps, run, close=bus.close)

    return setup


_SOURCES_REF = "tracebus, 100 subs"
_CORR_REF = "tracebus, 1,000 waiters"
_CHURN_REF = "tracebus, 1,000 subs"
_CATCH_REF = "tracebus, no catch-all"


def _keyed_peers(
    make: Callable[[str], Filter], ref: tuple[int, str] | None
) -> tuple[Contender, ...]:
    tb = _tb_filtered(make)
    out = [Contender("tracebus", tb, kind="tracebus")]
    if ref is not None:
        out.append(Contender(ref[1], _tb_first(ref[0], tb), kind="reference"))
    out.append(Contender("hand-written", _dict_sync))
    return tuple(out)


def _churn_contenders(inside: bool) -> tuple[Contender, ...]:
    return (
        Contender("tracebus", _churn(10_000, inside), kind="tracebus"),
        Contender(_CHURN_REF, _churn(1_000, inside), kind="reference"),
    )
