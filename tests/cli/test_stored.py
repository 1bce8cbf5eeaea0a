"""``tracebus.cli.stored.read_records``: ``--source`` (like ``--type`` and ``--severity``)
chooses rows in SQL (issue 13), so the CLI never reads the rows of other sources."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tracebus import Event, SqliteEventStore
from tracebus.cli import stored
from tracebus.cli.stored import read_records


def test_source_chooses_rows_in_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    with SqliteEventStore(path) as s:
        s.append_many(
            [Event("user.action", src) for src in ["a", "b", "a", "c", "b"]]
            + [Event("system.error", "b", severity="error")]
        )
    with sqlite3.connect(path) as c:  # rows the CLI shows from their stored fields
        c.execute("UPDATE events SET data = '{broken'")
    seen: list[str] = []
    real = stored.StoredEvent.from_row

    def spy(type_name: str, stream: str, data: str) -> Any:
        seen.append(stream)
        return real(type_name, stream, data)

    monkeypatch.setattr(stored.StoredEvent, "from_row", staticmethod(spy))
    with SqliteEventStore(path) as s:
        assert [r.seq for r in read_records(s, sources=["b"])] == [2, 5, 6]
        assert seen == ["b", "b", "b"]  # rows of other sources were never read
        seen.clear()
        assert [r.seq for r in read_records(s, sources=["b", "c"], limit=2)] == [2, 4]
        assert [r.seq for r in read_records(s, sources=["b"], since=2)] == [5, 6]
        got = read_records(s, sources=["b"], types=["system.error"], severity="warn")
        assert [r.seq for r in got] == [6]
        assert [r.seq for r in read_records(s, sources=["nowhere"])] == []
