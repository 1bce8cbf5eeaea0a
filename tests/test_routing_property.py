"""Property: the bus's indexed dispatch delivers exactly the set, and in exactly the order,
that evaluating every subscription's filter on every event would; also under churn
(subscribe/unsubscribe between publishes and from inside a handler during a publish).
Plus `Filter.route`/`Filter.indexed`, which say how a filter is routed."""

from __future__ import annotations

from typing import Any

import pytest
from filter_strategies import (
    POOL_CORRS,
    POOL_SOURCES,
    POOL_TYPES,
    SEVERITIES,
    Ref,
    and_,
    by_corr,
    by_severity,
    by_sources,
    by_types,
    filters,
    or_,
    pool,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracebus import (
    Event,
    EventBus,
    EventType,
    Filter,
    Severity,
    Subscription,
    any_filter,
    combine_filters,
    filter_by,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
)

T = EventType
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# Random trees are mostly scanned (one `~x`, predicate or match-all under an OR is enough),
# so the index's keyed paths get trees of their own: indexable leaves under AND/OR, and
# conjunctions with any filter (a residual), which under an OR make it inexact.
indexable_leaves = st.one_of(
    st.lists(st.sampled_from(POOL_TYPES), min_size=1, max_size=3).map(by_types),
    st.lists(st.sampled_from(POOL_SOURCES), min_size=1, max_size=3).map(by_sources),
    st.sampled_from(SEVERITIES).map(by_severity),
    st.sampled_from(POOL_CORRS).map(by_corr),
)


def _indexable(children: st.SearchStrategy[Ref]) -> st.SearchStrategy[Ref]:
    pair = st.tuples(children, children)
    return st.one_of(pair.map(and_), pair.map(or_), st.tuples(children, filters).map(and_))


routed = st.one_of(filters, st.recursive(indexable_leaves, _indexable, max_leaves=6))


def expected_deliveries(flts: list[Filter], events: list[Event]) -> list[tuple[int, int]]:
    """(event index, subscription index) for every filter evaluated on every event."""
    return [(k, i) for k, e in enumerate(events) for i, f in enumerate(flts) if f.matches(e)]


@SETTINGS
@given(st.lists(routed, min_size=1, max_size=10), st.permutations(pool()))
def test_indexed_dispatch_is_every_filter_evaluated(fs: list[Ref], events: list[Event]) -> None:
    flts = [f for f, _ in fs]
    assert expected_deliveries(flts, events) == [
        (k, i) for k, e in enumerate(events) for i, (_, ref) in enumerate(fs) if ref(e)
    ]
    bus = EventBus(history_size=0)
    got: list[tuple[int, int]] = []
    current = [0]
    try:
        for i, f in enumerate(flts):
            bus.subscribe(f, lambda e, i=i: got.append((current[0], i)))
        for k, e in enumerate(events):
            current[0] = k
            bus.publish(e)
        assert got == expected_deliveries(flts, events)
    finally:
        bus.close()


# A churn step: ("sub", filter) | ("unsub", which) | ("pub", event, changes made from inside
# the first handler while the publish is in flight).
change = st.one_of(
    st.tuples(st.just("sub"), routed),
    st.tuples(st.just("unsub"), st.integers(0, 50)),
)
step = st.one_of(
    change,
    st.tuples(st.just("pub"), st.integers(0, len(pool()) - 1), st.lists(change, max_size=4)),
)


@SETTINGS
@given(st.lists(step, max_size=40))
def test_indexed_dispatch_under_churn(steps: list[Any]) -> None:
    events = pool()
    bus = EventBus(history_size=0)
    got: list[int] = []
    active: list[tuple[int, Filter, Subscription]] = []  # the model, in subscription order
    inner: list[Any] = []
    made = [0]

    def apply(c: Any) -> None:
        if c[0] == "sub":
            n = made[0]
            made[0] += 1
            s = bus.subscribe(c[1][0], lambda e, n=n: got.append(n))
            active.append((n, c[1][0], s))
        elif active:
            n, _, s = active.pop(c[1] % len(active))
            assert bus.unsubscribe(s)

    def hook(_e: Event) -> None:  # subscribed first (match-all): runs before every other
        for c in inner:
            apply(c)
        inner.clear()

    bus.subscribe(None, hook)
    try:
        for st_ in steps:
            if st_[0] != "pub":
                apply(st_)
                continue
            e = events[st_[1]]
            before = [(n, f) for n, f, _ in active]
            inner[:] = st_[2]
            got.clear()
            bus.publish(e)
            # Subscriptions made during the publish are not called for it; ones removed
            # before their turn are not called either.
            still = {n for n, _, _ in active}
            assert got == [n for n, f in before if n in still and f.matches(e)]
        assert bus.subscription_count == len(active) + 1
    finally:
        bus.close()


@pytest.mark.parametrize(
    ("flt", "route", "indexed"),
    [
        (filter_by_type(T.SERVICE_RUNNING), "key: type service.running; residual: none", True),
        (
            filter_by_source("pf-0") & filter_by_type(T.SERVICE_RUNNING),
            "key: (service.running, pf-0); residual: none",
            True,
        ),
        (
            filter_by_type(T.SERVICE_RUNNING) | filter_by_source("x"),
            "keys: source x, type service.running; residual: none",
            True,
        ),
        (
            ~filter_by_source("x") & filter_by_type(T.SERVICE_RUNNING),
            'key: type service.running; residual: ~source in ["x"]',
            True,
        ),
        (
            filter_by_correlation("c1") & filter_by_type(T.SERVICE_RUNNING),
            'key: correlation c1; residual: type in ["service.running"]',
            True,
        ),
        (filter_by_severity(Severity.ERROR), "key: severity >= error; residual: none", True),
        (any_filter(), "keys: none (matches nothing); residual: none", True),
        (~filter_by_source("x"), 'scan; residual: ~source in ["x"]', False),
        (filter_by(lambda e: True), "scan; residual: predicate", False),
        (combine_filters(), "scan; residual: none", False),
        (
            filter_by_type(T.SERVICE_RUNNING) | filter_by(lambda e: True),
            'scan; residual: (type in ["service.running"] | predicate)',
            False,
        ),
    ],
)
def test_route_says_how_a_filter_is_routed(flt: Filter, route: str, indexed: bool) -> None:
    assert flt.route == route
    assert flt.indexed is indexed


def test_pool_covers_every_key_kind() -> None:
    # The properties above only exercise pair keys and merges if the pool has every
    # (type, source) pair and both correlations.
    evs = pool()
    assert {(e.type, e.source) for e in evs} == {(t, s) for t in POOL_TYPES for s in POOL_SOURCES}
    assert {e.correlation_id for e in evs} == set(POOL_CORRS)
