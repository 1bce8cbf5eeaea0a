"""Reading any event store from the command line: ``--import MODULE`` (and
``TRACEBUS_IMPORT``) for the user's event classes, ``StoredEvent`` for rows whose type or
class the CLI does not know, the filters of ``--type/--source/--severity/--correlation``
(type, severity and source chosen in SQL), and the flat JSON line of an event."""

from __future__ import annotations

import datetime
import importlib
import inspect
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core import Event, _parse_severity
from .._enums import Severity
from ..codec import UnknownEvent

__all__ = [
    "HEADER_FIELDS",
    "StoredEvent",
    "event_from_flat",
    "flat_json",
    "import_modules",
    "iso_time",
    "read_records",
    "severities_at_least",
]

#: The header fields of a flat JSON line, in order (then the payload's fields).
HEADER_FIELDS = (
    "seq",
    "event_id",
    "type",
    "severity",
    "source",
    "timestamp",
    "correlation_id",
    "parent_id",
    "caused_by",
)
_HEADER_KWARGS = {"correlation_id", "caused_by", "parent_id", "timestamp", "event_id", "severity"}


def iso_time(ts: float | None) -> str | None:
    """``ts`` (seconds since the epoch) as ISO 8601 UTC with milliseconds, e.g.
    ``2026-12-02T12:00:00.123Z``."""
    if ts is None:
        return None
    d = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class StoredEvent:
    """A stored event shown as its stored fields: for a type or class this process does
    not know (not registered, or its module not imported — see ``--import``). Has the
    attributes the views read (``type``, ``source``, ``severity``, ids, ``timestamp``),
    the stored ``class_name`` and the ``payload`` (the event's own fields); ``str()`` is
    ``[type] source`` and the payload as ``key=value``."""

    type: str
    source: str
    severity: Severity
    timestamp: float
    event_id: str
    correlation_id: str
    parent_id: str | None
    caused_by: str
    class_name: str
    payload: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        text = " ".join(
            f"{k}={v}" if isinstance(v, str) else f"{k}={json.dumps(v, ensure_ascii=False)}"
            for k, v in self.payload.items()
        )
        return f"[{self.type}] {self.source}" + (f": {text}" if text else "")

    @classmethod
    def from_unknown(cls, event: UnknownEvent) -> StoredEvent:
        """The view of an ``UnknownEvent`` (what the codec decodes a class or type this
        process does not know into): its stored type name, class name and payload."""
        return cls(
            type=event.type_name,
            source=event.source,
            severity=Severity(str(event.severity)),
            timestamp=event.timestamp,
            event_id=event.event_id,
            correlation_id=event.correlation_id,
            parent_id=event.parent_id,
            caused_by=event.caused_by,
            class_name=event.class_name,
            payload=dict(event.payload),
        )

    @classmethod
    def from_row(cls, type_name: str, stream: str, data: str) -> StoredEvent:
        """The event of a stored row: its ``type`` column, ``stream`` and JSON ``data``
        (``{"class", "args", "kwargs", "state"?}``); never raises (damaged data shows as
        the raw text in the payload)."""
        try:
            parts = json.loads(data)
            args = list(parts.get("args") or [])
            kwargs = dict(parts.get("kwargs") or {})
            state = dict(parts.get("state") or {})
            name = str(parts.get("class", "?"))
        except (ValueError, TypeError, AttributeError):
            args, kwargs, state, name = [], {}, {}, "?"
            kwargs["data"] = data
        # Event subclasses keep Event's (type, source) positions; others are rare.
        source = stream
        if len(args) >= 2 and args[0] == type_name and isinstance(args[1], str):
            source = args[1]
            args = args[2:]
        payload: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _HEADER_KWARGS}
        if args:
            payload["args"] = args
        payload.update(state)
        try:
            severity = Severity(_parse_severity(str(kwargs.get("severity", "info"))))
        except ValueError:
            severity = Severity.INFO
        return cls(
            type=type_name,
            source=source,
            severity=severity,
            timestamp=float(kwargs.get("timestamp") or 0.0),
            event_id=str(kwargs.get("event_id", "")),
            correlation_id=str(kwargs.get("correlation_id", "")),
            parent_id=kwargs.get("parent_id"),
            caused_by=str(kwargs.get("caused_by", "unknown")),
            class_name=name,
            payload=payload,
        )


def import_modules(names: Sequence[str] | None) -> list[str]:
    """Imports the user's modules (``--import``, then ``TRACEBUS_IMPORT``: comma- or
    ``os.pathsep``-separated) so their event classes and registered types decode as
    themselves. The current directory is searched first, like ``python -m``. Returns the
    names imported; a module that cannot be imported raises ``ValueError`` naming it."""
    wanted = list(names or [])
    env = os.environ.get("TRACEBUS_IMPORT", "")
    for part in env.replace(os.pathsep, ",").split(","):
        if part.strip():
            wanted.append(part.strip())
    if wanted and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in wanted:
        try:
            importlib.import_module(name)
        except Exception as e:  # any failure of the user's module is reported as such
            raise ValueError(f"--import {name}: {type(e).__name__}: {e}") from None
    return wanted


def severities_at_least(minimum: str) -> tuple[str, ...]:
    """The stored severity names at least as severe as ``minimum`` (any spelling)."""
    floor = Severity(_parse_severity(minimum, "--severity"))
    return tuple(s.value for s in Severity if s >= floor)


def read_records(
    store: Any,
    since: int = 0,
    *,
    types: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    severity: str | None = None,
    correlation_id: str | None = None,
    limit: int | None = None,
) -> Iterator[Any]:
    """``store.records(...)`` for the CLI: every row yields a record; events of a class or
    type the process does not know (``UnknownEvent``) and damaged rows as ``StoredEvent``s.
    Types, severities and sources are chosen in SQL (a type the process never registered
    works), correlation by its index; sources are checked again on the events (rows
    upgraded from schema 3 may have no stored source)."""
    sev = None if severity is None else severities_at_least(severity)
    want_sources = None if not sources else set(sources)

    def fallback(seq: int, stream: str, data: str) -> StoredEvent:
        with store._db() as c:
            row = c.execute("SELECT type FROM events WHERE seq = ?", (seq,)).fetchone()
        return StoredEvent.from_row(str(row[0]) if row else "?", stream, data)

    n = 0
    for r in store.records(
        since,
        correlation_id=correlation_id,
        limit=None if want_sources else limit,
        _types=tuple(types) if types else None,
        _severities=sev,
        _sources=tuple(sources) if sources else None,
        _fallback=fallback,
    ):
        if isinstance(r.event, UnknownEvent):
            r = r._replace(event=StoredEvent.from_unknown(r.event))
        if want_sources is not None and r.event.source not in want_sources:
            continue
        yield r
        n += 1
        if limit is not None and n >= limit:
            return


def _payload(event: Any) -> dict[str, Any]:
    """An event's own fields (not the header), as JSON values."""
    if isinstance(event, StoredEvent):
        return dict(event.payload)
    if not isinstance(event, Event):
        return {}
    from ..codec import event_parts

    parts = event_parts(event)
    args, kwargs = parts["args"], parts["kwargs"]
    out: dict[str, Any] = {}
    names = [
        p.name
        for p in _new_params(type(event)).values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for i, v in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        if name not in ("type", "source") or i > 1:
            out[name] = v
    for k, v in kwargs.items():
        if k not in _HEADER_KWARGS:
            out[k] = v
    out.update(parts.get("state") or {})
    out["class"] = parts["class"]
    return {k: _jsonable(v) for k, v in out.items()}


def _new_params(cls: type) -> Mapping[str, inspect.Parameter]:
    """The parameters ``cls(...)`` is rebuilt with: its own Python ``__new__``'s (without
    ``cls``), else the nearest native kind's signature (a subclass's ``__init__`` does
    not count: decoding goes through ``__new__``)."""
    for k in cls.__mro__:
        new = k.__dict__.get("__new__")
        if new is None:
            continue
        if isinstance(new, staticmethod):
            params = dict(inspect.signature(new.__func__).parameters)
            params.pop(next(iter(params)), None)
            return params
        try:
            return inspect.signature(k).parameters
        except (TypeError, ValueError):
            break
    return inspect.signature(Event).parameters


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def flat_json(seq: int | None, event: Any, **extra: Any) -> str:
    """One flat JSON object: ``seq`` and every header field (``timestamp`` as ISO 8601
    UTC), then the payload's fields (a field named like a header field is prefixed with
    ``payload_``), then ``extra``."""
    obj: dict[str, Any] = {
        "seq": seq,
        "event_id": event.event_id,
        "type": str(event.type),
        "severity": str(event.severity),
        "source": event.source,
        "timestamp": iso_time(event.timestamp),
        "correlation_id": event.correlation_id,
        "parent_id": event.parent_id,
        "caused_by": event.caused_by,
    }
    if seq is None:
        del obj["seq"]
    payload = _payload(event)
    if isinstance(event, StoredEvent):
        payload["class"] = event.class_name
    for k, v in payload.items():
        if k in obj and obj[k] == v:
            continue  # e.g. a kind's own ``source`` parameter
        obj[f"payload_{k}" if k in obj else k] = v
    obj["timestamp_epoch"] = event.timestamp  # exact, for ``tracebus import``
    obj.update(extra)
    return json.dumps(obj, ensure_ascii=False)


def event_from_flat(obj: dict[str, Any]) -> Event:
    """The event a ``flat_json`` line describes (``tracebus import``): its ``class``
    (importable: built-in, or a module given with ``--import``) called with its fields by
    name, keeping ids and the exact timestamp. ``ValueError`` says what is missing."""
    from .._core import register_event_type
    from ..codec import resolve_class

    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    cls = resolve_class(str(obj.get("class") or "tracebus:Event"))
    if "type" in obj:
        register_event_type(str(obj["type"]))
    params = _new_params(cls)
    fields = dict(obj)
    if "timestamp_epoch" in fields:
        fields["timestamp"] = fields["timestamp_epoch"]
    elif isinstance(fields.get("timestamp"), str):
        t = str(fields["timestamp"]).replace("Z", "+00:00")
        fields["timestamp"] = datetime.datetime.fromisoformat(t).timestamp()
    kwargs: dict[str, Any] = {}
    for name in params:
        if f"payload_{name}" in fields:
            kwargs[name] = fields[f"payload_{name}"]
        elif name in fields:
            kwargs[name] = fields[name]
    event = cls(**kwargs)
    known = set(params) | set(HEADER_FIELDS) | {"class", "stream", "version", "timestamp_epoch"}
    state = {k: v for k, v in obj.items() if k not in known and not k.startswith("payload_")}
    if state and hasattr(event, "__dict__"):
        event.__dict__.update(state)
    return event
