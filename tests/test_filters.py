"""Filters: each leaf, AND/OR/NOT and the operators, predicates, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from filter_strategies import Ref, filters, pool
from hypothesis import HealthCheck, given, settings
from tb_support import state_event

from tracebus import (
    DependencyEvent,
    Event,
    EventBus,
    EventType,
    Filter,
    HealthEvent,
    ServiceState,
    Severity,
    SystemEvent,
    UserActionEvent,
    any_filter,
    combine_filters,
    filter_by,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    not_filter,
)

S = ServiceState
T = EventType


def sample() -> list[Event]:
    return [
        state_event("pf-a", S.STARTING, S.RUNNING),  # info
        state_event("pf-b", S.RUNNING, S.FAILED, error="x"),  # error
        state_event("pf-a", S.RUNNING, S.RETRYING),  # warn
        state_event("pf-c", S.UNKNOWN, S.STARTING),  # debug
        HealthEvent("ctx", "golem", True, False),  # error, health-monitor
        UserActionEvent("restart", "PortForward", "pf-a"),  # info, user
        SystemEvent("core", "shutdown"),  # warn
        DependencyEvent("k8s", "KubeOperation", ["pf-a"], "stop"),  # info
        Event(T.CONFIG_CHANGE, "cfg", severity=Severity.FATAL),
    ]


def passing(f: Filter, events: list[Event]) -> list[Event]:
    return [e for e in events if f.matches(e)]


def test_filter_by_type() -> None:
    evs = sample()
    f = filter_by_type(T.SERVICE_FAILED, T.HEALTH_FAILURE)
    assert [str(e.type) for e in passing(f, evs)] == ["service.failed", "health.failure"]
    assert passing(filter_by_type("user.action"), evs) == [evs[5]]
    with pytest.raises(ValueError, match="types needs at least one event type"):
        filter_by_type()  # no types: an error, not a filter that silently matches nothing
    assert f.indexed


def test_filter_by_source() -> None:
    evs = sample()
    assert passing(filter_by_source("pf-a"), evs) == [evs[0], evs[2]]
    assert passing(filter_by_source("pf-a", "user"), evs) == [evs[0], evs[2], evs[5]]
    assert passing(filter_by_source("health-monitor"), evs) == [evs[4]]
    with pytest.raises(ValueError, match="sources needs at least one source"):
        filter_by_source()
    assert filter_by_source("x").indexed


@pytest.mark.parametrize(
    ("minimum", "expected"),
    [
        (Severity.TRACE, 9),
        (Severity.DEBUG, 9),
        (Severity.INFO, 8),
        (Severity.WARN, 5),
        (Severity.ERROR, 3),
        (Severity.FATAL, 1),
        ("warn", 5),
    ],
)
def test_filter_by_severity_means_at_least(minimum: str, expected: int) -> None:
    evs = sample()
    got = passing(filter_by_severity(minimum), evs)
    assert len(got) == expected
    assert all(e.severity >= minimum for e in got)


def test_filter_by_correlation() -> None:
    a = state_event(correlation_id="corr_00000000000000a1", caused_by="x")
    b = state_event(correlation_id="corr_00000000000000b2", caused_by="x")
    f = filter_by_correlation("corr_00000000000000a1")
    assert f.matches(a) and not f.matches(b)


def test_combine_filters_is_and_and_none_means_all() -> None:
    evs = sample()
    assert passing(combine_filters(), evs) == evs
    f = combine_filters(filter_by_source("pf-a"), filter_by_severity(Severity.WARN))
    assert passing(f, evs) == [evs[2]]
    assert passing(combine_filters(filter_by_source("pf-a"), any_filter()), evs) == []


def test_any_filter_is_or_and_none_means_nothing() -> None:
    evs = sample()
    assert passing(any_filter(), evs) == []
    f = any_filter(filter_by_source("core"), filter_by_type(T.USER_ACTION))
    assert passing(f, evs) == [evs[5], evs[6]]


def test_not_filter() -> None:
    evs = sample()
    f = not_filter(filter_by_severity(Severity.INFO))
    assert passing(f, evs) == [evs[3]]
    assert passing(not_filter(combine_filters()), evs) == []
    assert passing(not_filter(any_filter()), evs) == evs


def test_operators_match_the_functions() -> None:
    evs = sample()
    a, b = filter_by_source("pf-a"), filter_by_severity(Severity.WARN)
    assert passing(a & b, evs) == passing(combine_filters(a, b), evs)
    assert passing(a | b, evs) == passing(any_filter(a, b), evs)
    assert passing(~a, evs) == passing(not_filter(a), evs)
    assert passing(~~a, evs) == passing(a, evs)
    nested = (
        filter_by_type(T.SERVICE_RUNNING, T.SERVICE_RETRYING) & ~filter_by_source("pf-b")
    ) | filter_by_severity(Severity.FATAL)
    assert passing(nested, evs) == [evs[0], evs[2], evs[8]]
    assert "&" in repr(a & b) and "|" in repr(a | b) and "~" in repr(~a)


def test_filter_by_predicate() -> None:
    evs = sample()
    f = filter_by(lambda e: str(e).startswith("pf-a"))
    assert passing(f, evs) == [evs[0], evs[2]]
    assert not f.indexed
    both = filter_by_type(T.SERVICE_RETRYING) & f
    assert passing(both, evs) == [evs[2]]
    assert both.indexed  # the type leaf lets the index narrow candidates first


def test_predicate_sees_only_indexed_candidates_on_the_bus() -> None:
    bus = EventBus()
    seen: list[Event] = []
    got: list[Event] = []

    def pred(e: Event) -> bool:
        seen.append(e)
        return True

    try:
        bus.subscribe(filter_by_type(T.SERVICE_FAILED) & filter_by(pred), got.append)
        for e in sample():
            bus.publish(e)
        assert [str(e.type) for e in seen] == ["service.failed"]
        assert got == seen
    finally:
        bus.close()


def test_predicate_that_raises() -> None:
    def boom(e: Event) -> bool:
        raise RuntimeError("predicate failed")

    f = filter_by(boom)
    with pytest.raises(RuntimeError, match="predicate failed"):
        f.matches(state_event())

    errors: list[tuple[BaseException, Any, Any]] = []
    bus = EventBus(on_error=lambda exc, ev, sub: errors.append((exc, ev, sub)))
    try:
        got: list[Event] = []
        ok: list[Event] = []
        sub = bus.subscribe(f, got.append)
        bus.subscribe(None, ok.append)
        ev = state_event()
        bus.publish(ev)  # does not raise
        assert got == []  # not delivered to the predicate's subscription
        assert ok == [ev]  # other subscriptions unaffected
        assert sub.errors == 1
        assert bus.get_metrics()["handler_errors"] == 1
        assert len(errors) == 1
        exc, event, s = errors[0]
        assert isinstance(exc, RuntimeError) and event is ev and s.id == sub.id
    finally:
        bus.close()


def test_predicate_truthiness() -> None:
    ev = state_event()
    assert filter_by(lambda e: 1).matches(ev)
    assert not filter_by(lambda e: []).matches(ev)


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "param"),
    [
        (lambda: filter_by_type("no.such.type"), ValueError, "types"),
        (lambda: filter_by_type(5), TypeError, "types"),
        (lambda: filter_by_source(""), ValueError, "sources"),
        (lambda: filter_by_source(None), TypeError, "sources"),
        (lambda: filter_by_severity("loud"), ValueError, "minimum"),
        (lambda: filter_by_severity(3), TypeError, "minimum"),
        (lambda: filter_by_correlation(""), ValueError, "correlation_id"),
        (lambda: filter_by_correlation(1), TypeError, "correlation_id"),
        (lambda: filter_by(5), TypeError, "predicate"),
        (lambda: filter_by(None), TypeError, "predicate"),
        (lambda: combine_filters(filter_by_source("a"), "b"), TypeError, "filters"),
        (lambda: any_filter(lambda e: True), TypeError, "filters"),
        (lambda: not_filter("x"), TypeError, "filter"),
        (lambda: not_filter(None), ValueError, "filter"),
        (lambda: filter_by_source("a") & 5, TypeError, "other"),
        (lambda: filter_by_source("a") | "x", TypeError, "other"),
        (lambda: filter_by_source("a").matches("not an event"), TypeError, "event"),
    ],
)
def test_bad_input(call: Any, exc: type, param: str) -> None:
    with pytest.raises(exc, match=param):
        call()


def test_filters_are_immutable_values() -> None:
    a = filter_by_source("pf-a")
    b = filter_by_severity(Severity.ERROR)
    combined = a & b
    _ = combined | filter_by_type(T.USER_ACTION)
    ev = state_event("pf-a")
    assert a.matches(ev)  # a was not changed by combining
    assert not combined.matches(ev)
    with pytest.raises(AttributeError):
        a.tree = None  # type: ignore[attr-defined]


# --- property: Rust filter trees and bus routing agree with a Python reference ------------


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(filters)
def test_filter_trees_and_routing_match_reference(f: Ref) -> None:
    flt, ref = f
    events = pool()
    expected = [e for e in events if ref(e)]
    assert [e for e in events if flt.matches(e)] == expected
    bus = EventBus(history_size=0)
    try:
        got: list[Event] = []
        bus.subscribe(filter_by_type(T.CONFIG_CHANGE), lambda e: None)  # unrelated, indexed
        bus.subscribe(flt, got.append)
        bus.subscribe(filter_by_source("pf-a"), lambda e: None)
        for e in events:
            bus.publish(e)
        assert got == expected
    finally:
        bus.close()
