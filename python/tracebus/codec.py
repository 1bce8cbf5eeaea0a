"""JSON encoding of events, so every event kind (built-in, registered custom types and
Python subclasses of ``Event``) round-trips through files, databases and the network.

An encoded event is one JSON object::

    {"class": "tracebus:ServiceStateEvent", "args": [...], "kwargs": {...}}

``args``/``kwargs`` come from the event's ``__getnewargs_ex__()``, so ``cls(*args, **kwargs)``
rebuilds it exactly (event id, correlation id, parent id, cause, timestamp, metadata). A
Python subclass's instance attributes (``__dict__``) are stored under ``"state"``.

The built-in kinds (exact classes, without metadata) are encoded and decoded natively
(``_core._encode_event``/``_decode_event``): the same text, about ten times faster. Anything
else, and any text the native parser does not accept exactly, takes the Python path below,
which raises the errors described here.

Payload values must be JSON values: str, int, float (finite), bool, None, lists and dicts
with str keys. Tuples come back as lists. Anything else raises a ``TypeError`` naming the
field, e.g. ``metadata['when']``.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._core import Event
from ._core import _decode_event as _native_decode
from ._core import _encode_event as _native_encode

__all__ = ["class_path", "decode_event", "encode_event", "resolve_class"]

# allow_nan=False: NaN/Infinity are not JSON; check_circular=False: payloads are trees.
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)
_DECODER = json.JSONDecoder()


def _fast_json() -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    """Encode/decode functions calling json's C accelerators directly: the same output as
    ``_ENCODER.encode``/``json.loads`` without the per-call Python layers (about 0.7 µs an
    event). Falls back to the public API when the accelerators are missing."""
    import json.encoder
    import json.scanner

    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    make_scanner = getattr(json.scanner, "c_make_scanner", None)
    if make_encoder is None or make_scanner is None:
        return _ENCODER.encode, _DECODER.decode

    def default(o: Any) -> Any:
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    c_encode = make_encoder(
        None, default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    scan = make_scanner(_DECODER)
    join = "".join
    spaces = re.compile(r"[ \t\n\r]*")  # json's own definition of whitespace

    def skip(text: str, i: int) -> int:
        m = spaces.match(text, i)
        return m.end() if m else i

    def encode(o: Any) -> str:
        return join(c_encode(o, 0))

    def decode(text: str) -> Any:
        start = skip(text, 0) if text[:1].isspace() else 0
        try:
            obj, end = scan(text, start)
        except StopIteration as err:
            raise json.JSONDecodeError("Expecting value", text, err.value) from None
        if end != len(text) and skip(text, end) != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return obj

    return encode, decode


_encode, _decode = _fast_json()

_PATHS: dict[type, str] = {}
_CLASSES: dict[str, type[Event]] = {}


def class_path(cls: type) -> str:
    """``module:qualname`` of an event class (cached)."""
    p = _PATHS.get(cls)
    if p is None:
        if "<locals>" in cls.__qualname__:
            raise TypeError(
                f"event class {cls.__qualname__} is defined inside a function; "
                "define it at module level so it can be decoded again"
            )
        p = _PATHS[cls] = f"{cls.__module__}:{cls.__qualname__}"
    return p


def resolve_class(path: str) -> type[Event]:
    """The event class named by ``module:qualname``. Raises ``ValueError`` if it cannot be
    imported or is not an ``Event`` subclass."""
    cls = _CLASSES.get(path)
    if cls is not None:
        return cls
    if not isinstance(path, str) or path.count(":") != 1:
        raise ValueError(f"event class must be 'module:qualname', got {path!r}")
    module, qualname = path.split(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(
            f"cannot find event class {path!r} ({e}); import the module that defines it first"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, Event)):
        raise ValueError(f"{path!r} is not a tracebus Event class")
    _CLASSES[path] = obj
    return obj


def _bad_field(value: Any, where: str) -> tuple[str, Any] | None:
    """The first (field, value) below ``value`` that is not a JSON value, or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            bad = _bad_field(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return (f"{where} key {k!r}", k)
            bad = _bad_field(v, f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    return (where, value)


def _encode_error(event: Event, parts: dict[str, Any], err: Exception | None) -> TypeError | None:
    """A ``TypeError`` naming the first field of ``parts`` that is not a JSON value (None if
    every field is one)."""
    args = parts.get("args", ())
    kwargs = parts.get("kwargs", {})
    state = parts.get("state", {})
    bad = None
    for i, v in enumerate(args):
        bad = bad or _bad_field(v, f"argument {i}")
    for k, v in kwargs.items():
        bad = bad or _bad_field(v, k)
    for k, v in state.items():
        bad = bad or _bad_field(v, f"attribute {k}")
    if bad is None:
        return None
    field, value = bad
    what = (
        "not a finite number"
        if isinstance(value, float)
        else f"{type(value).__name__} is not a JSON value"
    )
    return TypeError(
        f"cannot encode {type(event).__name__} {event.event_id}: field {field} = {value!r}: {what} "
        "(use str, int, float, bool, None, list or dict with str keys)"
    )


def event_parts(event: Event) -> dict[str, Any]:
    """The JSON-ready parts of an event: ``class``, ``args``, ``kwargs`` (and ``state``)."""
    if not isinstance(event, Event):
        raise TypeError(f"event must be a tracebus Event, got {type(event).__name__}")
    args, kwargs = event.__getnewargs_ex__()
    parts: dict[str, Any] = {"class": class_path(type(event)), "args": args, "kwargs": kwargs}
    state = getattr(event, "__dict__", None)
    if state:
        parts["state"] = state
    return parts


def encode_parts(event: Event, parts: dict[str, Any]) -> str:
    """JSON text of ``parts`` (from ``event_parts``); a clear ``TypeError`` names the field
    that is not a JSON value."""
    kwargs = parts.get("kwargs")
    if parts.get("state") or (kwargs and kwargs.get("metadata")):
        # Free-form values: check them first, since json silently turns int keys into str.
        err = _encode_error(event, parts, None)
        if err is not None:
            raise err
    try:
        return _encode(parts)
    except (TypeError, ValueError) as e:
        raise _encode_error(event, parts, e) or TypeError(
            f"cannot encode {type(event).__name__} {event.event_id} as JSON: {e}"
        ) from None


def encode_event(event: Event) -> str:
    """The event as a JSON string; ``decode_event`` rebuilds an equal event.

    >>> decode_event(encode_event(e)).event_id == e.event_id
    True
    """
    text = _native_encode(event)
    if text is not None:
        return text
    return encode_parts(event, event_parts(event))


def build_event(parts: Mapping[str, Any], extra_kwargs: Mapping[str, Any] | None = None) -> Event:
    """An event from decoded parts (``class``, ``args``, ``kwargs``, optional ``state``)."""
    try:
        cls = _CLASSES.get(parts["class"]) or resolve_class(parts["class"])
        args = parts["args"]
        kwargs = parts["kwargs"]
    except (KeyError, TypeError):
        raise ValueError(
            "an encoded event must be an object with 'class', 'args' and 'kwargs'"
        ) from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ValueError("an encoded event's 'args' must be a list and 'kwargs' an object")
    if extra_kwargs:
        kwargs.update(extra_kwargs)
    try:
        event = cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot rebuild {parts['class']} from its encoded fields: {e}") from None
    state = parts.get("state")
    if state:
        event.__dict__.update(state)
    return event


def decode_event(data: str | bytes | Mapping[str, Any]) -> Event:
    """Rebuilds an event from ``encode_event`` output (text, bytes or the parsed object).
    Malformed input raises ``ValueError``; an unknown class raises ``ValueError`` naming it
    (import the module that defines it first)."""
    if isinstance(data, str):
        event = _native_decode(data)
        if event is not None:
            return event
    if isinstance(data, (str, bytes, bytearray)):
        try:
            parts = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"not an encoded event (invalid JSON: {e})") from None
    elif isinstance(data, Mapping):
        parts = dict(data)
    else:
        raise TypeError(f"data must be str, bytes or a mapping, got {type(data).__name__}")
    if not isinstance(parts, dict):
        raise ValueError("not an encoded event (expected a JSON object)")
    return build_event(parts)


#: The JSON text decoder the event store uses (one shared instance).
decode_json: Callable[[str], Any] = _decode
