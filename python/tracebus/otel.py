"""OpenTelemetry tracing of an event bus (extra ``tracebus[otel]``: ``opentelemetry-api``).

``instrument(bus)`` turns each cascade (correlation) into one trace and each event the bus
dispatches into one span: kind INTERNAL, named after the event type, with the attributes
``tracebus.event_id``, ``tracebus.correlation_id``, ``tracebus.source``,
``tracebus.severity``, ``tracebus.caused_by`` (and ``tracebus.parent_id``). The span of an
event published from a handler is a child of the span of the event being handled, so the
span tree is ``bus.trace(correlation_id)``'s tree. A handler that raises sets the span's
status to ERROR. ``instrumentation.uninstrument()`` undoes it.

Ids: with the SDK's tracer, the trace id is derived from the correlation id exactly as
``tracebus.to_traceparent`` does (``corr_`` + hex, left-padded) and the span id is the event
id's 16 hex digits, so the spans that different processes make for one cascade (events
carried by the Redis bridge or the event store keep their ids) land in one trace with the
right parents. With another tracer implementation (or the global provider's proxy tracer,
when ``instrument`` runs before ``trace.set_tracer_provider``) the ids are the tracer's own
and parents are linked within the process only: ``instrumentation.deterministic`` tells.

Point-in-time events: a handler error is emitted as an OpenTelemetry **log record** through
the Logs API, with ``event_name="tracebus.handler.error"``, severity ERROR, the exception
(``exception.type``/``message``/``stacktrace`` attributes) and the span's context, so it is
correlated to the span. This follows OpenTelemetry's direction of carrying events as log
records with an event name instead of span events (the span-event API, including
``Span.record_exception``, is being deprecated). Pass ``span_events=True`` to also record
the exception as a span event for back ends that do not ingest logs yet.

How handling is observed: ``instrument`` installs a subscribe hook on the bus
(``tracebus.bus._subscribe_hooks``) that wraps every handler subscribed *afterwards*, and
subscribes one no-op observer of its own, so every dispatched event gets a span even when no
handler matches it. A span starts when the first instrumented handler (the observer, for
sync delivery) takes the event and ends when every instrumented subscription whose filter
matches it has handled it (thread and async handlers included).

Limits:
- Subscriptions made before ``instrument`` are not observed (their time is not in the span,
  their errors not in its status); channels (``subscribe_channel``) are never observed.
- The observer is a subscription: ``subscription_count`` and ``events_delivered`` include
  it. Handlers subscribed while instrumented stay wrapped after ``uninstrument`` (the
  wrapper then only calls through); ``subscription.handler`` is the wrapper.
- An event dropped by a full thread/async buffer never ends its span; at most
  ``max_open_spans`` stay open (the oldest is then ended with ``tracebus.incomplete=True``;
  handlers that take that event later run outside any span) and ``uninstrument`` ends the
  rest.
- Spans ids are event ids: an event dispatched twice (``replay_into`` of events this
  instrumentation already traced, within its last 4096 spans) gets no second span.
- A filter built with ``filter_by(predicate)`` runs its predicate once more per event.
- The hook keeps the bus alive until ``uninstrument()``.
- A root event (no parent) starts a new trace even if an OpenTelemetry span is active where
  it is published; open ``with tracebus.correlation(...)`` inside the span to join its trace
  (a correlation id made by Rust outside any scope cannot join it without a Rust change).

``inject(carrier)`` / ``extract(carrier)`` carry the current correlation over any header
carrier with the global propagator (``traceparent``, ``tracestate``, baggage ...).
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from typing import Any

from opentelemetry import _logs, propagate, trace
from opentelemetry import context as context_api
from opentelemetry._logs import LoggerProvider, SeverityNumber
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
)

from . import bus as _bus_module
from ._core import Event, EventBus, Filter, Subscription, __version__
from .correlation import RemoteContext, from_traceparent
from .logging import correlation_fields

__all__ = [
    "HANDLER_ERROR_EVENT",
    "Instrumentation",
    "extract",
    "inject",
    "instrument",
    "span_id_of",
    "trace_id_of",
]

#: ``event_name`` of the log record emitted when a handler raises.
HANDLER_ERROR_EVENT = "tracebus.handler.error"

_CORR = re.compile(r"^(?:corr_)?([0-9a-fA-F]{1,32})$")
_EVT = re.compile(r"^evt_([0-9a-fA-F]{16})$")
_ENDED_KEEP = 4096


def trace_id_of(correlation_id: str) -> int | None:
    """The trace id of a correlation (as ``to_traceparent``), or None if its id is not hex."""
    m = _CORR.match(correlation_id)
    value = int(m.group(1), 16) if m else 0
    return value or None


def span_id_of(event_id: str) -> int | None:
    """The span id of an event (its 16 hex digits), or None for another id format."""
    m = _EVT.match(event_id)
    value = int(m.group(1), 16) if m else 0
    return value or None


class _EventIds:
    """An SDK ``IdGenerator`` that hands out the ids prepared for the next span on this
    thread, else the wrapped generator's."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self.next = threading.local()

    def generate_span_id(self) -> int:
        value: int | None = getattr(self.next, "span", None)
        return value if value is not None else int(self.fallback.generate_span_id())

    def generate_trace_id(self) -> int:
        value: int | None = getattr(self.next, "trace", None)
        return value if value is not None else int(self.fallback.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        return False


class _Open:
    """A span in progress: how many handlings it waits for, how many are done / running."""

    __slots__ = ("done", "event_id", "expected", "running", "span")

    def __init__(self, span: Span, event_id: str, expected: int) -> None:
        self.span = span
        self.event_id = event_id
        self.expected = expected
        self.done = 0
        self.running = 0


class Instrumentation:
    """What ``instrument`` returns; ``uninstrument()`` removes it."""

    def __init__(
        self,
        bus: EventBus,
        tracer_provider: TracerProvider | None,
        logger_provider: LoggerProvider | None,
        span_events: bool,
        max_open_spans: int,
    ) -> None:
        self.bus = bus
        self.tracer = trace.get_tracer("tracebus", __version__, tracer_provider=tracer_provider)
        self.logger = _logs.get_logger("tracebus", __version__, logger_provider=logger_provider)
        self.span_events = span_events
        self.max_open_spans = max_open_spans
        self._ids: _EventIds | None = None
        fallback = getattr(self.tracer, "id_generator", None)
        if fallback is not None and callable(getattr(fallback, "generate_span_id", None)):
            self._ids = _EventIds(fallback)
            self.tracer.id_generator = self._ids  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._open: dict[str, _Open] = {}
        self._ended: OrderedDict[str, SpanContext] = OrderedDict()
        self._subs: list[tuple[Filter | None, Subscription]] = []
        self.active = True
        self._observer: Subscription | None = None

    @property
    def deterministic(self) -> bool:
        """Whether span and trace ids are derived from the event and correlation ids."""
        return self._ids is not None

    # -- the subscribe hook --------------------------------------------------------------

    def _hook(
        self, flt: Filter | None, handler: Callable[[Any], object]
    ) -> tuple[Callable[[Any], object], Callable[[Subscription], object]]:
        def bind(sub: Subscription) -> None:
            with self._lock:
                self._subs.append((flt, sub))

        return self._wrap(handler), bind

    def _wrap(self, handler: Callable[[Any], Any]) -> Callable[[Any], object]:
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def awrapped(event: Event) -> object:
                if not self.active:
                    return await handler(event)
                st, token = self._enter(event)
                try:
                    return await handler(event)
                except Exception as exc:
                    self._failed(st, exc, handler)
                    raise
                finally:
                    self._exit(st, token)

            return awrapped

        @functools.wraps(handler)
        def wrapped(event: Event) -> object:
            if not self.active:
                return handler(event)
            st, token = self._enter(event)
            try:
                return handler(event)
            except Exception as exc:
                self._failed(st, exc, handler)
                raise
            finally:
                self._exit(st, token)

        return wrapped

    # -- spans ---------------------------------------------------------------------------

    def _expected(self, event: Event) -> int:
        self._subs = [(f, s) for f, s in self._subs if s.active]
        n = 0
        for f, _s in self._subs:
            try:
                n += f is None or f.matches(event)
            except Exception:
                continue  # the bus counts the predicate's error and does not deliver
        return max(n, 1)

    def _parent_context(self, event: Event) -> context_api.Context:
        parent = event.parent_id
        sc: SpanContext | None = None
        if parent is not None:
            sc = self._ended.get(parent)
            if sc is None and parent in self._open:
                sc = self._open[parent].span.get_span_context()
            if sc is None:
                tid, sid = trace_id_of(event.correlation_id), span_id_of(parent)
                if tid is not None and sid is not None:
                    sc = SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(1))
        if sc is None:
            return context_api.Context()  # a root: a trace of its own
        return trace.set_span_in_context(NonRecordingSpan(sc))

    def _start(self, event: Event) -> _Open:
        attributes: dict[str, str] = {
            "tracebus.event_id": event.event_id,
            "tracebus.correlation_id": event.correlation_id,
            "tracebus.source": event.source,
            "tracebus.severity": str(event.severity),
            "tracebus.caused_by": event.caused_by,
        }
        if event.parent_id is not None:
            attributes["tracebus.parent_id"] = event.parent_id
        ctx = self._parent_context(event)
        ids = self._ids
        if ids is not None:
            ids.next.trace = trace_id_of(event.correlation_id)
            ids.next.span = span_id_of(event.event_id)
        try:
            span = self.tracer.start_span(
                str(event.type),
                context=ctx,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=time.time_ns(),
            )
        finally:
            if ids is not None:
                ids.next.trace = ids.next.span = None
        return _Open(span, event.event_id, self._expected(event))

    def _enter(self, event: Event) -> tuple[_Open | None, object]:
        evicted: _Open | None = None
        with self._lock:
            st = self._open.get(event.event_id)
            if st is None:
                if event.event_id in self._ended:
                    return None, None  # its span was ended early: never a second one
                st = self._start(event)
                self._open[event.event_id] = st
                if len(self._open) > self.max_open_spans:
                    evicted = self._open.pop(next(iter(self._open)))
                    self._remember(evicted)
            st.running += 1
        if evicted is not None:
            evicted.span.set_attribute("tracebus.incomplete", True)
            evicted.span.end()
        return st, context_api.attach(trace.set_span_in_context(st.span))

    def _remember(self, st: _Open) -> None:
        self._ended[st.event_id] = st.span.get_span_context()
        while len(self._ended) > _ENDED_KEEP:
            self._ended.popitem(last=False)

    def _exit(self, st: _Open | None, token: object) -> None:
        if st is None:
            return
        context_api.detach(token)  # type: ignore[arg-type]
        with self._lock:
            st.running -= 1
            st.done += 1
            finished = st.running == 0 and st.done >= st.expected
            if finished and self._open.get(st.event_id) is st:
                del self._open[st.event_id]
                self._remember(st)
            else:
                finished = False
        if finished:
            st.span.end()

    def _failed(self, st: _Open | None, exc: Exception, handler: Callable[..., Any]) -> None:
        if st is None:
            return
        span = st.span
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self.span_events:
            span.record_exception(exc)
        name = getattr(handler, "__qualname__", repr(handler))
        self.logger.emit(
            timestamp=time.time_ns(),
            context=trace.set_span_in_context(span),
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body=f"handler {name} raised {type(exc).__name__}: {exc}",
            attributes={"tracebus.event_id": st.event_id, "tracebus.handler": name},
            event_name=HANDLER_ERROR_EVENT,
            exception=exc,
        )

    # -- life cycle ----------------------------------------------------------------------

    def uninstrument(self) -> bool:
        """Stops tracing the bus: removes the hook and the observer, ends open spans.
        False if it was already uninstrumented."""
        with self._lock:
            if not self.active:
                return False
            self.active = False
            if _bus_module._subscribe_hooks.get(id(self.bus)) == self._hook:
                del _bus_module._subscribe_hooks[id(self.bus)]
            left = list(self._open.values())
            self._open.clear()
        if self._observer is not None:
            self._observer.close()
        for st in left:
            st.span.set_attribute("tracebus.incomplete", True)
            st.span.end()
        return True


def _observe(event: Event) -> None:
    """The instrumentation's own subscriber: makes every dispatched event a span."""


def instrument(
    bus: EventBus,
    tracer_provider: TracerProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    *,
    span_events: bool = False,
    max_open_spans: int = 10_000,
) -> Instrumentation:
    """Traces ``bus`` (see the module docstring). Providers default to the global ones."""
    if not isinstance(bus, _bus_module.EventBus):
        raise TypeError(f"bus must be a tracebus.EventBus, got {type(bus).__name__}")
    if id(bus) in _bus_module._subscribe_hooks:
        raise RuntimeError("this bus is already instrumented")
    if max_open_spans < 1:
        raise ValueError("max_open_spans must be >= 1")
    inst = Instrumentation(bus, tracer_provider, logger_provider, span_events, max_open_spans)
    _bus_module._subscribe_hooks[id(bus)] = inst._hook
    inst._observer = bus.subscribe(None, _observe)
    return inst


def inject(
    carrier: MutableMapping[str, str],
    correlation_id: str | None = None,
    parent_id: str | None = None,
) -> MutableMapping[str, str]:
    """Writes trace headers for ``correlation_id`` / ``parent_id`` (default: the current
    scope's or handled event's) into ``carrier`` with the global propagator."""
    if correlation_id is None:
        fields = correlation_fields()
        if fields is None:
            return carrier
        correlation_id, parent_id = fields["correlation_id"], fields["parent_id"]
    assert correlation_id is not None
    tid = trace_id_of(correlation_id)
    if tid is None:
        return carrier
    sid = span_id_of(parent_id) if parent_id is not None else None
    from .correlation import _TRACESTATES

    state = _TRACESTATES.get(correlation_id)
    sc = SpanContext(
        tid,
        sid if sid is not None else 1,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=trace.TraceState.from_header([state]) if state else None,
    )
    propagate.inject(carrier, context=trace.set_span_in_context(NonRecordingSpan(sc)))
    return carrier


def extract(carrier: MutableMapping[str, str], caused_by: str = "remote") -> RemoteContext | None:
    """The correlation of incoming trace headers (None if they carry no valid trace), to
    open with ``with ctx:`` (see ``from_traceparent``)."""
    sc = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if not sc.is_valid:
        return None
    state = sc.trace_state.to_header() or None
    flags = "01" if sc.trace_flags.sampled else "00"
    return from_traceparent(
        f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{flags}", caused_by, tracestate=state
    )
