"""The SQLite schema of the event store (version 4), its creation and the upgrade of
older files."""

from __future__ import annotations

import functools
import json
import sqlite3

from .._core import _correlation_key, _decode_event, _event_id_of_key, _event_key
from .errors import EventStoreError

# Schema 3. What makes appends fast is where index entries land: an index whose new
# entries go to its end dirties one page per transaction, one whose entries land at random
# places dirties (and writes to the WAL) a page per entry. So:
# - event_id holds the event's key (`_core._event_key`: the id generator's counter value,
#   so events made one after another get neighbouring keys);
# - correlation_id holds the same kind of key for generated correlation ids
#   (`_core._correlation_key`) and the text of any other id (the column has no type, so
#   SQLite keeps ints and texts as given);
# - the view event_log shows the ids as text, for reading the file with other tools
#   (e.g. `sqlite3 events.db "SELECT * FROM event_log WHERE correlation_id = 'corr_...'"`);
# - streams are not indexed: `streams` holds each stream's version and last sequence number
#   (optimistic concurrency reads it, each transaction updates one row per stream it
#   touched), and each event's prev_seq links it to its stream's previous event, so a
#   stream is read by walking that chain back from its head.
# Measured on 20k events in 100 streams (benches/test_eventstore_bench.py): a (stream,
# version) index and a correlation index on the ids' text cost ~1.4 µs of the ~3.7 µs an
# event took with schema 2. Pages are 4 KiB: with no index taking random entries, 4 KiB
# pages appended ~15% faster than 16 KiB (the best size for schema 2) and replayed ~3%
# slower (20k events: 41-42 vs 48-49 ms, 18.4 vs 17.8 ms).
#
# Schema 4 (issue 13: a selective replay reads only matching rows) adds the table
# event_runs: for each run of up to _RUN_ROWS events appended together (one transaction),
# its first sequence number and, as JSON objects, each type and each source of its events
# with their offsets from that number ({"user.action":[0,2],"system.error":[1]};
# `unknown_sources`: the offsets of events upgraded from schema 3 whose source the native
# decoder cannot tell, which a query by source keeps for the filter to check). A query by
# type or source reads the runs of a window of sequence numbers, then only the matching
# rows, by sequence number. A run is one row at the end of its table: 1-2 pages written per
# transaction. Indexes cost far more, as their new entries do not all go to their ends
# (20k events in transactions of 500): a plain (type) index dirties a page per type per
# transaction (20 interleaved types: +80-100% append time); one keyed by blocks of 64
# sequence numbers first, (seq >> 6, type, severity, source), inserts into the middle of
# its last page, so every page split rebalances it with its neighbours (+40% WAL pages,
# ~+30% append time). A source column cost +4% WAL pages for nothing the runs do not give.
# Files of schemas 1 and 2 are rewritten as 3 then upgraded to 4 (one transaction).
SCHEMA_VERSION = "4"
_OLD_SCHEMAS = ("1", "2", "3")
_PAGE_SIZE = 4096
_RUN_ROWS = 512  # events per row of event_runs at most
_EVENTS_TABLE = """
CREATE TABLE {name} (
    seq INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    prev_seq INTEGER,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    correlation_id NOT NULL,
    timestamp REAL NOT NULL,
    data TEXT NOT NULL
)"""
_RUNS_TABLE = """
CREATE TABLE event_runs (
    first_seq INTEGER PRIMARY KEY,
    types TEXT NOT NULL,
    sources TEXT NOT NULL,
    unknown_sources TEXT
)"""
_INDEXES_AND_STREAMS = """
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_correlation ON events (correlation_id);
CREATE TABLE streams (
    stream TEXT PRIMARY KEY, version INTEGER NOT NULL, last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE VIEW event_log AS SELECT seq, json_extract(data, '$.kwargs.event_id') AS event_id,
    stream, version, type, severity,
    json_extract(data, '$.kwargs.correlation_id') AS correlation_id,
    json_extract(data, '$.kwargs.parent_id') AS parent_id, timestamp, data FROM events
"""
_SCHEMA = (
    "CREATE TABLE tracebus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    + _EVENTS_TABLE.format(name="events")
    + ";"
    + _INDEXES_AND_STREAMS
    + ";"
    + _RUNS_TABLE
)
# tracebus_meta key: the highest sequence number of an event whose source event_runs does
# not know (upgraded from schema 3; absent when there are none).
_NULL_SOURCES_KEY = "null_sources_until"
# integrity_check's checks of the streams and runs: (what a non-zero count means, the count).
_STREAM_CHECKS = (
    (
        "events not linked to their stream's previous version",
        "SELECT COUNT(*) FROM events e LEFT JOIN events p ON p.seq = e.prev_seq"
        " WHERE CASE WHEN e.prev_seq IS NULL THEN e.version != 1"
        " ELSE p.seq IS NULL OR p.stream != e.stream OR p.version != e.version - 1 END",
    ),
    (
        "streams whose head (version, last event) does not match their events",
        "SELECT COUNT(*) FROM (SELECT stream, MAX(version) AS v, COUNT(*) AS n,"
        " MAX(seq) AS last FROM events GROUP BY stream) g LEFT JOIN streams s USING (stream)"
        " WHERE s.stream IS NULL OR s.version != g.v OR g.n != g.v OR s.last_seq != g.last",
    ),
    (
        "stream heads without events",
        "SELECT COUNT(*) FROM streams WHERE stream NOT IN (SELECT stream FROM events)",
    ),
    (
        "events more or fewer than event_runs lists by type",
        "SELECT ABS((SELECT COUNT(*) FROM events) - (SELECT COALESCE(SUM("
        "json_array_length(j.value)), 0) FROM event_runs r, json_each(r.types) j))",
    ),
)

# Rows per INSERT statement (multi-row VALUES: ~20% less time per row than executemany of
# single rows; 50 rows x 10 columns stays under SQLite's oldest limit of 999 parameters).
_ROWS_PER_INSERT = 50
_HEADS_PER_STATEMENT = 300  # x 3 columns


@functools.lru_cache(maxsize=2 * _ROWS_PER_INSERT)
def _values_sql(template: str, columns: int, rows: int) -> str:
    """``template`` with ``{values}`` replaced by ``rows`` placeholder tuples."""
    row = "(" + ",".join("?" * columns) + ")"
    return template.format(values=",".join([row] * rows))


_INSERT = "INSERT INTO events VALUES {values}"
_SET_HEADS = (
    "INSERT INTO streams VALUES {values} ON CONFLICT (stream) DO UPDATE"
    " SET version = excluded.version, last_seq = excluded.last_seq"
)


def _execute_script(c: sqlite3.Connection, script: str) -> None:
    """Runs ``;``-separated statements inside the current transaction (``executescript``
    would commit it first)."""
    for stmt in script.split(";"):
        if stmt.strip():
            c.execute(stmt)


def open_schema(c: sqlite3.Connection, path: str, create: bool) -> None:
    """Checks the schema of the file behind ``c`` (``path``, for messages): creates it in an
    empty database when ``create``, upgrades an older schema, raises ``EventStoreError``
    otherwise."""
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "tracebus_meta" in tables:
        found = schema_version(c)
        if "events" in tables and found == SCHEMA_VERSION:
            return
        if "events" in tables and found in _OLD_SCHEMAS:
            upgrade(c, path, found)
            return
        raise EventStoreError(
            f"{path} has tracebus schema version {found or 'none'}, this tracebus "
            f"reads versions {', '.join((*_OLD_SCHEMAS, SCHEMA_VERSION))} (or the events "
            "table is missing)"
        )
    if tables:
        raise EventStoreError(
            f"{path} is a SQLite database but not a tracebus event store "
            f"(it has tables {', '.join(sorted(tables)[:5])})"
        )
    if not create:
        raise EventStoreError(f"{path} is an empty database, not a tracebus event store")
    # Only takes effect on a file with no pages yet (ignored if another process was first).
    c.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
    c.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created it while we waited for the lock.
        if schema_version(c) is None:
            _execute_script(c, _SCHEMA)
            c.execute("INSERT INTO tracebus_meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        c.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back itself (an I/O error): the real error is the one
        # raised, not "cannot rollback - no transaction is active".
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise


def schema_version(c: sqlite3.Connection) -> str | None:
    try:
        row = c.execute("SELECT value FROM tracebus_meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no such table
        return None
    return None if row is None else str(row[0])


def null_sources_until(c: sqlite3.Connection) -> int:
    """The highest sequence number of an event event_runs knows no source of (0: none)."""
    row = c.execute(
        "SELECT value FROM tracebus_meta WHERE key = ?", (_NULL_SOURCES_KEY,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _source_of(data: object) -> str | None:
    """The source of a stored event: from the native decoder (built-in kinds of registered
    types), else, for the class ``tracebus:Event`` itself (``Event(type, source, ...)``,
    e.g. of a type this process never registered), its second argument; else None
    (unknown: left for the filter to check)."""
    if not isinstance(data, str):
        return None
    try:
        event = _decode_event(data)
    except Exception:  # a value the constructor rejects: not this upgrade's business
        event = None
    if event is not None:
        return str(event.source)
    try:
        parts = json.loads(data)
    except ValueError:
        return None
    if isinstance(parts, dict) and parts.get("class") == "tracebus:Event":
        args = parts.get("args")
        if isinstance(args, list) and len(args) >= 2 and isinstance(args[1], str):
            return args[1]
    return None


def _build_runs(c: sqlite3.Connection) -> None:
    """Fills event_runs for the events table (runs of up to _RUN_ROWS sequence numbers;
    sources from the native decoder, unknown where it declines) and notes the last event
    of unknown source in tracebus_meta."""
    run: list[tuple[int, str, str | None]] = []
    last_unknown = 0

    def flush() -> None:
        nonlocal last_unknown
        first = run[0][0]
        types: dict[str, list[int]] = {}
        sources: dict[str, list[int]] = {}
        unknown: list[int] = []
        for seq, type_name, source in run:
            types.setdefault(type_name, []).append(seq - first)
            if source is None:
                unknown.append(seq - first)
                last_unknown = seq
            else:
                sources.setdefault(source, []).append(seq - first)
        c.execute(
            "INSERT INTO event_runs VALUES (?, ?, ?, ?)",
            (first, _json(types), _json(sources), _json(unknown) if unknown else None),
        )
        run.clear()

    for seq, type_name, data in c.execute("SELECT seq, type, data FROM events ORDER BY seq"):
        if run and seq - run[0][0] >= _RUN_ROWS:
            flush()
        run.append((seq, type_name, _source_of(data)))
    if run:
        flush()
    if last_unknown:
        c.execute("INSERT INTO tracebus_meta VALUES (?, ?)", (_NULL_SOURCES_KEY, str(last_unknown)))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def upgrade(c: sqlite3.Connection, path: str, found: str) -> None:
    """Upgrades a schema-1, -2 or -3 file to schema 4 in one transaction. From 1 and 2 it
    is first rewritten as schema 3: event keys become counter keys (schema 1 stored the
    id's bits), generated correlation ids become keys, each event gets its stream's
    previous sequence number, and the streams table is filled. Then (3 to 4) event_runs
    is built (runs of up to _RUN_ROWS sequence numbers; see ``_build_runs``)."""
    c.create_function("tb_correlation_key", 1, _correlation_key, deterministic=True)
    c.create_function(
        "tb_counter_key",
        1,
        lambda k: _event_key(_event_id_of_key(k, False), True),
        deterministic=True,
    )
    key = "tb_counter_key(event_id)" if found == "1" else "event_id"
    try:
        c.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(c) == found:  # not upgraded by another process meanwhile
                if found in ("1", "2"):
                    c.execute(_EVENTS_TABLE.format(name="events_v3"))
                    c.execute(
                        f"INSERT INTO events_v3 SELECT seq, {key}, stream, version,"
                        " LAG(seq) OVER (PARTITION BY stream ORDER BY version), type,"
                        " severity, tb_correlation_key(correlation_id), timestamp, data"
                        " FROM events ORDER BY seq"
                    )
                    c.execute("DROP TABLE events")
                    c.execute("ALTER TABLE events_v3 RENAME TO events")
                    _execute_script(c, _INDEXES_AND_STREAMS)
                    c.execute(
                        "INSERT INTO streams SELECT stream, MAX(version), MAX(seq) FROM events"
                        " GROUP BY stream"
                    )
                # 3 -> 4
                c.execute(_RUNS_TABLE)
                _build_runs(c)
                c.execute(
                    "UPDATE tracebus_meta SET value = ? WHERE key = 'schema_version'",
                    (SCHEMA_VERSION,),
                )
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as e:
        raise EventStoreError(
            f"{path} has tracebus schema version {found} and could not be upgraded "
            f"to version {SCHEMA_VERSION}: {e}"
        ) from None
