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

**Data never chooses code.** Decoding never imports a module, never ``eval``s and never
unpickles: the ``"class"`` field is only looked up among the event classes this program
already has, i.e. the registry ``_CLASSES``, filled by

- every subclass of ``Event`` defined at module level anywhere in the program (found on
  ``Event``'s subclass tree, ``type.__subclasses__``, when a name is first looked up: a
  class is known as soon as its ``class`` statement ran, with no registration needed);
- ``register_event_class(cls, name=None)``, for a class under another name (e.g. one
  that moved module: register it under its old ``module:qualname``).

**Unknown classes and types decode generically.** An entry naming a class this program
does not have, or an event type it never registered (``register_event_type``), decodes as
an ``UnknownEvent``: an ``Event`` with the stored header (source, severity, event id,
correlation id, cause, parent id, timestamp, metadata) plus

- ``class_name``: the stored ``module:qualname``;
- ``type_name``: the stored event type name (``event.type`` is that type when this process
  registered it, else the placeholder ``UNKNOWN_TYPE`` = ``"tracebus.unknown"``);
- ``payload``: the class's own fields (its instance attributes and any constructor
  arguments beyond the header) as a dict;
- ``parts``: the stored object itself; encoding an ``UnknownEvent`` writes it back
  unchanged, so relaying it (store → bridge → store) loses nothing.

Readers that need the real class import its module first (the CLI's ``--import MODULE``);
``decode_event(data, unknown="raise")`` refuses unknown classes and types instead.

**Errors.** ``decode_event`` raises ``EventDecodeError`` (a ``ValueError``) for any bad
input whatsoever (invalid UTF-8 or JSON, nesting deeper than ``MAX_DEPTH``, missing or
mistyped fields, a constructor rejecting the fields, instance state on a class without
``__dict__``), and ``TypeError`` only when ``data`` is not text, bytes or a mapping.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from ._core import Event, register_event_type, registered_event_types
from ._core import _decode_event as _native_decode
from ._core import _encode_event as _native_encode

__all__ = [
    "MAX_DEPTH",
    "UNKNOWN_TYPE",
    "EventDecodeError",
    "UnknownEvent",
    "class_path",
    "decode_event",
    "encode_event",
    "register_event_class",
    "resolve_class",
]

#: Deepest nesting of lists and objects ``decode_event`` accepts (deeper raises
#: ``EventDecodeError`` instead of exhausting the interpreter's recursion limit).
MAX_DEPTH = 200

#: The event type of an ``UnknownEvent`` whose stored type this process never registered.
UNKNOWN_TYPE = "tracebus.unknown"

_E = TypeVar("_E", bound=type[Event])


class EventDecodeError(ValueError):
    """Data that is not an encoded event this program can rebuild: invalid text or JSON,
    too deep, missing or mistyped fields, fields the class's constructor rejects, or (with
    ``unknown="raise"``) an unknown class or event type. Every failure of ``decode_event``
    on bad input is one of these."""


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
# ``module:qualname`` -> class: every Event subclass found on the subclass tree, and (first)
# those registered explicitly. Never filled from data.
_CLASSES: dict[str, type[Event]] = {"tracebus:Event": Event}
_REGISTERED: dict[str, type[Event]] = {}
_MAX_NAME = 300  # class names quoted in messages are cut to this length


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


def register_event_class(cls: _E, name: str | None = None) -> _E:
    """Makes ``cls`` (an ``Event`` subclass) decodable under ``name`` (default: its own
    ``module:qualname``) and returns it, so it also works as a class decorator. Needed only
    for another name (a class that moved module); a module-level subclass is known as soon
    as it is defined."""
    if not (isinstance(cls, type) and issubclass(cls, Event)):
        raise TypeError(f"cls must be a tracebus Event subclass, got {cls!r}")
    if name is None:
        name = class_path(cls)
    elif not isinstance(name, str) or name.count(":") != 1:
        raise ValueError(f"name must be 'module:qualname', got {name!r}")
    _REGISTERED[name] = _CLASSES[name] = cls
    return cls


def _scan_subclasses() -> None:
    """Adds every module-level ``Event`` subclass defined so far to ``_CLASSES``."""
    todo: list[type[Event]] = [Event]
    seen: set[type[Event]] = set()
    while todo:
        sub: type[Event]
        for sub in type.__subclasses__(todo.pop()):
            if sub in seen:
                continue
            seen.add(sub)
            todo.append(sub)
            if "<locals>" not in sub.__qualname__:
                _CLASSES[f"{sub.__module__}:{sub.__qualname__}"] = sub
    _CLASSES.update(_REGISTERED)


def _short(name: object) -> str:
    text = repr(name)
    return text if len(text) <= _MAX_NAME else text[:_MAX_NAME] + "...'"


def resolve_class(path: str) -> type[Event]:
    """The event class named by ``module:qualname``: one registered or defined in this
    program (never imported: see the module docstring). Raises ``EventDecodeError`` if
    there is none."""
    cls = _CLASSES.get(path) if isinstance(path, str) else None
    if cls is None:
        if not isinstance(path, str) or path.count(":") != 1:
            raise EventDecodeError(f"event class must be 'module:qualname', got {_short(path)}")
        _scan_subclasses()
        cls = _CLASSES.get(path)
        if cls is None:
            raise EventDecodeError(
                f"unknown event class {_short(path)}: no such Event subclass is defined in "
                "this program (import the module that defines it, or register_event_class)"
            )
    return cls


class UnknownEvent(Event):
    """An event whose class or event type this program does not know, decoded with every
    stored field (see the ``tracebus.codec`` module docstring): the header as usual, plus
    ``class_name`` (the stored ``module:qualname``), ``type_name`` (the stored type name;
    ``type`` is ``UNKNOWN_TYPE`` unless this process registered it), ``payload`` (the
    class's own fields) and ``parts`` (the stored object, written back unchanged when the
    event is encoded again)."""

    class_name: str
    type_name: str
    payload: dict[str, Any]
    parts: dict[str, Any]

    def __str__(self) -> str:
        return f"{super().__str__()} <{self.class_name} {self.type_name}>"


_HEADER_KEYS = frozenset(
    ("severity", "metadata", "correlation_id", "caused_by", "parent_id", "timestamp", "event_id")
)


def _unknown_event(parts: dict[str, Any], args: list[Any], kwargs: dict[str, Any]) -> Event:
    """The ``UnknownEvent`` of parts whose class or type is unknown; ``EventDecodeError``
    if its fields do not hold an event header (``args`` starting with type and source)."""
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        raise EventDecodeError(
            f"unknown event class {_short(parts['class'])} and its 'args' do not start with "
            "an event type and source"
        )
    type_name = args[0]
    known = type_name in registered_event_types()
    if not known:
        register_event_type(UNKNOWN_TYPE)
    header = {k: v for k, v in kwargs.items() if k in _HEADER_KEYS}
    try:
        event = UnknownEvent(type_name if known else UNKNOWN_TYPE, args[1], **header)
    except (TypeError, ValueError) as e:
        raise EventDecodeError(f"cannot rebuild {_short(parts['class'])}: {e}") from None
    payload = {k: v for k, v in kwargs.items() if k not in _HEADER_KEYS}
    if len(args) > 2:
        payload["args"] = args[2:]
    state = parts.get("state")
    if isinstance(state, dict):
        payload.update(state)
    event.__dict__.update(
        class_name=parts["class"], type_name=type_name, payload=payload, parts=parts
    )
    return event


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
    if type(event) is UnknownEvent:
        return dict(event.parts)
    args, kwargs = event.__getnewargs_ex__()
    parts: dict[str, Any] = {"class": class_path(type(event)), "args": args, "kwargs": kwargs}
    state = getattr(event, "__dict__", None)
    if state:
        parts["state"] = state
    return parts


def encode_parts(event: Event, parts: dict[str, Any]) -> str:
    """JSON text of ``parts`` (from ``event_parts``); a clear ``TypeError`` names the field
    that is not a JSON value."""
    if parts.get("state"):
        # Free-form values: check them first, since json silently turns int keys into str.
        # (Metadata was checked when the event was made: Event refuses non-JSON values.)
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


def build_event(
    parts: Mapping[str, Any],
    extra_kwargs: Mapping[str, Any] | None = None,
    *,
    unknown: Literal["generic", "raise"] = "generic",
) -> Event:
    """An event from decoded parts (``class``, ``args``, ``kwargs``, optional ``state``).
    Unknown classes and types give an ``UnknownEvent`` (``unknown="raise"``:
    ``EventDecodeError``); any other problem raises ``EventDecodeError``."""
    try:
        name = parts["class"]
        args = parts["args"]
        kwargs = parts["kwargs"]
    except (KeyError, TypeError):
        raise EventDecodeError(
            "an encoded event must be an object with 'class', 'args' and 'kwargs'"
        ) from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise EventDecodeError("an encoded event's 'args' must be a list and 'kwargs' an object")
    if any(not isinstance(k, str) for k in kwargs):
        raise EventDecodeError("an encoded event's 'kwargs' keys must be str")
    state = parts.get("state")
    if state is not None and not isinstance(state, dict):
        raise EventDecodeError("an encoded event's 'state' must be an object")
    if extra_kwargs:
        kwargs.update(extra_kwargs)
    try:
        cls = _CLASSES.get(name) if isinstance(name, str) else None
        cls = cls or resolve_class(name)
    except EventDecodeError:
        if unknown == "raise":
            raise
        return _unknown_event(dict(parts), args, kwargs)
    try:
        event = cls(*args, **kwargs)
    except RecursionError:
        raise EventDecodeError(f"cannot rebuild {name}: nested too deeply") from None
    except Exception as e:
        if unknown != "raise" and args and isinstance(args[0], str):
            if args[0] not in registered_event_types() and _type_param(cls):
                return _unknown_event(dict(parts), args, kwargs)
        raise EventDecodeError(
            f"cannot rebuild {name} from its encoded fields: {type(e).__name__}: {e}"
        ) from None
    if state:
        d = getattr(event, "__dict__", None)
        if d is None:
            raise EventDecodeError(
                f"{name} has no instance attributes, but the encoded event has 'state'"
            )
        d.update(state)
    return event


def _type_param(cls: type[Event]) -> bool:
    """Whether ``cls`` takes ``(type, source, ...)`` like ``Event`` (its Python subclasses
    do; the built-in kinds do not)."""
    return cls is Event or cls.__new__ is Event.__new__


def decode_json_text(data: str | bytes | bytearray) -> Any:
    """The JSON value of ``data``; ``EventDecodeError`` for invalid UTF-8 or JSON, and for
    nesting deeper than ``MAX_DEPTH``."""
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise EventDecodeError(f"not an encoded event (a {type(data).__name__}, not text)")
    try:
        if not isinstance(data, str):
            data = bytes(data).decode("utf-8")
        if data.count("[") + data.count("{") > MAX_DEPTH and _too_deep(data):
            raise EventDecodeError(f"not an encoded event (nested deeper than {MAX_DEPTH})")
        return _decode(data)
    except RecursionError:
        raise EventDecodeError(f"not an encoded event (nested deeper than {MAX_DEPTH})") from None
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, EventDecodeError):
            raise
        raise EventDecodeError(f"not an encoded event (invalid JSON: {e})") from None


# A JSON string (skipped whole) or a bracket.
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep(text: str) -> bool:
    """Whether the JSON text nests lists/objects deeper than ``MAX_DEPTH``."""
    depth = 0
    for m in _NESTING.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in "]}":
            depth -= 1
    return False


def decode_event(
    data: str | bytes | Mapping[str, Any], *, unknown: Literal["generic", "raise"] = "generic"
) -> Event:
    """Rebuilds an event from ``encode_event`` output (text, bytes or the parsed object).
    Bad input of any kind raises ``EventDecodeError`` (a ``ValueError``); a class or event
    type this program does not know decodes as an ``UnknownEvent`` (``unknown="raise"``:
    ``EventDecodeError``). ``TypeError`` if ``data`` is not text, bytes or a mapping."""
    if unknown not in ("generic", "raise"):
        raise ValueError(f"unknown must be 'generic' or 'raise', got {unknown!r}")
    if isinstance(data, str):
        event = _native_decode(data)
        if event is not None:
            return event
    if isinstance(data, (str, bytes, bytearray)):
        parts = decode_json_text(data)
    elif isinstance(data, Mapping):
        parts = dict(data)
    else:
        raise TypeError(f"data must be str, bytes or a mapping, got {type(data).__name__}")
    if not isinstance(parts, dict):
        raise EventDecodeError("not an encoded event (expected a JSON object)")
    return build_event(parts, unknown=unknown)


#: The JSON text decoder the event store uses (one shared instance).
decode_json: Callable[[str], Any] = _decode
