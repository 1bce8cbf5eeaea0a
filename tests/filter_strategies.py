"""Hypothesis strategies of random filters (every leaf kind, AND/OR/NOT, the operators and
the functions), each paired with a Python reference predicate, and a pool of events that
covers every (type, source) pair, every severity and two correlations. Shared by
``test_filters`` and ``test_routing_property``."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from tracebus import (
    Event,
    EventType,
    Filter,
    Severity,
    any_filter,
    combine_filters,
    filter_by,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    not_filter,
)

T = EventType


POOL_TYPES = [T.SERVICE_RUNNING, T.SERVICE_FAILED, T.HEALTH_CHECK, T.USER_ACTION]
POOL_SOURCES = ["pf-a", "pf-b", "user", "core"]
POOL_CORRS = ["corr_00000000000000c1", "corr_00000000000000c2"]
SEVERITIES = list(Severity)

# A generated filter is a pair: the tracebus Filter and a Python reference predicate.
Ref = tuple[Filter, Callable[[Event], bool]]


def pool() -> list[Event]:
    out = []
    for i, t in enumerate(POOL_TYPES):
        for j, src in enumerate(POOL_SOURCES):
            sev = SEVERITIES[(i + j) % len(SEVERITIES)]
            corr = POOL_CORRS[(i * 3 + j) % 2]
            out.append(Event(t, src, severity=sev, correlation_id=corr, caused_by="prop"))
    return out


def by_types(ts: list[str]) -> Ref:
    return (filter_by_type(*ts) if ts else any_filter()), lambda e: e.type in ts


def by_sources(ss: list[str]) -> Ref:
    return (filter_by_source(*ss) if ss else any_filter()), lambda e: e.source in ss


def by_severity(s: Severity) -> Ref:
    return filter_by_severity(s), lambda e: e.severity >= s


def by_corr(c: str) -> Ref:
    return filter_by_correlation(c), lambda e: e.correlation_id == c


def by_predicate(src: str) -> Ref:
    return filter_by(lambda e: e.source == src), lambda e: e.source == src


def and_(p: tuple[Ref, Ref]) -> Ref:
    return p[0][0] & p[1][0], lambda e: p[0][1](e) and p[1][1](e)


def or_(p: tuple[Ref, Ref]) -> Ref:
    return p[0][0] | p[1][0], lambda e: p[0][1](e) or p[1][1](e)


def invert(c: Ref) -> Ref:
    return ~c[0], lambda e: not c[1](e)


def not_(c: Ref) -> Ref:
    return not_filter(c[0]), lambda e: not c[1](e)


def all_of(cs: list[Ref]) -> Ref:
    return combine_filters(*(c[0] for c in cs)), lambda e: all(c[1](e) for c in cs)


def any_of(cs: list[Ref]) -> Ref:
    return any_filter(*(c[0] for c in cs)), lambda e: any(c[1](e) for c in cs)


leaves = st.one_of(
    st.lists(st.sampled_from(POOL_TYPES), max_size=3).map(by_types),
    st.lists(st.sampled_from(POOL_SOURCES), max_size=3).map(by_sources),
    st.sampled_from(SEVERITIES).map(by_severity),
    st.sampled_from(POOL_CORRS).map(by_corr),
    st.sampled_from(POOL_SOURCES).map(by_predicate),
    st.just(all_of([])),
    st.just(any_of([])),
)


def extend(children: st.SearchStrategy[Ref]) -> st.SearchStrategy[Ref]:
    pair = st.tuples(children, children)
    many = st.lists(children, max_size=3)
    return st.one_of(
        pair.map(and_),
        pair.map(or_),
        children.map(invert),
        children.map(not_),
        many.map(all_of),
        many.map(any_of),
    )


filters = st.recursive(leaves, extend, max_leaves=8)
