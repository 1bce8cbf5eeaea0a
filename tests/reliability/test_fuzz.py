"""Plan test 15: property tests with random inputs over the public API.

- Every constructor and argument-taking method, given arbitrary values, either works or
  raises TypeError / ValueError / a tracebus error: never another exception, a panic or a
  crash, and what it builds is usable (repr, getters, JSON round trip).
- Random filter trees: ``Filter.matches`` equals a plain-Python evaluation, and the bus
  (index routing included) delivers exactly the events its filter matches.
- Decoding random bytes, random JSON and mutated encodings of real events never crashes.
- Store labels: any valid text round-trips; invalid text is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_util import STRESS, Figures

import tracebus as tb
from tracebus import (
    Event,
    EventBus,
    EventType,
    ServiceState,
    ServiceType,
    Severity,
    StateStore,
    TracebusError,
)

ALLOWED = (TypeError, ValueError, TracebusError)
FUZZ = settings(
    max_examples=150 * STRESS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
COUNTS: dict[str, int] = {"calls": 0, "accepted": 0, "refused": 0}

# Values that are sometimes right and mostly wrong.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=5),
    st.binary(max_size=10),
    st.sampled_from(
        [e.value for e in EventType]
        + [s.value for s in ServiceState]
        + [s.value for s in Severity]
        + [t.value for t in ServiceType]
        + [
            "drop",
            "block",
            "evict_oldest",
            "start",
            "stop",
            "startup",
            "a\0b",
            "",
            " ",
            "x" * 1001,
            "evt_0123456789abcdef",
            "\ud800",
        ]
    ),
)
anything = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), scalars, max_size=3),
    st.just(object()),
    st.just(print),
)


def attempt(fn: Callable[[], Any]) -> Any:
    COUNTS["calls"] += 1
    try:
        out = fn()
    except ALLOWED:
        COUNTS["refused"] += 1
        return None
    COUNTS["accepted"] += 1
    return out


def exercise_event(e: Event) -> None:
    repr(e)
    str(e)
    for name in (
        "type",
        "source",
        "severity",
        "event_id",
        "correlation_id",
        "caused_by",
        "parent_id",
        "timestamp",
        "metadata",
    ):
        getattr(e, name)
    try:
        text = tb.encode_event(e)
    except TypeError:
        return  # metadata that is not JSON: refused with a TypeError naming the field
    back = tb.decode_event(text)
    assert type(back) is type(e)
    assert back.event_id == e.event_id and back.source == e.source
    assert back.correlation_id == e.correlation_id


@FUZZ
@given(
    args=st.lists(anything, min_size=0, max_size=4),
    kw=st.dictionaries(
        st.sampled_from(
            [
                "severity",
                "metadata",
                "correlation_id",
                "caused_by",
                "parent_id",
                "timestamp",
                "event_id",
                "is_ready",
                "error",
                "proxy_port",
                "pid",
                "ready_nodes",
                "total_nodes",
                "recovered",
                "source",
                "cascade",
                "details",
                "error_detail",
            ]
        ),
        anything,
        max_size=3,
    ),
    cls=st.sampled_from(
        [
            Event,
            tb.ServiceStateEvent,
            tb.HealthEvent,
            tb.DependencyEvent,
            tb.UserActionEvent,
            tb.SystemEvent,
            tb.ManagedServiceUpdate,
            tb.HealthStatusUpdate,
        ]
    ),
)
def test_constructors_never_crash(args: list[Any], kw: dict[str, Any], cls: type) -> None:
    obj = attempt(lambda: cls(*args, **kw))
    if obj is None:
        return
    repr(obj)
    if isinstance(obj, Event):
        exercise_event(obj)
    elif isinstance(obj, tb.ManagedServiceUpdate):
        store = StateStore()
        assert store.set_service_state(obj) is True
        snap = store.get_service_state(obj.source_label)
        assert snap is not None and snap.state == obj.state
        obj.to_dict()


@FUZZ
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "publish",
                    "publish_many",
                    "subscribe",
                    "subscribe_channel",
                    "history",
                    "unsubscribe",
                    "set_error_handler",
                    "store_get",
                    "store_clear",
                    "store_by_type",
                    "store_by_state",
                    "store_subscribe",
                    "channel",
                    "strategy",
                    "priority",
                    "filter_type",
                    "filter_source",
                    "filter_severity",
                    "filter_corr",
                    "register",
                    "traceparent",
                ]
            ),
            st.lists(anything, max_size=3),
        ),
        max_size=6,
    )
)
def test_methods_never_crash_and_leave_objects_consistent(
    calls: list[tuple[str, list[Any]]],
) -> None:
    bus = EventBus(history_size=10)
    store = StateStore()
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    table: dict[str, Callable[..., Any]] = {
        "publish": bus.publish,
        "publish_many": bus.publish_many,
        "subscribe": lambda *a: bus.subscribe(*a[:2]),
        "subscribe_channel": bus.subscribe_channel,
        "history": bus.history,
        "unsubscribe": bus.unsubscribe,
        "set_error_handler": bus.set_error_handler,
        "store_get": store.get_service_state,
        "store_clear": store.clear,
        "store_by_type": store.get_services_by_type,
        "store_by_state": store.get_services_by_state,
        "store_subscribe": store.subscribe,
        "channel": tb.Channel,
        "strategy": tb.SimpleBufferStrategy,
        "priority": tb.PriorityBufferStrategy,
        "filter_type": tb.filter_by_type,
        "filter_source": tb.filter_by_source,
        "filter_severity": tb.filter_by_severity,
        "filter_corr": tb.filter_by_correlation,
        "register": lambda *a: None,  # the registry is global: exercised in the sweep
        "traceparent": tb.from_traceparent,
    }
    for name, args in calls:
        attempt(lambda name=name, args=args: table[name](*args))
    # Whatever happened, the bus and the store still work and account exactly.
    bus.set_error_handler(None)
    n = len(seen)
    e = Event(EventType.SYSTEM_STARTUP, "after")
    bus.publish(e)
    assert seen[n:] == [e] or seen[-1] is e
    m = bus.get_metrics()
    assert m["events_published"] >= 1
    assert store.set_service_state(tb.ManagedServiceUpdate(ServiceType.SYSTEM, "ok", "Running"))
    bus.close()


# --- filters: Rust evaluation and routing vs a Python model ------------------------------
TYPES = [
    EventType.SYSTEM_STARTUP,
    EventType.USER_ACTION,
    EventType.SERVICE_FAILED,
    EventType.HEALTH_CHECK,
]
SOURCES = ["a", "b", "c"]
SEVS = [Severity.DEBUG, Severity.INFO, Severity.WARN, Severity.ERROR]
CORRS = ["corr_1", "corr_2"]
RANK = {s: i for i, s in enumerate(Severity)}

Tree = tuple[Any, ...]

leaves = st.one_of(
    st.sets(st.sampled_from(TYPES), max_size=2).map(lambda s: ("type", frozenset(s))),
    st.sets(st.sampled_from(SOURCES), max_size=2).map(lambda s: ("source", frozenset(s))),
    st.sampled_from(SEVS).map(lambda s: ("sev", s)),
    st.sampled_from(CORRS).map(lambda c: ("corr", c)),
    st.sampled_from(SOURCES).map(lambda s: ("pred", s)),
    st.just(("all",)),
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.tuples(st.just("and"), st.lists(kids, max_size=3)),
        st.tuples(st.just("or"), st.lists(kids, max_size=3)),
        st.tuples(st.just("not"), kids),
        st.tuples(st.just("&"), kids, kids),
        st.tuples(st.just("|"), kids, kids),
        st.tuples(st.just("~"), kids),
    ),
    max_leaves=8,
)


def build(t: Tree) -> tb.Filter:
    k = t[0]
    if k == "type":  # no types / sources: the filter that matches nothing
        return tb.filter_by_type(*sorted(t[1])) if t[1] else tb.any_filter()
    if k == "source":
        return tb.filter_by_source(*sorted(t[1])) if t[1] else tb.any_filter()
    if k == "sev":
        return tb.filter_by_severity(t[1])
    if k == "corr":
        return tb.filter_by_correlation(t[1])
    if k == "pred":
        src = t[1]
        return tb.filter_by(lambda e: e.source == src)
    if k == "all":
        return tb.combine_filters()
    if k == "and":
        return tb.combine_filters(*map(build, t[1]))
    if k == "or":
        return tb.any_filter(*map(build, t[1]))
    if k == "not":
        return tb.not_filter(build(t[1]))
    if k == "&":
        return build(t[1]) & build(t[2])
    if k == "|":
        return build(t[1]) | build(t[2])
    return ~build(t[1])


def model(t: Tree, e: Event) -> bool:
    k = t[0]
    if k == "type":
        return e.type in t[1]
    if k in ("source", "pred"):
        return e.source in t[1] if k == "source" else e.source == t[1]
    if k == "sev":
        return RANK[e.severity] >= RANK[t[1]]
    if k == "corr":
        return e.correlation_id == t[1]
    if k == "all":
        return True
    if k == "and":
        return all(model(x, e) for x in t[1])
    if k == "or":
        return any(model(x, e) for x in t[1])
    if k in ("not", "~"):
        return not model(t[1], e)
    if k == "&":
        return model(t[1], e) and model(t[2], e)
    return model(t[1], e) or model(t[2], e)


events = st.builds(
    lambda ty, src, sev, corr: Event(ty, src, severity=sev, correlation_id=corr),
    st.sampled_from(TYPES),
    st.sampled_from(SOURCES),
    st.sampled_from(SEVS),
    st.sampled_from(CORRS),
)


@FUZZ
@given(ts=st.lists(trees, min_size=1, max_size=4), evs=st.lists(events, min_size=1, max_size=12))
def test_filters_match_a_python_model_and_route_exactly(ts: list[Tree], evs: list[Event]) -> None:
    bus = EventBus(history_size=0)
    filters = [build(t) for t in ts]
    got: list[list[Event]] = [[] for _ in ts]
    for f, sink in zip(filters, got, strict=True):
        bus.subscribe(f, sink.append)
    for e in evs:
        for t, f in zip(ts, filters, strict=True):
            assert f.matches(e) is model(t, e), (t, e)
        bus.publish(e)
    for t, sink in zip(ts, got, strict=True):
        assert sink == [e for e in evs if model(t, e)]
    bus.close()


# --- decoding of stored / transported events ---------------------------------------------
def _sample_encodings() -> list[str]:
    evs: list[Event] = [
        Event(EventType.USER_ACTION, "s", metadata={"k": [1, "x", None]}),
        tb.ServiceStateEvent(ServiceType.PORT_FORWARD, "pf", "Starting", "Failed", error="boom"),
        tb.HealthEvent("ctx", "c", False, True, ready_nodes=2, total_nodes=3),
        tb.DependencyEvent("s", ServiceType.MCP_SERVER, ["a", "b"], "stop"),
        tb.SystemEvent("core", "startup", "details"),
    ]
    return [tb.encode_event(e) for e in evs]


ENCODED = _sample_encodings()


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decoding_random_bytes_never_crashes(data: bytes | str) -> None:
    out = attempt(lambda: tb.decode_event(data))
    assert out is None or isinstance(out, Event)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**65), 2**65),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(
    which=st.integers(0, len(ENCODED) - 1),
    path=st.lists(st.integers(0, 20), max_size=3),
    value=json_values,
    drop=st.booleans(),
)
def test_decoding_mutated_encodings_never_crashes(
    which: int, path: list[int], value: Any, drop: bool
) -> None:
    doc = json.loads(ENCODED[which])
    # Walk into the document along ``path`` and replace (or delete) what is there.
    node: Any = doc
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if path and isinstance(node, dict) and node:
        key = sorted(node)[path[-1] % len(node)]
        if drop:
            del node[key]
        else:
            node[key] = value
    elif path and isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    else:
        doc = value if drop else doc
    for form in (json.dumps(doc), doc):
        out = attempt(lambda form=form: tb.decode_event(form))
        if out is not None:
            exercise_event(out)


# --- store labels ------------------------------------------------------------------------
@FUZZ
@given(label=st.text(max_size=40), state=st.sampled_from(list(ServiceState)))
def test_store_labels_round_trip_or_are_refused(label: str, state: str) -> None:
    store = StateStore()
    watch = store.subscribe(None, buffer_size=4)
    # Blank means Unicode White_Space only (Rust's trim); Python's isspace also counts the
    # separators U+001C..U+001F.
    blank = all(c.isspace() and c not in "\x1c\x1d\x1e\x1f" for c in label)
    valid = not blank and "\0" not in label and len(label) <= 1000
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        valid = False
    u = attempt(lambda: tb.ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, state))
    assert (u is not None) is valid
    if u is None:
        assert len(store) == 0
        return
    assert store.set_service_state(u) is True
    snap = store.get_service_state(label)
    assert snap is not None and snap.state == state and snap.label == label
    [change] = watch.drain()
    assert change.label == label and change.new_state == state
    assert store.clear(label) is True and len(store) == 0


def test_fuzz_figures(figures: Figures) -> None:
    """Reports how many random calls the properties above made."""
    figures.events = COUNTS["calls"]
    figures.faults = COUNTS["refused"]
    figures.errors = COUNTS["refused"]
    figures.delivered = COUNTS["accepted"]
    figures.extra["accepted"] = COUNTS["accepted"]
    figures.extra["refused_cleanly"] = COUNTS["refused"]
    assert not math.isnan(float(COUNTS["calls"]))
