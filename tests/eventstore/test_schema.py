"""Schema 4 (issue 13): the source column and the events_bucket index, and the upgrade of
schema-3 files (files of schemas 1 and 2 are tested in ``tests/test_codec_native.py``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import tracebus as tb
from tracebus import Event, SqliteEventStore, SystemEvent
from tracebus._core import _correlation_key, _encode_rows, _event_key
from tracebus.eventstore import SCHEMA_VERSION


class _AppEvent(Event):
    """An application's own event class (the native decoder declines it)."""


# Schema 3 as tracebus wrote it before schema 4 (a frozen copy).
_SCHEMA_3 = """
CREATE TABLE tracebus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, stream TEXT NOT NULL,
    version INTEGER NOT NULL, prev_seq INTEGER, type TEXT NOT NULL, severity TEXT NOT NULL,
    correlation_id NOT NULL, timestamp REAL NOT NULL, data TEXT NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_correlation ON events (correlation_id);
CREATE TABLE streams (
    stream TEXT PRIMARY KEY, version INTEGER NOT NULL, last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE VIEW event_log AS SELECT seq, json_extract(data, '$.kwargs.event_id') AS event_id,
    stream, version, type, severity,
    json_extract(data, '$.kwargs.correlation_id') AS correlation_id,
    json_extract(data, '$.kwargs.parent_id') AS parent_id, timestamp, data FROM events;
INSERT INTO tracebus_meta VALUES ('schema_version', '3');
"""


def _schema_3_store(path: Path, events: list[Event], streams: list[str] | None = None) -> None:
    """A schema-3 file holding ``events`` (in ``streams``, default their sources)."""
    c = sqlite3.connect(path)
    c.executescript(_SCHEMA_3)
    heads: dict[str, tuple[int, int]] = {}
    for seq, e in enumerate(events, 1):
        stream = streams[seq - 1] if streams else e.source
        (row,) = _encode_rows([e], None, lambda ev: tb.eventstore.rows._encode_row(ev, None))
        version, prev = heads.get(stream, (0, None))  # type: ignore[arg-type]
        c.execute(
            "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                _event_key(e.event_id, True),
                stream,
                version + 1,
                prev,
                str(e.type),
                str(e.severity),
                _correlation_key(e.correlation_id),
                e.timestamp,
                row[6],
            ),
        )
        heads[stream] = (version + 1, seq)
    c.executemany("INSERT INTO streams VALUES (?,?,?)", [(s, v, q) for s, (v, q) in heads.items()])
    c.commit()
    c.close()


def test_new_file_has_event_runs(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with SqliteEventStore(path) as s:
        s.append(SystemEvent("c", "startup"), stream="elsewhere")  # runs list the source
        s.append(Event("user.action", "u", metadata={"k": 1}))  # the Python codec's row
        assert s._null_sources_until == 0
    c = sqlite3.connect(path)
    assert c.execute("SELECT value FROM tracebus_meta WHERE key = 'schema_version'").fetchone() == (
        SCHEMA_VERSION,
    )
    assert SCHEMA_VERSION == "4"
    assert c.execute("SELECT * FROM event_runs").fetchall() == [
        (1, '{"system.startup":[0]}', '{"c":[0]}', None),
        (2, '{"user.action":[0]}', '{"u":[0]}', None),
    ]
    # no new index: appends keep writing index entries at the ends of their indexes
    indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {i for i in indexes if not i.startswith("sqlite_autoindex")} == {
        "events_event_id",
        "events_correlation",
    }
    c.close()


def test_schema_3_file_is_upgraded_to_4(tmp_path: Path) -> None:
    """A schema-3 file gets event_runs (sources from the native decoder; unknown for a row
    it declines, which a query by source keeps for the filter to check); replays by
    source and type then give what the filter gives."""
    path = tmp_path / "old.db"
    events: list[Event] = [SystemEvent("c", "startup", f"n{i}") for i in range(4)]
    events.append(_AppEvent("user.action", "meta-src"))  # the Python codec's class
    events += [Event("health.check", f"h-{i % 2}") for i in range(4)]
    _schema_3_store(path, events, streams=["s"] * len(events))
    with SqliteEventStore(path) as s:
        assert s._null_sources_until == 5
        assert [e.event_id for e in s.replay()] == [e.event_id for e in events]
        for flt in [
            tb.filter_by_source("meta-src"),
            tb.filter_by_source("h-1"),
            tb.filter_by_source("c") & tb.filter_by_type("system.startup"),
            tb.filter_by_type("user.action"),
        ]:
            want = [e.event_id for e in events if flt.matches(e)]
            assert [e.event_id for e in s.replay(filter=flt)] == want, flt
        new = Event("user.action", "meta-src", metadata={"why": "y"})
        assert s.append(new) == 10
        assert [e.event_id for e in s.replay(filter=tb.filter_by_source("meta-src"))] == [
            events[4].event_id,
            new.event_id,
        ]
        # past the rows without a source, a query by source is exact again
        assert [r.seq for r in s.records(5, tb.filter_by_source("meta-src"))] == [10]
        assert s.integrity_check() == "ok"
        assert s.stream_version("s") == 9
    c = sqlite3.connect(path)
    assert c.execute("SELECT value FROM tracebus_meta WHERE key = 'schema_version'").fetchone() == (
        "4",
    )
    assert c.execute("SELECT * FROM event_runs").fetchall() == [
        (
            1,
            '{"system.startup":[0,1,2,3],"user.action":[4],"health.check":[5,6,7,8]}',
            '{"c":[0,1,2,3],"h-0":[5,7],"h-1":[6,8]}',
            "[4]",
        ),
        (10, '{"user.action":[0]}', '{"meta-src":[0]}', None),
    ]
    c.close()
    with SqliteEventStore(path) as s:  # opens as schema 4 now, nothing to upgrade
        assert s._null_sources_until == 5
        assert len(s) == 10


def test_upgrade_failure_names_the_file_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_3_store(path, [SystemEvent("c", "startup")])
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE event_runs (x)")  # the new table's name is taken
    c.commit()
    c.close()
    with pytest.raises(tb.EventStoreError, match=r"schema version 3 and could not be upgraded"):
        SqliteEventStore(path)
    c = sqlite3.connect(path)
    assert c.execute("SELECT value FROM tracebus_meta").fetchone() == ("3",)
    assert c.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
    c.close()


def test_upgrade_knows_the_source_of_events_of_types_it_never_registered(tmp_path: Path) -> None:
    """A process upgrading a file (e.g. the CLI) may not have registered the application's
    types: the source of a plain ``Event`` of such a type is read from its stored
    arguments; other classes it cannot decode stay unknown (checked by the filter)."""
    path = tmp_path / "old.db"
    _schema_3_store(path, [Event("user.action", "a"), Event("user.action", "b")])
    c = sqlite3.connect(path)
    data = c.execute("SELECT data FROM events WHERE seq = 2").fetchone()[0]
    c.execute(  # as if written by a program with its own type, unknown here
        "UPDATE events SET type = 'app.only.type', data = ? WHERE seq = 2",
        (data.replace('"user.action"', '"app.only.type"'),),
    )
    c.commit()
    c.close()
    with SqliteEventStore(path) as s:
        assert s._null_sources_until == 0
        assert [r.seq for r in s.records(0, tb.filter_by_source("b"))] == [2]
        assert [r.seq for r in s.records(_types=("app.only.type",))] == [2]
    c = sqlite3.connect(path)
    assert c.execute("SELECT sources FROM event_runs").fetchone() == ('{"a":[0],"b":[1]}',)
    c.close()
