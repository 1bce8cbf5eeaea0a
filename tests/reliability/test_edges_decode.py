"""Hostile input at the edges (issue 14): data never chooses code, one bad entry or row
never stops a reader, ``decode_event`` raises only ``EventDecodeError`` for bad input.

The codec and the event store here; the Redis bridge's side is in
``tests/redis/test_redis_edges.py``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracebus as tb
from tracebus import codec
from tracebus.codec import EventDecodeError, UnknownEvent, decode_event, encode_event
from tracebus.eventstore import SqliteEventStore, UndecodedRow, rebuild_state


class EdgeEvent(tb.Event):
    """A module-level subclass: known without registration."""


def _entry(cls: str, args: list[Any] | None = None, **extra: Any) -> str:
    parts: dict[str, Any] = {
        "class": cls,
        "args": ["config.change", "src"] if args is None else args,
        "kwargs": {"event_id": "evt_00000000000000aa", "severity": "warn"},
    }
    parts.update(extra)
    return json.dumps(parts)


HOSTILE_CLASSES = [
    "unittest.__main__:X",  # importing it runs unittest (and exits)
    "tracebus.__main__:X",  # importing it runs the CLI
    "this:X",  # prints the Zen of Python on import
    "os:system",
    "builtins:eval",
    "builtins:object",
    "tracebus:Event.__base__",  # a dotted attribute path out of a real class
    "tracebus:Event.__subclasses__",
    "tracebus.codec:json.decoder",
    "json:JSONDecoder",
    "x" * 100_000 + ":Y",
    ":",
    "a:b:c",
    "no-colon",
]


@pytest.mark.parametrize("name", HOSTILE_CLASSES, ids=lambda n: n[:40])
def test_a_class_named_by_data_is_never_imported(name: str) -> None:
    before = set(sys.modules)
    e = decode_event(_entry(name))
    assert set(sys.modules) == before, set(sys.modules) - before
    assert type(e) is UnknownEvent
    assert e.class_name == name and e.type_name == "config.change"
    assert e.source == "src" and e.event_id == "evt_00000000000000aa"
    assert str(e.severity) == "warn"
    with pytest.raises(EventDecodeError, match="event class"):
        decode_event(_entry(name), unknown="raise")


def test_defined_and_registered_classes_decode_as_themselves() -> None:
    e = EdgeEvent("config.change", "s")
    e.__dict__["n"] = 3
    back = decode_event(encode_event(e))
    assert type(back) is EdgeEvent and back.__dict__ == {"n": 3}
    # A class defined after the first look-up is found too.
    ns: dict[str, Any] = {"__name__": __name__}
    exec("import tracebus\nclass LateEvent(tracebus.Event):\n    pass\n", ns)
    late = decode_event(_entry(f"{__name__}:LateEvent"))
    assert type(late) is ns["LateEvent"]
    # Registered under an old name.
    codec.register_event_class(EdgeEvent, "old.module:Deploy")
    assert type(decode_event(_entry("old.module:Deploy"))) is EdgeEvent
    with pytest.raises(TypeError, match="Event subclass"):
        codec.register_event_class(dict)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="module:qualname"):
        codec.register_event_class(EdgeEvent, "nocolon")


def test_unknown_class_and_type_keep_every_field_and_encode_back_unchanged() -> None:
    text = _entry(
        "elsewhere.module:DeployEvent",
        ["edges-test.type-never-registered", "ci"],
        state={"version": "1.2", "hosts": ["a", "b"]},
    )
    e = decode_event(text)
    assert isinstance(e, UnknownEvent) and isinstance(e, tb.Event)
    assert e.type_name == "edges-test.type-never-registered" and str(e.type) == codec.UNKNOWN_TYPE
    assert e.payload == {"version": "1.2", "hosts": ["a", "b"]}
    assert "elsewhere.module:DeployEvent" in str(e) and "edges-test.type-never-registered" in str(e)
    assert json.loads(encode_event(e)) == json.loads(text)
    # A known class with a type this process never registered.
    e2 = decode_event(_entry("tracebus:Event", ["never.registered", "svc"]))
    assert type(e2) is UnknownEvent and e2.type_name == "never.registered"
    with pytest.raises(EventDecodeError):
        decode_event(_entry("tracebus:Event", ["never.registered", "svc"]), unknown="raise")
    # Published and filtered like any event.
    bus = tb.EventBus()
    got: list[tb.Event] = []
    bus.subscribe(None, got.append)
    bus.publish(e)
    bus.close()
    assert got == [e]


BAD_INPUTS = [
    b"\xff\xfe not utf-8",
    "[" * 1000 + "]" * 1000,
    '{"class": "tracebus:Event", "args": ["config.change", "s"], "kwargs": {"metadata": '
    + '{"k": ' * 1000
    + "1"
    + "}" * 1000
    + "}}",
    _entry("tracebus:SystemEvent", ["c", "config_change", "d"], state={"x": 1}),
    _entry("tracebus:Event", state=[1, 2]),
    '{"class": "tracebus:Event", "args": ["config.change", "s"], "kwargs": {"1": 2}}',
    '{"class": 5, "args": [], "kwargs": {}}',
    '{"class": ["tracebus:Event"], "args": [], "kwargs": {}}',
    _entry("tracebus:Event", ["config.change", "s", "extra"]),
    _entry("elsewhere:X", [1, 2]),
    _entry("elsewhere:X", []),
    '"just a string"',
    "",
    "\ud800",
]


@pytest.mark.parametrize("data", BAD_INPUTS, ids=lambda d: repr(d)[:40])
def test_bad_input_raises_only_event_decode_error(data: str | bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(data)


def test_event_decode_error_is_exported_and_a_value_error() -> None:
    assert tb.EventDecodeError is EventDecodeError and issubclass(EventDecodeError, ValueError)
    assert tb.UnknownEvent is UnknownEvent


_valid = [
    encode_event(tb.SystemEvent("c", "config_change", "d")),
    encode_event(tb.Event("config.change", "s", metadata={"a": [1, {"b": None}]})),
    _entry(f"{__name__}:EdgeEvent", state={"n": 1}),
]


def _mutate(text: str, data: st.DataObject) -> str:
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 8)))
    return text[:i] + data.draw(st.text(max_size=8)) + text[j:]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_decode_raises_only_the_documented_error(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["bytes", "json", "parts", "mutated"]))
    value: Any
    if kind == "bytes":
        value = data.draw(st.binary(max_size=300))
    elif kind == "json":
        value = json.dumps(data.draw(_json))
    elif kind == "parts":
        value = json.dumps(
            {
                "class": data.draw(
                    st.sampled_from(["tracebus:Event", "x:Y", "tracebus:HealthEvent"])
                ),
                "args": data.draw(st.lists(_json, max_size=4)),
                "kwargs": data.draw(st.dictionaries(st.text(max_size=12), _json, max_size=4)),
            }
        )
    else:
        value = _mutate(data.draw(st.sampled_from(_valid)), data)
    try:
        e = decode_event(value)
    except EventDecodeError:
        return
    assert isinstance(e, tb.Event)


# -- the event store ---------------------------------------------------------------------


def _store_with_bad_rows(path: Path, bad: list[Any]) -> list[tb.Event]:
    """A store of service states and other events, with rows 3, 6, ... overwritten by the
    texts of ``bad``; returns the events that remain good."""
    events: list[tb.Event] = []
    for i in range(3 * len(bad) + 3):
        u = tb.ManagedServiceUpdate("PortForward", f"pf-{i % 3}", "Running", pid=i + 1)
        events.append(tb.ServiceStateEvent.from_update(u, "Starting"))
    with SqliteEventStore(path) as s:
        s.append_many(events)
    c = sqlite3.connect(path)
    for n, data in enumerate(bad):
        c.execute("UPDATE events SET data = ? WHERE seq = ?", (data, 3 * n + 3))
    c.commit()
    c.close()
    return [e for i, e in enumerate(events) if (i + 1) % 3 or (i + 1) // 3 > len(bad)]


STORE_BAD = [
    "{broken",
    "[" * 5000 + "]" * 5000,  # RecursionError before
    _entry("unittest.__main__:X", ["service.running", "pf"]),  # imported (ran unittest) before
    _entry("tracebus:ServiceStateEvent", [1], state={"x": 1}),
    b"\xff\xfe",
    12345,
]


def test_one_bad_row_never_aborts_replay_trace_or_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    good = _store_with_bad_rows(path, STORE_BAD)
    before = set(sys.modules)
    with SqliteEventStore(path, chunk_size=4) as s:
        ids = [e.event_id for e in s.replay() if not isinstance(e, UnknownEvent)]
        assert ids == [e.event_id for e in good]
        skipped = s.stats()["skipped_rows"]
        assert skipped == len(STORE_BAD) - 1  # the unknown class decodes generically
        recs = list(s.records(on_error="raw"))
        raw = [r.event for r in recs if isinstance(r.event, UndecodedRow)]
        assert [r.seq for r in raw] == [3, 6, 12, 15, 18]  # 9: the unknown class
        assert len(raw) == skipped and all(r.error for r in raw)
        with pytest.raises(tb.EventStoreError, match="cannot decode event seq 3"):
            list(s.replay(on_error="raise"))
        rebuilt = rebuild_state(s)
        assert rebuilt.get_service_state("pf-1") is not None
        tr = s.trace(good[0].correlation_id)
        assert tr is not None
        with pytest.raises(ValueError, match="on_error must be"):
            s.replay(on_error="ignore")  # type: ignore[arg-type]
    assert set(sys.modules) == before


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(st.binary(max_size=80), st.text(max_size=80), _json.map(json.dumps)),
        min_size=1,
        max_size=5,
    )
)
def test_fuzz_store_reader_delivers_every_good_row(tmp_path: Path, bad: list[Any]) -> None:
    path = tmp_path / f"fuzz{abs(hash(tuple(map(repr, bad))))}.db"
    good = _store_with_bad_rows(path, bad)
    with SqliteEventStore(path, chunk_size=3) as s:
        got = {e.event_id for e in s.replay()}
    assert {e.event_id for e in good} <= got
    path.unlink()


# -- metadata is checked when the event is made --------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"when": object()}, "metadata['when']: object is not a JSON value"),
        ({"deep": {"list": [1, {1, 2}]}}, "metadata['deep']['list'][1]: set"),
        ({"nan": float("nan")}, "metadata['nan']: NaN is not a finite number"),
        ({"d": {3: "x"}}, "metadata['d']: key 3 is a int"),
    ],
)
def test_metadata_that_cannot_be_encoded_is_refused_when_made(
    metadata: dict[str, Any], where: str
) -> None:
    for make in (
        lambda: tb.Event("config.change", "s", metadata=metadata),
        lambda: tb.SystemEvent("c", "startup", "d", metadata=metadata),
        lambda: tb.Event("config.change", "s").with_metadata("k", metadata),
    ):
        with pytest.raises(TypeError) as info:
            make()
        assert where.split(":")[1].strip() in str(info.value)
    with pytest.raises(TypeError, match=r"metadata\['when'\]"):
        tb.Event("config.change", "s", metadata={"when": object()})


def test_self_referencing_or_too_deep_metadata_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["me"] = loop
    with pytest.raises(TypeError, match="refers to itself"):
        tb.Event("config.change", "s", metadata={"loop": loop})
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(TypeError, match="nested deeper"):
        tb.Event("config.change", "s", metadata={"deep": deep})
    ok = tb.Event("config.change", "s", metadata={"fine": [1, 2.5, "x", None, True, {"a": ()}]})
    assert decode_event(encode_event(ok)).metadata == {"fine": [1, 2.5, "x", None, True, {"a": []}]}


# -- the Redis stream decoder (the reader's batch delivery, no server needed) --------------

_stream_value = st.one_of(
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.text(max_size=60),
    _json.map(json.dumps),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_stream_batches_deliver_every_good_entry(data: st.DataObject) -> None:
    bus = tb.EventBus()
    got: list[tb.Event] = []
    bus.subscribe(None, got.append)
    bridge = tb.RedisStreamBridge(bus, outbound=False)  # never started: no connection
    good = [tb.SystemEvent("peer", "startup", str(i)) for i in range(data.draw(st.integers(0, 6)))]
    entries: list[list[Any]] = [
        [f"1-{i}", ["e", encode_event(e), "o", "peer"]] for i, e in enumerate(good)
    ]
    bad = data.draw(
        st.lists(
            st.one_of(
                _stream_value.map(lambda v: ["e", v, "o", "peer"]),
                st.builds(lambda t: ["e", _mutate_text(t), "o", "peer"], st.sampled_from(_valid)),
                st.sampled_from(BAD_INPUTS).map(lambda v: ["e", _as_text(v), "o", "peer"]),
                st.lists(_stream_value, max_size=5),  # any fields at all
            ),
            max_size=6,
        )
    )
    for j, fields in enumerate(bad):
        at = data.draw(st.integers(0, len(entries)))
        entries.insert(at, [f"2-{j}", fields])
    bridge._deliver(entries)  # never raises, whatever the entries
    ids = {e.event_id for e in got}
    assert {e.event_id for e in good} <= ids
    m = bridge.metrics()
    assert m["received"] == len(got)
    assert m["received"] + m["decode_errors"] <= len(entries)
    bus.close()


def _as_text(v: str | bytes) -> str:
    """What the bridge's client hands over for a stored value (bytes that are not UTF-8
    as lone surrogates)."""
    return v if isinstance(v, str) else v.decode("utf-8", "surrogateescape")


def _mutate_text(text: str) -> str:
    cut = len(text) // 2
    return text[:cut] + text[cut + 3 :]
