"""The native codec path (``_core._encode_event``/``_decode_event``/``_encode_rows``/
``_decode_rows``): for the built-in kinds it writes exactly the Python codec's text, reads
what the Python codec wrote, and leaves everything else (metadata, subclasses, damaged or
unusual text) to the Python codec, so errors stay the same."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracebus import (
    DependencyEvent,
    Event,
    EventType,
    HealthEvent,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    SqliteEventStore,
    SystemEvent,
    UserActionEvent,
    codec,
    decode_event,
    encode_event,
    new_correlation_id,
)
from tracebus._core import (
    _correlation_key,
    _decode_event,
    _decode_rows,
    _encode_event,
    _encode_rows,
    _event_id_of_key,
    _event_key,
)
from tracebus.eventstore import EventStoreError

TRICKY = 'quote " back \\ slash / nl \n cr \r tab \t bell \x07 esc \x1b del \x7f é ✓ 😀 \u2028'


def python_text(event: Event) -> str:
    """The Python codec's encoding (the path every row was written with before)."""
    return codec.encode_parts(event, codec.event_parts(event))


def same(a: Event, b: Event) -> None:
    assert type(a) is type(b)
    assert a.__getnewargs_ex__() == b.__getnewargs_ex__()
    assert a.header_dict() == b.header_dict()
    assert str(a) == str(b)


def builtin_events() -> list[Event]:
    """Every built-in kind, with and without optional fields, with awkward text."""
    return [
        ServiceStateEvent(
            ServiceType.PORT_FORWARD,
            "pf-1",
            ServiceState.STARTING,
            ServiceState.RUNNING,
            proxy_port=8080,
            pid=42,
            correlation_id="corr_x",
            caused_by="bench",
        ),
        ServiceStateEvent(
            "Custom " + TRICKY,
            TRICKY,
            "Running",
            "Failed",
            error=TRICKY,
            parent_id="evt_0000000000000001",
            timestamp=0.0,
            is_ready=True,
        ),
        ServiceStateEvent("MCPServer", "m", "Unknown", "Stopped", proxy_port=65535, pid=4294967295),
        HealthEvent("ctx", "golem", True, False, 1, 3, "down " + TRICKY),
        HealthEvent("ctx", "alpha", False, True, 3, 3, recovered=True, source=TRICKY),
        HealthEvent("ctx", "beta", False, True),
        DependencyEvent("k8s-mc", ServiceType.KUBE_OPERATION, ["pf-1", TRICKY], "stop"),
        DependencyEvent("pf-1", "PortForward", [], "start", cascade=False),
        UserActionEvent("restart", ServiceType.MCP_SERVER, "mcp-1"),
        UserActionEvent(TRICKY, "Process", TRICKY, source="operator"),
        SystemEvent("orchestrator", "config_change", "reloaded"),
        SystemEvent("orchestrator", "config.change"),
        SystemEvent(TRICKY, "error", TRICKY),
        SystemEvent("x", "shutdown", ""),
        Event(EventType.CONFIG_CHANGE, "plugin", severity="warn"),
        Event("service.failed", TRICKY, timestamp=1e-05, caused_by=TRICKY),
    ]


@pytest.mark.parametrize("event", builtin_events(), ids=lambda e: type(e).__name__)
def test_native_text_is_the_python_text_and_round_trips(event: Event) -> None:
    text = _encode_event(event)
    assert text is not None
    assert text == python_text(event)
    assert encode_event(event) == text
    back = _decode_event(text)
    assert back is not None
    same(event, back)
    same(event, decode_event(text))
    assert json.loads(text)["class"] == f"tracebus:{type(event).__name__}"


@pytest.mark.parametrize(
    "timestamp",
    [
        0.0,
        1.0,
        0.1,
        1e-4,
        9.999e-5,
        1e-05,
        1.5e-7,
        123.456,
        1795750588.0243843,
        1e15,
        1e16,
        9999999999999998.0,
        1.2345e300,
        5e-324,
    ],
)
def test_float_text_matches_python_repr(timestamp: float) -> None:
    e = SystemEvent("c", "startup", timestamp=timestamp)
    text = _encode_event(e)
    assert text == python_text(e)
    back = _decode_event(text)
    assert back is not None and back.timestamp == timestamp


text_st = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")


@settings(max_examples=300, deadline=None)
@given(
    label=text_st,
    stype=text_st,
    error=st.one_of(st.none(), text_st),
    port=st.integers(0, 65535),
    pid=st.integers(0, 2**32 - 1),
    ts=st.floats(min_value=0, max_value=1e20, allow_nan=False),
)
# A tie between two shortest texts (...312.25): Python writes the even digit, ...312.2.
@example(label="a", stype="b", error=None, port=0, pid=0, ts=562949953421312.2)
def test_any_text_round_trips_natively(
    label: str, stype: str, error: str | None, port: int, pid: int, ts: float
) -> None:
    e = ServiceStateEvent(
        stype, label, "Starting", "Retrying", error=error, proxy_port=port, pid=pid, timestamp=ts
    )
    text = _encode_event(e)
    assert text == python_text(e)
    back = _decode_event(text)
    assert back is not None
    same(e, back)


class Sub(Event):
    pass


def test_metadata_and_subclasses_take_the_python_path() -> None:
    with_meta = SystemEvent("c", "startup", metadata={"k": [1, "x"]})
    sub = Sub(EventType.CONFIG_CHANGE, "s")
    sub.extra = 1  # type: ignore[attr-defined]
    for e in (with_meta, sub):
        assert _encode_event(e) is None
        text = encode_event(e)
        assert _decode_event(text) is None  # metadata / state: left to Python
        same(e, decode_event(text))
    assert decode_event(encode_event(with_meta)).metadata == {"k": [1, "x"]}
    assert _encode_event("not an event") is None


def test_rows_written_by_the_python_path_decode_natively() -> None:
    for e in builtin_events():
        old = python_text(e)
        # Formatted differently too (whitespace, key order): still the same event.
        parts = json.loads(old)
        spaced = json.dumps(
            {"kwargs": parts["kwargs"], "args": parts["args"], "class": parts["class"]},
            indent=2,
            ensure_ascii=True,
        )
        for text in (old, spaced):
            back = _decode_event(text)
            assert back is not None, text
            same(e, back)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid JSON"),
        ('{"class": "tracebus:SystemEvent", "args": ["c", "startup", null]', "invalid JSON"),
        ('{"class": "tracebus:SystemEvent"}', "'class', 'args' and 'kwargs'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_text_gives_the_same_error(text: str, message: str) -> None:
    assert _decode_event(text) is None
    with pytest.raises(ValueError, match=message):
        decode_event(text)


def _system_text(**changes: Any) -> str:
    parts = json.loads(python_text(SystemEvent("c", "startup", "d")))
    for k, v in changes.items():
        if k == "args":
            parts["args"] = v
        elif v is _DROP:
            del parts["kwargs"][k]
        else:
            parts["kwargs"][k] = v
    return json.dumps(parts)


_DROP = object()


@pytest.mark.parametrize(
    "text",
    [
        _system_text(args=["c", "reboot", None]),  # not an action
        _system_text(args=["", "startup", None]),  # empty component
        _system_text(args=["c", "startup", None, 1]),  # too many arguments
        _system_text(event_id="evt_nothex"),
        _system_text(timestamp=-1.0),
        _system_text(timestamp="soon"),
        _system_text(correlation_id=""),
        _system_text(unknown=1),
        '{"class": "tracebus:SystemEvent", "args": ["c", "startup", "\\ud800"], "kwargs": {}}',
    ],
)
def test_values_the_constructor_refuses_raise_as_before(text: str) -> None:
    assert _decode_event(text) is None
    with pytest.raises(ValueError, match="cannot rebuild tracebus:SystemEvent"):
        decode_event(text)


@pytest.mark.parametrize("missing", ["timestamp", "event_id", "correlation_id", "caused_by"])
def test_missing_header_fields_are_left_to_the_constructor(missing: str) -> None:
    """Without them the constructor takes the clock, a new id or the context: Python's job."""
    text = _system_text(**{missing: _DROP})
    assert _decode_event(text) is None
    e = decode_event(text)
    assert isinstance(e, SystemEvent) and e.component == "c"


def test_duplicate_keys_are_left_to_python() -> None:
    text = python_text(SystemEvent("c", "startup"))
    dup = text[:-2] + ',"caused_by":"later"}}'
    assert _decode_event(dup) is None
    assert decode_event(dup).caused_by == "later"  # json: the last one wins


def test_correlation_key_is_an_int_only_for_generated_ids() -> None:
    a, b = new_correlation_id(), new_correlation_id()
    ka, kb = _correlation_key(a), _correlation_key(b)
    assert isinstance(ka, int) and isinstance(kb, int)
    assert 0 < kb - ka < 1_000_000  # made one after another: neighbouring keys
    # Anything else stays text, so distinct ids never share a key.
    for other in ["user_restart", a.upper(), "corr_+" + a[6:], a[:-1], "123"]:
        assert _correlation_key(other) == other
    row = _encode_rows([SystemEvent("c", "startup", correlation_id=a)], None, lambda e: None)
    assert row[0][4] == ka


def test_encode_rows_and_decode_rows() -> None:
    events = builtin_events()
    seen: list[Event] = []

    def fallback(e: Event) -> Any:
        seen.append(e)
        return None

    meta = SystemEvent("c", "startup", metadata={"k": 1})
    rows = _encode_rows([*events, meta], None, fallback)
    assert seen == [meta] and len(rows) == len(events)
    for e, row in zip(events, rows, strict=True):
        key, stream, type_, severity, corr, ts, data, source = row
        assert source == e.source
        assert key == _event_key(e.event_id, True)
        assert _event_id_of_key(key, True) == e.event_id
        assert (stream, type_, severity, corr, ts) == (
            e.source,
            str(e.type),
            str(e.severity),
            _correlation_key(e.correlation_id),
            e.timestamp,
        )
        assert data == python_text(e)
    streamed = _encode_rows(events, "s", fallback)
    assert [r[1] for r in streamed] == ["s"] * len(events)
    assert [r[7] for r in streamed] == [e.source for e in events]  # the source stays
    with pytest.raises(TypeError, match=r"events\[1\] must be a tracebus Event, got int"):
        _encode_rows([events[0], 5], None, fallback)

    def refuse(row: tuple[int, str]) -> Event:
        raise AssertionError(f"row {row} left to Python")

    decoded = _decode_rows([(i, r[6]) for i, r in enumerate(rows)], 1, refuse)
    for e, back in zip(events, decoded, strict=True):
        same(e, back)
    weird = [(0, "not json"), (1, None), (2, b"bytes")]
    assert _decode_rows(weird, 1, lambda row: ("fallback", row[0])) == [
        ("fallback", 0),
        ("fallback", 1),
        ("fallback", 2),
    ]


def test_event_keys() -> None:
    with pytest.raises(ValueError, match="event_id must look like"):
        _event_key("evt_12", True)
    a, b = ServiceStateEvent("Process", "p", "Starting", "Running"), SystemEvent("c", "startup")
    # Ids made one after another have increasing, close counter keys.
    assert 0 < _event_key(b.event_id, True) - _event_key(a.event_id, True) < 1_000_000


# -- the event store with rows of both paths and both schemas ---------------------------

_OLD_SCHEMA = """
CREATE TABLE tracebus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, stream TEXT NOT NULL,
    version INTEGER NOT NULL, type TEXT NOT NULL, severity TEXT NOT NULL,
    correlation_id TEXT NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE UNIQUE INDEX events_stream_version ON events (stream, version);
CREATE INDEX events_correlation ON events (correlation_id);
INSERT INTO tracebus_meta VALUES ('schema_version', 'SCHEMA');
"""


def _old_store(path: Path, events: Sequence[Event], schema: str) -> None:
    """A schema-1 or -2 file as an older tracebus wrote it: schema 1 has the id's bits as
    a signed int for the key, schema 2 the counter key."""
    c = sqlite3.connect(path)
    c.executescript(_OLD_SCHEMA.replace("SCHEMA", schema))
    versions: dict[str, int] = {}
    for seq, e in enumerate(events, 1):
        bits = int(e.event_id[4:], 16)
        if schema == "1":
            key = bits - (1 << 64) if bits >= 1 << 63 else bits
        else:
            key = _event_key(e.event_id, True)
        versions[e.source] = versions.get(e.source, 0) + 1
        c.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)",
            (
                seq,
                key,
                e.source,
                versions[e.source],
                str(e.type),
                str(e.severity),
                e.correlation_id,
                e.timestamp,
                python_text(e),
            ),
        )
    c.commit()
    c.close()


def _columns(path: Path) -> list[tuple[Any, ...]]:
    c = sqlite3.connect(path)
    try:
        return c.execute(
            "SELECT seq, event_id, stream, version, prev_seq, correlation_id FROM events"
            " ORDER BY seq"
        ).fetchall()
    finally:
        c.close()


@pytest.mark.parametrize("old", ["1", "2"])
def test_old_schema_file_is_upgraded_to_schema_4(tmp_path: Path, old: str) -> None:
    """A file written by an older tracebus (schema 1: the id's bits as the key; schema 2:
    counter keys; both with a (stream, version) index and correlation ids as text) is
    rewritten as schema 3 and upgraded to 4 when opened, and everything keeps working."""
    path = tmp_path / "old.db"
    gen = new_correlation_id()
    events = [SystemEvent("c", "startup", f"n{i}", correlation_id="corr_a") for i in range(5)]
    events += [SystemEvent("d", "startup", f"g{i}", correlation_id=gen) for i in range(3)]
    events.append(SystemEvent("c", "error", metadata={"why": "x"}))
    _old_store(path, events, old)
    with SqliteEventStore(path) as s:
        assert [e.event_id for e in s.replay()] == [e.event_id for e in events]
        for a, b in zip(events, s.replay(), strict=True):
            same(a, b)
        with pytest.raises(EventStoreError, match="already stored"):
            s.append(events[2])
        new = SystemEvent("c", "shutdown", correlation_id="corr_a")
        assert s.append(new) == 10
        assert [r.event.event_id for r in s.records(correlation_id="corr_a")] == [
            *(e.event_id for e in events[:5]),
            new.event_id,
        ]
        assert [r.event.event_id for r in s.records(correlation_id=gen)] == [
            e.event_id for e in events[5:8]
        ]
        assert s.stream_version("c") == 7 and s.stream_version("d") == 3
        assert [r.version for r in s.records(stream="c")] == list(range(1, 8))
        assert s.append(SystemEvent("d", "startup"), expected_version=3) == 11
        assert s.integrity_check() == "ok"
    c = sqlite3.connect(path)
    assert (
        c.execute("SELECT value FROM tracebus_meta WHERE key = 'schema_version'").fetchone()[0]
        == "4"
    )
    assert c.execute("SELECT * FROM streams ORDER BY stream").fetchall() == [
        ("c", 7, 10),
        ("d", 4, 11),
    ]
    assert [r[0] for r in c.execute("SELECT event_id FROM event_log ORDER BY seq")][:10] == [
        e.event_id for e in [*events, new]
    ]
    c.close()
    rows = _columns(path)
    assert [r[1] for r in rows[:10]] == [_event_key(e.event_id, True) for e in [*events, new]]
    # prev_seq links each event to its stream's previous one
    assert [r[4] for r in rows] == [None, 1, 2, 3, 4, None, 6, 7, 5, 9, 8]
    # generated correlation ids became int keys, others stayed text
    assert [r[5] for r in rows[:8]] == ["corr_a"] * 5 + [_correlation_key(gen)] * 3
    assert isinstance(rows[5][5], int)


def test_new_file_is_schema_4(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    events = builtin_events()
    with SqliteEventStore(path) as s:
        s.append_many(events)
        for a, b in zip(events, s.replay(), strict=True):
            same(a, b)
        with pytest.raises(EventStoreError, match=f"event {events[3].event_id} is already"):
            s.append_many([SystemEvent("c", "startup"), events[3]])
        assert len(s) == len(events)
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert (
        c.execute("SELECT value FROM tracebus_meta WHERE key = 'schema_version'").fetchone()[0]
        == "4"
    )
    # no index on streams: appends in many streams would write to random index pages
    indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not any("stream" in i for i in indexes), indexes
    # the event_log view shows the ids as text
    assert c.execute(
        "SELECT event_id, correlation_id, parent_id FROM event_log ORDER BY seq"
    ).fetchall() == [(e.event_id, e.correlation_id, e.parent_id) for e in events]
    c.close()
    rows = _columns(path)
    assert [r[1] for r in rows] == [_event_key(e.event_id, True) for e in events]
    assert [r[5] for r in rows] == [_correlation_key(e.correlation_id) for e in events]


def test_damaged_row_raises_when_replay_reaches_it(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    events = [SystemEvent("c", "startup", str(i)) for i in range(5)]
    with SqliteEventStore(path) as s:
        s.append_many(events)
    c = sqlite3.connect(path)
    c.execute("UPDATE events SET data = '{broken' WHERE seq = 4")
    c.commit()
    c.close()
    got: list[str] = []
    with SqliteEventStore(path) as s:
        with pytest.raises(EventStoreError, match="cannot decode event seq 4"):
            for e in s.replay(on_error="raise"):
                got.append(e.event_id)
    assert got == [e.event_id for e in events[:3]]


@pytest.mark.parametrize("records", [False, True])
def test_damaged_row_in_a_later_chunk_names_its_sequence_number(
    tmp_path: Path, records: bool
) -> None:
    path = tmp_path / "d.db"
    events = [SystemEvent("c", "startup", str(i), metadata={"i": i}) for i in range(20)]
    with SqliteEventStore(path) as s:
        s.append_many(events)
    c = sqlite3.connect(path)
    c.execute("UPDATE events SET data = 'null' WHERE seq = 14")
    c.commit()
    c.close()
    with SqliteEventStore(path, chunk_size=5) as s:
        it = s.records(on_error="raise") if records else s.replay(on_error="raise")
        got = []
        with pytest.raises(EventStoreError, match="cannot decode event seq 14"):
            for x in it:
                got.append(x)
        assert len(got) == 13
