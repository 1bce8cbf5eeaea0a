"""Correlation scopes and W3C ``traceparent`` conversion.

Inside ``with correlation("user_restart") as ctx:``, every update and event created (in this
thread, and in threads and asyncio tasks that copy the context) joins ``ctx.correlation_id``.
Events published from a handler join the correlation of the event being handled, with that
event as their parent, without any code in the handler.

With ``opentelemetry-api`` installed, ``to_traceparent`` / ``from_traceparent`` go through the
global OpenTelemetry propagator (``opentelemetry.propagate``), and a ``tracestate`` received
with ``from_traceparent(..., tracestate=...)`` is kept for the correlation and sent again by
``to_trace_headers``. A ``correlation()`` opened inside an active OpenTelemetry span, outside
any tracebus scope or handler, joins that span's trace: its correlation id is the trace id
and its parent the span (``corr_`` + trace id, ``evt_`` + span id).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ._core import CorrelationContext, _correlation_var, new_correlation_id

__all__ = [
    "CorrelationContext",
    "RemoteContext",
    "correlation",
    "current_correlation",
    "from_traceparent",
    "to_trace_headers",
    "to_traceparent",
]

_VAR = _correlation_var()
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# tracestate received per correlation id (from_traceparent), most recent last, bounded.
_TRACESTATES: dict[str, str] = {}
_TRACESTATES_MAX = 1024


def _otel() -> Any:
    """``opentelemetry.propagate`` and ``opentelemetry.trace`` if the API is installed."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    return propagate, trace


def _correlation_of_trace(trace_id: int) -> str:
    hexid = f"{trace_id:032x}"
    return "corr_" + (hexid[16:] if hexid.startswith("0" * 16) else hexid)


def _joined_otel_span() -> tuple[str, str] | None:
    """(correlation id, parent id) of the active OpenTelemetry span when no tracebus scope or
    handler is current; None otherwise (and whenever OpenTelemetry was never imported)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid or _VAR.get() is not None:
        return None
    if CorrelationContext().correlation_id == CorrelationContext().correlation_id:
        return None  # a handler is running: its event's correlation wins
    return _correlation_of_trace(sc.trace_id), f"evt_{sc.span_id:016x}"


@contextmanager
def _scope(
    caused_by: str | None, correlation_id: str | None, parent_id: str | None
) -> Iterator[CorrelationContext]:
    if correlation_id is None:
        joined = _joined_otel_span()
        if joined is not None:
            correlation_id = joined[0]
            parent_id = parent_id if parent_id is not None else joined[1]
    ctx = CorrelationContext(caused_by, correlation_id, parent_id)
    token = _VAR.set(ctx)
    try:
        yield ctx
    finally:
        _VAR.reset(token)


class _Correlation:
    """The type of ``correlation``: call it for a scope, ``correlation.new(...)`` for a new
    root operation."""

    def __call__(
        self,
        caused_by: str | None = None,
        *,
        correlation_id: str | None = None,
        parent_id: str | None = None,
        new: bool = False,
    ) -> AbstractContextManager[CorrelationContext]:
        """Opens a correlation scope.

        Without ``correlation_id`` it joins the enclosing scope (or the event being handled,
        or, in an asyncio task or thread that copied the context, the scope it was created
        in) and otherwise starts a new correlation. ``new=True`` (or ``correlation.new(...)``)
        always starts a new root operation: a fresh correlation id, no parent, even inside
        another scope or a handler (the cascade depth that guards against publish loops
        still counts). ``caused_by`` becomes the cause of what is created inside (default:
        inherited; with no cause anywhere, each event keeps its kind's default cause, e.g.
        ``health_check``, and updates get ``"unknown"``).

        >>> with correlation("user_restart") as ctx:
        ...     update = ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf", ServiceState.STARTING)
        >>> update.correlation_id == ctx.correlation_id
        True
        """
        if not isinstance(new, bool):
            raise TypeError(f"new must be a bool, got {type(new).__name__}")
        if new:
            if correlation_id is not None or parent_id is not None:
                raise ValueError(
                    "new=True starts a fresh correlation: do not pass correlation_id or parent_id"
                )
            return _scope(caused_by, new_correlation_id(), None)
        return _scope(caused_by, correlation_id, parent_id)

    def new(self, caused_by: str | None = None) -> AbstractContextManager[CorrelationContext]:
        """A scope starting a new root operation (a fresh correlation id, no parent), even
        inside another scope, a handler, or a task created during one; the same as
        ``correlation(caused_by, new=True)``.

        >>> async def watch(proc):             # a task created during the startup cascade
        ...     await proc.wait()
        ...     with correlation.new("process_exit"):   # its own cascade, not startup's
        ...         reporter.report(update.with_error("exited"))
        """
        return self(caused_by, new=True)

    def __repr__(self) -> str:
        return "tracebus.correlation"


#: ``with correlation("user_restart") as ctx:`` (see ``_Correlation.__call__``);
#: ``with correlation.new("crash"):`` for a new root operation.
correlation = _Correlation()


class RemoteContext:
    """The correlation of an incoming ``traceparent`` (``from_traceparent``): its ids, and a
    context manager opening a scope that joins it.

    >>> with from_traceparent(request.headers["traceparent"], "http") as ctx:
    ...     bus.publish(...)              # joins the remote trace, parent = the remote span
    """

    __slots__ = ("_scopes", "caused_by", "correlation_id", "parent_id")

    def __init__(self, caused_by: str, correlation_id: str, parent_id: str) -> None:
        self.caused_by = caused_by
        self.correlation_id = correlation_id
        self.parent_id: str | None = parent_id
        self._scopes: list[AbstractContextManager[CorrelationContext]] = []

    def scope(self) -> AbstractContextManager[CorrelationContext]:
        """A new scope joining this correlation (what ``with`` on this object opens)."""
        return correlation(
            self.caused_by, correlation_id=self.correlation_id, parent_id=self.parent_id
        )

    def __enter__(self) -> CorrelationContext:
        cm = self.scope()
        ctx = cm.__enter__()
        self._scopes.append(cm)
        return ctx

    def __exit__(self, *exc_info: Any) -> None:
        self._scopes.pop().__exit__(*exc_info)

    def __repr__(self) -> str:
        return (
            f"RemoteContext(correlation_id={self.correlation_id!r}, "
            f"caused_by={self.caused_by!r}, parent_id={self.parent_id!r})"
        )


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
    traceparent = f"00-{trace_id}-{span}-{'01' if sampled else '00'}"
    otel = _otel()
    if otel is None:
        return traceparent
    carrier = _inject(otel, correlation_id, trace_id, span, sampled)
    return str(carrier.get("traceparent", traceparent))


def _inject(
    otel: Any, correlation_id: str, trace_id: str, span: str, sampled: bool
) -> dict[str, str]:
    propagate, trace = otel
    state = _TRACESTATES.get(correlation_id)
    sc = trace.SpanContext(
        int(trace_id, 16),
        int(span, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(1 if sampled else 0),
        trace_state=trace.TraceState.from_header([state]) if state else None,
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(sc)))
    return carrier


def to_trace_headers(
    correlation_id: str, parent_id: str | None = None, *, sampled: bool = True
) -> dict[str, str]:
    """Outgoing trace headers for a correlation: ``traceparent`` and, if one was received for
    it, ``tracestate``; with OpenTelemetry installed, whatever the global propagator writes."""
    traceparent = to_traceparent(correlation_id, parent_id, sampled=sampled)
    otel = _otel()
    if otel is not None:
        _v, trace_id, span, _f = traceparent.split("-")
        headers: dict[str, str] = _inject(otel, correlation_id, trace_id, span, sampled)
        headers.setdefault("traceparent", traceparent)
        return headers
    headers = {"traceparent": traceparent}
    state = _TRACESTATES.get(correlation_id)
    if state:
        headers["tracestate"] = state
    return headers


def from_traceparent(
    traceparent: str, caused_by: str = "remote", *, tracestate: str | None = None
) -> RemoteContext:
    """The correlation of an incoming W3C ``traceparent`` header: ``with
    from_traceparent(tp) as ctx:`` opens a scope joining it (or pass its ``correlation_id``
    and ``parent_id`` to ``correlation``). A ``tracestate`` header given with it is kept for
    ``to_trace_headers``."""
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
    otel = _otel()
    if otel is not None:
        propagate, trace = otel
        carrier = {"traceparent": m.group(0)}
        if tracestate:
            carrier["tracestate"] = tracestate
        sc = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if sc.is_valid:  # else the global propagator is not W3C: the parse above stands
            corr, span_id = _correlation_of_trace(sc.trace_id), f"{sc.span_id:016x}"
            tracestate = sc.trace_state.to_header() or None
    if tracestate:
        _TRACESTATES.pop(corr, None)
        _TRACESTATES[corr] = tracestate
        while len(_TRACESTATES) > _TRACESTATES_MAX:
            del _TRACESTATES[next(iter(_TRACESTATES))]
    if not isinstance(caused_by, str):
        raise TypeError(f"caused_by must be a str, got {type(caused_by).__name__}")
    if not caused_by.strip():
        raise ValueError("caused_by must be a non-empty str")
    return RemoteContext(caused_by, corr, "evt_" + span_id)
