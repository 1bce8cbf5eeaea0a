"""The rows the store inserts: query columns plus the event's JSON encoding."""

from __future__ import annotations

from typing import NamedTuple, TypeAlias

from .._core import Event, _correlation_key, _event_key
from ..codec import encode_parts, event_parts

# What ``_core._encode_rows`` returns per event (plain tuples; ``_Row`` from the Python path).
_RowTuple: TypeAlias = tuple[int, str, str, str, int | str, float, str, str]


class _Row(NamedTuple):
    """A row to insert (``_core._encode_rows`` makes plain tuples of the same shape)."""

    event_id: int
    stream: str
    type: str
    severity: str
    correlation_id: int | str
    timestamp: float
    data: str
    source: str


def _encode_row(event: Event, stream: str | None) -> _Row:
    """Query columns plus the event's full JSON encoding (``tracebus.codec``): the Python
    path, for events the native encoder (``_core._encode_rows``) leaves to it."""
    parts = event_parts(event)
    return _Row(
        _event_key(parts["kwargs"].get("event_id") or event.event_id, True),
        event.source if stream is None else stream,
        str(event.type),
        str(event.severity),
        _correlation_key(event.correlation_id),
        event.timestamp,
        encode_parts(event, parts),
        event.source,
    )
