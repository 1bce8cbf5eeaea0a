"""The event store's errors."""

from __future__ import annotations

from .._core import TracebusError


class EventStoreError(TracebusError):
    """The event store cannot do what was asked: the file is not a tracebus event store,
    the database is damaged, or an event is already stored."""


class ConcurrencyError(EventStoreError):
    """An append's ``expected_version`` did not match the stream's current version (another
    writer appended first). Nothing of that append was stored."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual}, expected {expected}; "
            "another writer appended first (re-read the stream and retry)"
        )
        self.stream = stream
        self.expected_version = expected
        self.actual_version = actual
