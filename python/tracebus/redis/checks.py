"""Argument checks of ``RedisStreamBridge`` and URL redaction for messages."""

from __future__ import annotations

import urllib.parse
from typing import Any


def _import_redis() -> Any:
    """redis-py, imported on first use (``import tracebus`` never imports it)."""
    try:
        import redis
    except ImportError as e:
        raise ImportError("RedisStreamBridge needs redis-py: pip install 'tracebus[redis]'") from e
    return redis


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    from redis.connection import parse_url

    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as e:
        raise ValueError(f"url {_redact(url)!r} is not a Redis URL: {e}") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ValueError(f"url {_redact(url)!r} is not a Redis URL: it names no host")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(
                f"url {_redact(url)!r} is not a Redis URL: the database {db!r} must be a number"
            )
    return url


def _check_name(name: str, value: object, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        allowed = "a str or None" if optional else "a str"
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _check_directions(
    outbound: object,
    inbound: object,
    reading: dict[str, object],
    sending: dict[str, object],
) -> tuple[bool, bool]:
    """Checks ``outbound``/``inbound`` and that no argument of a switched-off side
    (``reading``/``sending``: name -> value, None when not given) was given."""
    for name, value in (("outbound", outbound), ("inbound", inbound)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if not outbound and not inbound:
        raise ValueError(
            "outbound and inbound are both False: the bridge would neither send nor receive"
        )
    for on, switch, what, args in (
        (inbound, "inbound", "reading", reading),
        (outbound, "outbound", "sending to", sending),
    ):
        given = [name for name, value in args.items() if value is not None]
        if not on and given:
            raise ValueError(
                f"{', '.join(given)} only concern{'s' if len(given) == 1 else ''} {what} "
                f"the stream: not allowed with {switch}=False"
            )
    return bool(outbound), bool(inbound)
