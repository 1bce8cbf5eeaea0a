"""Correlation scopes and W3C ``traceparent`` conversion.

Inside ``with correlation("user_restart") as ctx:``, every update and event created (in this
thread, and in threads and asyncio tasks that copy the context) joins ``ctx.correlation_id``.
Events published from a handler join the correlation of the event being handled, with that
event as their parent, without any code in the handler.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ._core import CorrelationContext, _correlation_var

__all__ = [
    "CorrelationContext",
    "correlation",
    "current_correlation",
    "from_traceparent",
    "to_traceparent",
]

_VAR = _correlation_var()
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@contextmanager
def correlation(
    caused_by: str | None = None,
    *,
    correlation_id: str | None = None,
    parent_id: str | None = None,
) -> Iterator[CorrelationContext]:
    """Opens a correlation scope.

    Without ``correlation_id`` it joins the enclosing scope (or the event being handled) and
    otherwise starts a new correlation. ``caused_by`` becomes the cause of what is created
    inside (default: inherited; with no cause anywhere, each event keeps its kind's default
    cause, e.g. ``health_check``, and updates get ``"unknown"``).

    >>> with correlation("user_restart") as ctx:
    ...     update = ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf", ServiceState.STARTING)
    >>> update.correlation_id == ctx.correlation_id
    True
    """
    ctx = CorrelationContext(caused_by, correlation_id, parent_id)
    token = _VAR.set(ctx)
    try:
        yield ctx
    finally:
        _VAR.reset(token)


def current_correlation() -> CorrelationContext | None:
    """The innermost open ``correlation(...)`` scope in this context, if any."""
    value = _VAR.get()
    return value if isinstance(value, CorrelationContext) else None


def to_traceparent(
    correlation_id: str, parent_id: str | None = None, *, sampled: bool = True
) -> str:
    """W3C ``traceparent`` for a correlation (and the event id of the span's parent).

    A tracebus correlation id (``corr_`` + 16 hex) becomes the trace id left-padded with
    zeros; an event id (``evt_`` + 16 hex) becomes the parent span id.
    """
    if not isinstance(correlation_id, str) or not correlation_id:
        raise ValueError("correlation_id must be a non-empty str")
    hexpart = correlation_id.removeprefix("corr_").lower()
    if not re.fullmatch(r"[0-9a-f]{1,32}", hexpart):
        raise ValueError(
            "correlation_id must be 'corr_' + up to 32 hex characters to map to a trace id, "
            f"got {correlation_id!r}"
        )
    trace_id = hexpart.rjust(32, "0")
    span = "0" * 16
    if parent_id is not None:
        sp = parent_id.removeprefix("evt_").lower()
        if not re.fullmatch(r"[0-9a-f]{16}", sp):
            raise ValueError(f"parent_id must be 'evt_' + 16 hex characters, got {parent_id!r}")
        span = sp
    if int(trace_id, 16) == 0:
        raise ValueError("correlation_id maps to the all-zero trace id, which W3C forbids")
    if int(span, 16) == 0:
        span = "0" * 15 + "1"
    return f"00-{trace_id}-{span}-{'01' if sampled else '00'}"


def from_traceparent(traceparent: str, caused_by: str = "remote") -> CorrelationContext:
    """A ``CorrelationContext`` for an incoming W3C ``traceparent`` header, to use with
    ``correlation(correlation_id=ctx.correlation_id, parent_id=ctx.parent_id)``."""
    if not isinstance(traceparent, str):
        raise TypeError(f"traceparent must be a str, got {type(traceparent).__name__}")
    m = _TRACEPARENT.match(traceparent.strip().lower())
    if not m:
        raise ValueError(
            f"traceparent must look like '00-<32 hex>-<16 hex>-<2 hex>', got {traceparent!r}"
        )
    trace_id, span_id, _flags = m.groups()
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        raise ValueError("traceparent has an all-zero trace id or span id")
    corr = "corr_" + (trace_id[16:] if trace_id.startswith("0" * 16) else trace_id)
    return CorrelationContext(caused_by, corr, "evt_" + span_id)
