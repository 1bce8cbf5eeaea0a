"""The event store's opening edges (issue 14): a path that would give a throw-away
database is refused, and an I/O error while opening reports its real cause."""

from __future__ import annotations

import os

import pytest

from tracebus.eventstore import EventStoreError, SqliteEventStore


def test_an_empty_path_is_refused() -> None:
    # SQLite would open a private temporary database whose events vanish on close.
    with pytest.raises(ValueError, match="path must name a file"):
        SqliteEventStore("")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_io_error_while_opening_names_its_cause() -> None:
    with pytest.raises(EventStoreError) as info:
        SqliteEventStore("/dev/full")
    message = str(info.value)
    assert "/dev/full" in message
    assert "no transaction is active" not in message
    assert "disk" in message or "I/O" in message or "unable" in message
