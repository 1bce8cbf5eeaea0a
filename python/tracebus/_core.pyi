"""Type stubs for ``tracebus._core``, the native (Rust, PyO3) module.

Hand-written; kept honest by ``python -m mypy.stubtest tracebus._core`` in ``.ci/run``.
Getters that return enum members are typed with the enums of ``tracebus._enums``; event
types and service types may also be custom (registered) plain strings.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from types import GenericAlias, MappingProxyType, TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeAlias, TypeVar, final

from typing_extensions import TypeVar as _DefaultTypeVar
from typing_extensions import disjoint_base

from tracebus._enums import BufferAction, EventType, ServiceState, ServiceType, Severity
from tracebus.types import BatchStats, BusMetrics, ChannelStats, StoreMetrics, SubscriptionStats

_Strategy: TypeAlias = SimpleBufferStrategy | PriorityBufferStrategy | BufferAction | str
_Rules: TypeAlias = (
    dict[EventType, BufferAction]
    | dict[EventType, str]
    | dict[str, BufferAction]
    | dict[str, str]
    | dict[EventType | str, BufferAction | str]
)
_SelfBlock: TypeAlias = Literal["drop", "evict_oldest", "raise"]
_ErrorText: TypeAlias = str | BaseException | None
_ErrorHook: TypeAlias = Callable[[BaseException, Event, Subscription], object]

# An event store row: (event key (see ``_event_key``), stream, type, severity,
# correlation_id, timestamp, JSON text, source).
_StoreRow: TypeAlias = tuple[int, str, str, str, int | str, float, str, str]
# INSERT parameters: (seq, event_id, stream, version, prev_seq, type, severity,
# correlation_id, timestamp, JSON text).
_T = TypeVar("_T")
# A channel's item type (``Channel[StateChangeEvent]``, ``Channel[Event]``); bare ``Channel``
# is ``Channel[Any]``.
_ItemT = _DefaultTypeVar("_ItemT", covariant=True, default=Any)
_SeqT = TypeVar("_SeqT", bound=Sequence[Any])

class _PublishesMany(Protocol):
    """What ``EventBatchProcessor`` publishes to: an ``EventBus`` or a look-alike."""

    def publish_many(self, events: list[Event], /) -> object: ...

__all__ = [
    "BusClosedError",
    "Channel",
    "ChannelClosed",
    "CorrelationContext",
    "DependencyEvent",
    "Event",
    "EventBatchProcessor",
    "EventBus",
    "Filter",
    "HealthEvent",
    "HealthStatusUpdate",
    "ManagedServiceUpdate",
    "PriorityBufferStrategy",
    "PublishDeadlockError",
    "PublishDepthError",
    "PublishTimeoutError",
    "ServiceStateEvent",
    "ServiceStateSnapshot",
    "SimpleBufferStrategy",
    "StateChangeEvent",
    "StateStore",
    "StateTransition",
    "Subscription",
    "SystemEvent",
    "TracebusError",
    "UserActionEvent",
    "__version__",
    "_after_fork_in_child",
    "_bind_enums",
    "_close_all_buses",
    "_correlation_key",
    "_correlation_var",
    "_decode_event",
    "_decode_rows",
    "_encode_event",
    "_encode_rows",
    "_event_id_of_key",
    "_event_key",
    "_number_rows",
    "_parse_severity",
    "_stop_all_batch_processors",
    "any_filter",
    "combine_filters",
    "filter_by",
    "filter_by_correlation",
    "filter_by_severity",
    "filter_by_source",
    "filter_by_type",
    "new_correlation_id",
    "new_event_id",
    "not_filter",
    "register_event_type",
    "registered_event_types",
]

__version__: str

# Exceptions

class TracebusError(Exception):
    """Base class of tracebus's errors."""

class BusClosedError(TracebusError):
    """The event bus (or channel) is closed: publish and subscribe are refused."""

class ChannelClosed(TracebusError):
    """The channel is closed and holds no more items."""

class PublishTimeoutError(TracebusError):
    """A block-strategy subscriber stayed full past the publish timeout."""

class PublishDeadlockError(TracebusError):
    """A full block-strategy buffer could not be waited on without deadlocking.

    The sender is the buffer's consumer, or the consumer waits on the sender, and the
    strategy's ``on_self_block`` is ``"raise"``; the item was counted as dropped.
    """

class PublishDepthError(TracebusError):
    """Handlers published events nested deeper than the bus's max_depth."""

# Correlation

@final
class CorrelationContext:
    """A correlation scope: correlation id, cause and the direct parent's event id."""

    def __new__(
        cls,
        caused_by: str | None = None,
        correlation_id: str | None = None,
        parent_id: str | None = None,
    ) -> Self:
        """Joins the current correlation (or starts one) unless ``correlation_id`` is given."""
    @property
    def correlation_id(self) -> str:
        """The correlation id shared by the whole cascade."""
    @property
    def caused_by(self) -> str:
        """What started this operation."""
    @property
    def parent_id(self) -> str | None:
        """Event id of the direct parent, if any."""

def new_correlation_id() -> str:
    """A new correlation id: ``corr_`` + 16 hex characters."""

def new_event_id() -> str:
    """A new event id: ``evt_`` + 16 hex characters."""

def _correlation_var() -> ContextVar[CorrelationContext | Event | None]:
    """The ContextVar behind ``correlation(...)`` (a scope, or the event being handled)."""

# Enumerations and event types

def _bind_enums(
    service_state: type[ServiceState],
    severity: type[Severity],
    event_type: type[EventType],
    service_type: type[ServiceType],
    buffer_action: type[BufferAction],
) -> None:
    """Binds the Python enum classes (called once by ``tracebus._enums``)."""

def _parse_severity(value: Severity | str, param: str = "severity") -> str:
    """The canonical name (``"warn"``, ...) of a severity spelling: any case, ``warning``
    for ``warn``; ``ValueError`` naming ``param`` otherwise."""

def register_event_type(name: str) -> EventType | str:
    """Registers a custom event type (idempotent) so it routes like a built-in; returns it."""

def registered_event_types() -> list[EventType | str]:
    """Every registered event type, built-ins first."""

# Updates and snapshots

@final
class ManagedServiceUpdate:
    """One immutable state report of a managed service, with a unique ``event_id``."""

    def __new__(
        cls,
        source_type: ServiceType | str,
        source_label: str,
        state: ServiceState | str,
        *,
        is_ready: bool | None = None,
        error_detail: _ErrorText = None,
        proxy_port: int | None = None,
        pid: int | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """An update; correlation fields default to the current correlation scope."""
    @property
    def source_type(self) -> ServiceType | str:
        """Service type (a ``ServiceType`` member, or the custom name)."""
    @property
    def source_label(self) -> str:
        """The service's label (its name)."""
    @property
    def state(self) -> ServiceState:
        """The reported state."""
    @property
    def is_ready(self) -> bool:
        """Whether the service is ready (defaults to ``state == RUNNING``)."""
    @property
    def error_detail(self) -> str | None:
        """Error text, if any."""
    @property
    def proxy_port(self) -> int:
        """Local proxy port (0 = none)."""
    @property
    def pid(self) -> int:
        """Process id (0 = none)."""
    @property
    def event_id(self) -> str:
        """Unique id of this update."""
    @property
    def correlation_id(self) -> str:
        """Correlation id shared by the whole operation."""
    @property
    def caused_by(self) -> str:
        """What triggered this update."""
    @property
    def parent_id(self) -> str | None:
        """Event id of the direct parent, if any."""
    @property
    def timestamp(self) -> float:
        """Seconds since the epoch."""
    def with_cause(self, cause: str, parent_id: str | None = None) -> ManagedServiceUpdate:
        """A copy with a new cause (and parent id)."""
    def with_correlation(
        self, correlation_id: str, caused_by: str, parent_id: str | None = None
    ) -> ManagedServiceUpdate:
        """A copy joined to another correlation."""
    def with_error(self, err: _ErrorText) -> ManagedServiceUpdate:
        """A copy carrying an error: a non-empty error forces FAILED and not ready."""
    def with_service_data(self, port: int, pid: int) -> ManagedServiceUpdate:
        """A copy with port and pid set."""
    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain, JSON-friendly dict."""

@final
class ServiceStateSnapshot:
    """The stored state of one service: the last update reported for its label."""

    @property
    def label(self) -> str:
        """The service's label."""
    @property
    def source_type(self) -> ServiceType | str:
        """Service type."""
    @property
    def state(self) -> ServiceState:
        """Current state."""
    @property
    def is_ready(self) -> bool:
        """Whether the service is ready."""
    @property
    def error_detail(self) -> str | None:
        """Error text, if any."""
    @property
    def proxy_port(self) -> int:
        """Local proxy port (0 = none)."""
    @property
    def pid(self) -> int:
        """Process id (0 = none)."""
    @property
    def last_updated(self) -> float:
        """Timestamp of the last update (seconds since the epoch)."""
    @property
    def correlation_id(self) -> str:
        """Correlation id of the last update."""
    @property
    def caused_by(self) -> str:
        """Cause of the last update."""
    @property
    def parent_id(self) -> str | None:
        """Parent id of the last update."""
    @property
    def event_id(self) -> str:
        """Event id of the last update."""
    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict."""
    def __eq__(self, other: object, /) -> bool:
        """Equal when every field is equal."""
    def __hash__(self) -> int:
        """Hash of the event id."""

@final
class HealthStatusUpdate:
    """Health of one cluster: management cluster (``is_mc``) or workload cluster."""

    def __new__(
        cls,
        context_name: str,
        cluster_short_name: str,
        is_mc: bool,
        is_healthy: bool,
        *,
        ready_nodes: int | None = None,
        total_nodes: int | None = None,
        error: _ErrorText = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
    ) -> Self:
        """A health update; ``ready_nodes`` must not exceed ``total_nodes``."""
    @property
    def context_name(self) -> str:
        """Kubernetes context name."""
    @property
    def cluster_short_name(self) -> str:
        """Short cluster name."""
    @property
    def is_mc(self) -> bool:
        """True for the management cluster, False for a workload cluster."""
    @property
    def is_healthy(self) -> bool:
        """Whether the cluster is healthy."""
    @property
    def ready_nodes(self) -> int:
        """Ready nodes."""
    @property
    def total_nodes(self) -> int:
        """Total nodes."""
    @property
    def error(self) -> str | None:
        """Error text, if any."""
    @property
    def event_id(self) -> str:
        """Unique id of this update."""
    @property
    def correlation_id(self) -> str:
        """Correlation id."""
    @property
    def caused_by(self) -> str:
        """Cause."""
    @property
    def parent_id(self) -> str | None:
        """Parent event id, if any."""
    @property
    def timestamp(self) -> float:
        """Seconds since the epoch."""

# Events

@disjoint_base
class Event:
    """Base class of every event: routing header in Rust plus read-only metadata.

    Subclass it for your own events (register custom types with ``register_event_type``).
    Stored and sent events are rebuilt as ``cls(*args, **kwargs)`` from
    ``__getnewargs_ex__``, and the instance ``__dict__`` is restored after, so a subclass
    that adds fields as attributes (in ``__init__`` or later) needs nothing more. A subclass
    that defines its own ``__new__`` must also define ``__getnewargs_ex__`` returning
    ``(args, kwargs)`` that its ``__new__`` accepts; one that does not is refused with a
    ``TypeError`` when the class is defined (its events could be written, never read)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Refuses a subclass whose events could not be rebuilt (see the class docstring)."""

    __match_args__ = ("type", "source")

    def __new__(
        cls,
        type: EventType | str,
        source: str,
        *,
        severity: Severity | str | None = None,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """An event of a built-in or registered ``type``."""
    @property
    def type(self) -> EventType | str:
        """The event type (an ``EventType`` member or a registered custom type)."""
    @property
    def source(self) -> str:
        """Where the event comes from."""
    @property
    def timestamp(self) -> float:
        """Seconds since the epoch."""
    @property
    def severity(self) -> Severity:
        """The severity."""
    @property
    def event_id(self) -> str:
        """Unique id of this event: ``evt_`` + 16 hex."""
    @property
    def correlation_id(self) -> str:
        """Correlation id shared by the whole cascade."""
    @property
    def caused_by(self) -> str:
        """What caused this event."""
    @property
    def parent_id(self) -> str | None:
        """Event id of the direct parent, if any."""
    @property
    def depth(self) -> int:
        """Cascade depth: 0 for a root event, the parent's + 1 for its children."""
    @property
    def metadata(self) -> MappingProxyType[str, Any]:
        """Read-only metadata mapping."""
    def with_correlation(
        self, correlation_id: str, caused_by: str, parent_id: str | None = None
    ) -> Self:
        """A copy (with a new event id) joined to another correlation."""
    def with_metadata(self, key: str, value: object) -> Self:
        """A copy (with a new event id) with one more metadata entry."""
    def header_dict(self) -> dict[str, Any]:
        """Header fields as a plain dict."""
    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict: the header's, the kind's and ``metadata`` (if any)."""
    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Constructor arguments, for pickling and copying."""

@disjoint_base
class ServiceStateEvent(Event):
    """A service's lifecycle change; type and severity follow the new state."""

    __match_args__ = ("service_type", "source", "old_state", "new_state")

    def __new__(
        cls,
        service_type: ServiceType | str,
        source: str,
        old_state: ServiceState | str,
        new_state: ServiceState | str,
        *,
        is_ready: bool | None = None,
        error: _ErrorText = None,
        proxy_port: int | None = None,
        pid: int | None = None,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """The event of a ``old_state`` → ``new_state`` change of service ``source``."""
    @classmethod
    def from_update(cls, update: ManagedServiceUpdate, old_state: ServiceState | str) -> Self:
        """The event of a store transition of ``update`` (its timestamp and ids carried over)."""
    @property
    def service_type(self) -> ServiceType | str:
        """Service type."""
    @property
    def old_state(self) -> ServiceState:
        """State before."""
    @property
    def new_state(self) -> ServiceState:
        """State after."""
    @property
    def is_ready(self) -> bool:
        """Whether the service is ready."""
    @property
    def error(self) -> str | None:
        """Error text, if any."""
    @property
    def proxy_port(self) -> int:
        """Proxy port (0 = none)."""
    @property
    def pid(self) -> int:
        """Process id (0 = none)."""
    def with_error(self, err: _ErrorText) -> Self:
        """A copy carrying ``err``: FAILED, not ready, ``service.failed``, severity error."""

@disjoint_base
class HealthEvent(Event):
    """A cluster health result (``health.check``, ``health.recovery`` or ``health.failure``)."""

    __match_args__ = ("context_name", "cluster_short_name", "is_mc", "is_healthy")

    def __new__(
        cls,
        context_name: str,
        cluster_short_name: str,
        is_mc: bool,
        is_healthy: bool,
        ready_nodes: int | None = None,
        total_nodes: int | None = None,
        error: _ErrorText = None,
        *,
        recovered: bool = False,
        source: str | None = None,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """A health event; ``recovered=True`` (healthy only) gives ``health.recovery``."""
    @classmethod
    def from_update(cls, update: HealthStatusUpdate, *, recovered: bool = False) -> Self:
        """The event for a ``HealthStatusUpdate`` (its timestamp and correlation carried over)."""
    @property
    def context_name(self) -> str:
        """Kubernetes context name."""
    @property
    def cluster_short_name(self) -> str:
        """Short cluster name."""
    @property
    def is_mc(self) -> bool:
        """Management cluster (True) or workload cluster."""
    @property
    def is_healthy(self) -> bool:
        """Whether healthy."""
    @property
    def ready_nodes(self) -> int:
        """Ready nodes."""
    @property
    def total_nodes(self) -> int:
        """Total nodes."""
    @property
    def error(self) -> str | None:
        """Error text, if any."""
    @property
    def recovered(self) -> bool:
        """True for a ``health.recovery`` event."""
    def with_error(self, err: _ErrorText) -> Self:
        """A copy carrying ``err``: unhealthy, ``health.failure``, severity error (None: a
        copy without an error, health unchanged)."""

@disjoint_base
class DependencyEvent(Event):
    """A dependency change: a cascade start/stop, or a single dependency start/stop."""

    __match_args__ = ("source", "dependency_type", "affected", "action")

    def __new__(
        cls,
        source: str,
        dependency_type: ServiceType | str,
        affected: Iterable[str],
        action: str,
        *,
        cascade: bool = True,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """A dependency event; ``action`` is ``"start"`` or ``"stop"``."""
    @property
    def dependency_type(self) -> ServiceType | str:
        """Type of the dependency."""
    @property
    def affected(self) -> tuple[str, ...]:
        """Labels of the affected services."""
    @property
    def action(self) -> Literal["start", "stop"]:
        """``start`` or ``stop``."""
    @property
    def cascade(self) -> bool:
        """True for a cascade, False for a single dependency change."""

@disjoint_base
class UserActionEvent(Event):
    """Something a user did (restart, stop, ...): ``user.action``, info."""

    __match_args__ = ("action", "target_type", "target_name")

    def __new__(
        cls,
        action: str,
        target_type: ServiceType | str,
        target_name: str,
        *,
        source: str | None = None,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """A user action on ``target_name``; source defaults to ``user``."""
    @property
    def action(self) -> str:
        """The action (e.g. ``restart``)."""
    @property
    def target_type(self) -> ServiceType | str:
        """Type of the target service."""
    @property
    def target_name(self) -> str:
        """Label of the target service."""

@disjoint_base
class SystemEvent(Event):
    """A system-level operation of ``component``; ``action`` selects type and severity."""

    __match_args__ = ("component", "action", "details")

    def __new__(
        cls,
        component: str,
        action: str,
        details: _ErrorText = None,
        *,
        metadata: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
        caused_by: str | None = None,
        parent_id: str | None = None,
        timestamp: float | None = None,
        event_id: str | None = None,
    ) -> Self:
        """``action``: ``startup``, ``shutdown``, ``config_change``, ``error`` or ``anomaly``."""
    @property
    def component(self) -> str:
        """The component."""
    @property
    def action(self) -> Literal["startup", "shutdown", "config_change", "error", "anomaly"]:
        """``startup``, ``shutdown``, ``config_change`` or ``error``."""
    @property
    def details(self) -> str | None:
        """Free-text details."""

# Filters

@final
class Filter:
    """An event filter evaluated in Rust; combine with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Filter, /) -> Filter:
        """AND of two filters."""
    def __or__(self, other: Filter, /) -> Filter:
        """OR of two filters."""
    def __rand__(self, other: Filter, /) -> Filter:
        """AND of two filters (reflected)."""
    def __ror__(self, other: Filter, /) -> Filter:
        """OR of two filters (reflected)."""
    def __invert__(self) -> Filter:
        """NOT of this filter."""
    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes (predicates are called; their errors propagate)."""
    @property
    def indexed(self) -> bool:
        """True when the bus finds the filter's subscribers through its index (by event
        type, source, (type, source), correlation or minimum severity); False when they are
        on the scan list every event visits (``~x``, ``filter_by(...)`` or match-all alone).
        See ``route``."""
    @property
    def route(self) -> str:
        """How the bus routes the filter: its index keys (or ``scan``) and the residual
        filter evaluated on the candidates the keys reach (``none``: no evaluation), e.g.
        ``"key: (service.running, pf-0); residual: none"``."""
    @property
    def _pushdown(self) -> dict[str, Any]:
        """What every passing event must have (``types``, ``sources``, ``min_severity``,
        ``correlation_id``; each only when required), for a query to choose rows by, and
        ``exact``: whether those parts are the whole filter (no check by it needed)."""

def filter_by_type(*types: EventType | str) -> Filter:
    """Events whose type is one of ``types`` (at least one: ``ValueError`` otherwise)."""

def filter_by_source(*sources: str) -> Filter:
    """Events whose source is one of ``sources`` (at least one: ``ValueError`` otherwise)."""

def filter_by_severity(minimum: Severity | str) -> Filter:
    """Events at least as severe as ``minimum``."""

def filter_by_correlation(correlation_id: str) -> Filter:
    """Events of one correlation (one operation's whole cascade)."""

def filter_by(predicate: Callable[[Any], object]) -> Filter:
    """Events for which ``predicate(event)`` is truthy (slow path: a Python call per event)."""

def combine_filters(*filters: Filter) -> Filter:
    """AND of the filters; with none, matches everything."""

def any_filter(*filters: Filter) -> Filter:
    """OR of the filters; with none, matches nothing."""

def not_filter(filter: Filter) -> Filter:
    """NOT of a filter."""

# Channels and buffer strategies

@final
class SimpleBufferStrategy:
    """On overflow, apply one ``BufferAction`` to every item. Under BLOCK, ``timeout``
    (seconds; None = until there is room or the subscription is closed) bounds each wait:
    an item that waits past it is dropped for that subscriber (counted in ``dropped`` and
    ``timed_out``) and the sender goes on."""

    def __new__(
        cls,
        action: BufferAction | str,
        *,
        timeout: float | None = None,
        on_self_block: _SelfBlock | None = None,
    ) -> Self:
        """A strategy applying ``action`` on overflow.

        ``on_self_block``: what a block-action send into a full buffer does when it must not
        wait (the sender is the consumer, or the consumer waits on the sender):
        ``"drop"`` (default), ``"evict_oldest"`` or ``"raise"`` (``PublishDeadlockError``).
        Counted in ``stats()["overflowed"]``; a buffer never grows past its capacity.
        """
    @property
    def action(self) -> BufferAction:
        """The action taken on overflow."""
    @property
    def timeout(self) -> float | None:
        """The longest wait of a BLOCK send in seconds (None = until room or close)."""
    @property
    def on_self_block(self) -> _SelfBlock:
        """What a block-action send that must not wait does."""

@final
class PriorityBufferStrategy:
    """Severity-aware overflow: evicts the least severe, oldest item, never a more severe one."""

    def __new__(
        cls,
        default_action: BufferAction | str | None = None,
        rules: _Rules | None = None,
        *,
        timeout: float | None = None,
        on_self_block: _SelfBlock | None = None,
    ) -> Self:
        """``default_action`` (default ``EVICT_OLDEST``) with per-event-type ``rules``;
        ``timeout`` and ``on_self_block`` as for ``SimpleBufferStrategy``."""
    @property
    def timeout(self) -> float | None:
        """The longest wait of a BLOCK send in seconds (None = until room or close)."""
    @property
    def default_action(self) -> BufferAction:
        """The action taken on overflow when no rule applies."""
    @property
    def rules(self) -> dict[EventType | str, BufferAction]:
        """Per-event-type overrides."""
    @property
    def on_self_block(self) -> _SelfBlock:
        """What a block-action send that must not wait does."""

@final
class StateChangeEvent:
    """One change of the state store, as seen by a store subscriber."""

    @property
    def label(self) -> str:
        """The service's label."""
    @property
    def old_state(self) -> ServiceState:
        """State before the change (``UNKNOWN`` for a new service)."""
    @property
    def new_state(self) -> ServiceState:
        """State after the change (``UNKNOWN`` when the service was cleared)."""
    @property
    def snapshot(self) -> ServiceStateSnapshot | None:
        """The new snapshot, or None when the service was cleared."""
    @property
    def cleared(self) -> bool:
        """True when this change is the service being cleared from the store."""
    @property
    def sequence(self) -> int:
        """Per-subscription sequence number; a gap means changes were lost."""

@final
class Channel(Generic[_ItemT]):
    """A bounded channel: iterate, ``recv``, ``try_recv``, ``drain`` or ``async for`` it."""

    def __new__(cls, capacity: int | None = None, strategy: _Strategy | None = None) -> Self:
        """A standalone channel of ``capacity`` items (default 1000; strategy: drop)."""
    def __class_getitem__(cls, item: object) -> GenericAlias:
        """``Channel[T]`` in annotations (the item type is for type checkers only)."""
    def send(
        self, item: object, *, severity: Severity | str | None = None, timeout: float | None = None
    ) -> bool:
        """Sends an item; True if buffered, False if something was dropped."""
    def recv(self, timeout: float | None = None) -> _ItemT:
        """The next item, waiting up to ``timeout`` s (``TimeoutError``; ``ChannelClosed``)."""
    def try_recv(self) -> _ItemT | None:
        """The next item if one is buffered, else None."""
    def drain(self, max_items: int | None = None) -> list[_ItemT]:
        """Up to ``max_items`` buffered items (all if None) in one call; never waits."""
    def close(self) -> None:
        """Closes the channel and ends the subscription feeding it. Idempotent."""
    @property
    def closed(self) -> bool:
        """Whether the channel is closed."""
    @property
    def capacity(self) -> int:
        """Maximum number of buffered items."""
    def stats(self) -> ChannelStats:
        """Counters: sent, delivered, dropped, evicted, blocked, overflowed, timed_out (BLOCK
        sends dropped after waiting past the strategy's ``timeout``), buffered, capacity, closed."""
    def _arm_wakeup(
        self, event_loop: asyncio.AbstractEventLoop, callback: Callable[[], object]
    ) -> bool:
        """Arms a one-shot wake-up for the async iterator; False when no need to wait."""
    def __len__(self) -> int:
        """Number of buffered items."""
    def __iter__(self) -> Self:
        """Blocking iteration until the channel is closed and empty."""
    def __next__(self) -> _ItemT:
        """The next item (waits, GIL released)."""
    def __enter__(self) -> Self:
        """The channel itself; closed on exit."""
    def __exit__(
        self,
        _a: type[BaseException] | None,
        _b: BaseException | None,
        _c: TracebackType | None,
    ) -> Literal[False]:
        """Closes the channel."""
    def __aiter__(self) -> Self:
        """Async iteration until the channel is closed and empty."""
    def __anext__(self) -> Awaitable[_ItemT]:
        """The next item, awaited without spinning."""

# State store

@final
class StateTransition:
    """The old and new state of one atomic transition."""

    @property
    def stored(self) -> bool:
        """False when an ``if_newer`` update was not stored (the snapshot was newer)."""
    @property
    def changed(self) -> bool:
        """True when the service is new or its state differs."""
    @property
    def updated(self) -> bool:
        """True when the service is new or its snapshot changed in what subscribers see."""
    @property
    def old_state(self) -> ServiceState:
        """State before (``UNKNOWN`` for a new service)."""
    @property
    def new_state(self) -> ServiceState:
        """State after."""

@disjoint_base
class StateStore:
    """The centralized, thread-safe source of truth for service states."""

    def __new__(cls, subscription_buffer: int | None = None) -> Self:
        """A store; subscriptions buffer ``subscription_buffer`` changes (default 100)."""
    def set_service_state(self, update: ManagedServiceUpdate, *, if_newer: bool = False) -> bool:
        """Stores the update; True when the label is new or its state changed. With
        ``if_newer``, only if the label is unknown or the update is newer than its snapshot
        by (timestamp, event id), decided atomically (last writer wins)."""
    def transition(
        self, update: ManagedServiceUpdate, *, if_newer: bool = False
    ) -> StateTransition:
        """Stores the update (see ``set_service_state``); returns the old and new state of
        the same atomic transition, and whether it was stored."""
    def transition_and_publish(
        self, update: ManagedServiceUpdate, bus: EventBus
    ) -> StateTransition:
        """Applies ``update`` like ``transition`` and, when subscribers were notified
        (``updated``), publishes its ``ServiceStateEvent`` on ``bus`` in the store's order
        for the label (each event's ``old_state`` is the previous one's ``new_state``). A
        closed bus raises ``BusClosedError`` before the store is touched."""
    def get_service_state(self, label: str) -> ServiceStateSnapshot | None:
        """The snapshot of ``label``, or None."""
    def get_all_service_states(self) -> dict[str, ServiceStateSnapshot]:
        """Every snapshot, keyed by label."""
    def get_services_by_type(self, service_type: ServiceType | str) -> list[ServiceStateSnapshot]:
        """Snapshots of services of ``service_type``, sorted by label."""
    def get_services_by_state(self, state: ServiceState | str) -> list[ServiceStateSnapshot]:
        """Snapshots of services in ``state``, sorted by label."""
    def clear(self, label: str) -> bool:
        """Removes ``label`` (subscribers see ``cleared=True``); whether it existed."""
    def clear_all(self) -> int:
        """Removes every service (subscribers are notified of each); how many."""
    def subscribe(
        self,
        label: str | None = None,
        *,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Channel[StateChangeEvent]:
        """A channel of ``StateChangeEvent`` for ``label`` (None = every service). Under a
        BLOCK strategy only writers that owe this watcher a change wait for room, at most
        the strategy's ``timeout`` (then the change is dropped for it, counted)."""
    def get_metrics(self) -> StoreMetrics:
        """Counters, counts by type and by state, and approximate memory use."""
    def __len__(self) -> int:
        """Number of services."""

# Event bus

@final
class Subscription:
    """A handler subscription; ``close()`` ends it; usable as a context manager."""

    @property
    def id(self) -> str:
        """The subscription id (``<16 hex>_sub``)."""
    @property
    def mode(self) -> Literal["sync", "thread", "async", "channel"]:
        """Delivery mode."""
    @property
    def active(self) -> bool:
        """Whether still subscribed."""
    @property
    def handler(self) -> Callable[[Any], object] | None:
        """The handler (None for a channel subscription)."""
    @property
    def delivered(self) -> int:
        """Events its handler returned from."""
    @property
    def errors(self) -> int:
        """Errors raised by its handler (or its filter predicate)."""
    def stats(self) -> SubscriptionStats:
        """Counters: handler_returned, errors, and the buffer's counters (thread/async)."""
    def close(self) -> bool:
        """Unsubscribes; False if it was not active."""
    def _drain(self) -> list[Event]:
        """Used by the async pump: the next batch of buffered events."""
    def _arm_wakeup(
        self, event_loop: asyncio.AbstractEventLoop, callback: Callable[[], object]
    ) -> bool:
        """Used by the async pump: arms a wake-up; False if events are buffered or it ended."""
    @property
    def _finished(self) -> bool:
        """Used by the async pump: whether the feeding channel is closed and empty."""
    def _record_delivery(self, count: int, elapsed_ns: int | None = None) -> None:
        """Used by the async pump: records handler returns and one sampled duration in ns."""
    def _record_error(self, exc: BaseException, event: Event) -> None:
        """Used by the async pump: records a handler error and passes it to the hook."""
    def _abandon(self, undelivered: int) -> None:
        """Used by the async pump when it ends: unsubscribes, counts what is lost."""
    def __enter__(self) -> Self:
        """The subscription itself; closed on exit."""
    def __exit__(
        self,
        _a: type[BaseException] | None,
        _b: BaseException | None,
        _c: TracebackType | None,
    ) -> Literal[False]:
        """Unsubscribes."""

@disjoint_base
class EventBus:
    """The native event bus; use ``tracebus.EventBus``, which adds ``subscribe``."""

    def __new__(
        cls,
        *,
        history_size: int | None = None,
        max_depth: int | None = None,
        on_error: _ErrorHook | None = None,
    ) -> Self:
        """A bus keeping ``history_size`` events (default 10000) with ``max_depth`` 64."""
    def publish(self, event: Event, *, timeout: float | None = None) -> int:
        """Publishes one event; returns the number of synchronous deliveries."""
    def publish_many(self, events: Iterable[Event], *, timeout: float | None = None) -> int:
        """Publishes events in order; returns the total number of deliveries."""
    def _subscribe(
        self,
        filter: Filter | None,
        handler: Callable[[Any], object],
        mode: str,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Subscription:
        """Low-level subscribe: ``mode`` is ``sync``, ``thread`` or ``async``."""
    def subscribe_channel(
        self,
        filter: Filter | None = None,
        buffer_size: int | None = None,
        strategy: _Strategy | None = None,
    ) -> Channel[Event]:
        """Subscribes a bounded channel (default 1000 items, strategy drop); closing it, or
        dropping its last reference, unsubscribes it."""
    def unsubscribe(self, subscription: Subscription | Channel[Any]) -> bool:
        """Removes a subscription or channel; False if it was not active."""
    def close(self, timeout: float = 5.0) -> None:
        """Closes the bus; handler threads finish their buffers (waited up to ``timeout``)."""
    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
    def set_error_handler(self, hook: _ErrorHook | None) -> None:
        """Replaces the handler-error hook (None restores the default)."""
    @property
    def subscription_count(self) -> int:
        """Number of active subscriptions."""
    @property
    def max_depth(self) -> int:
        """The maximum nesting of publishes from handlers."""
    @property
    def history_size(self) -> int:
        """Events kept in history (0 = disabled)."""
    def history(self, correlation_id: str | None = None, limit: int | None = None) -> list[Event]:
        """Recent events, oldest first (only ``correlation_id``'s if given, at most ``limit``)."""
    def get_metrics(self) -> BusMetrics:
        """Counters, per-type counts, handler latency and approximate memory use."""
    def memory_bytes(self) -> int:
        """Approximate bytes held by the bus (history, buffers, subscriptions)."""

# Batching

@final
class EventBatchProcessor:
    """Collects events into batches published with one ``bus.publish_many`` call each."""

    def __new__(
        cls,
        bus: _PublishesMany,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        *,
        max_queued: int | None = None,
    ) -> Self:
        """A stopped processor (defaults: 50 events, 0.01 s, max(4 batches, 10000) queued)."""
    def start(self) -> None:
        """Starts the batch thread (does nothing if it is running)."""
    def queue_event(self, event: Event) -> None:
        """Queues ``event`` (waits while full); publishes it directly when not started."""
    def flush(self, timeout: float | None = None) -> bool:
        """Publishes everything queued so far; True once published, False after ``timeout``."""
    def stop(self) -> None:
        """Publishes what is queued and stops the batch thread."""
    @property
    def running(self) -> bool:
        """Whether the batch thread is running."""
    @property
    def bus(self) -> _PublishesMany:
        """The bus batches are published to."""
    @property
    def batch_size(self) -> int:
        """Events per batch."""
    @property
    def flush_interval(self) -> float:
        """Seconds a batch may fill before it is published anyway."""
    @property
    def max_queued(self) -> int:
        """The queue's bound (producers wait beyond it)."""
    def stats(self) -> BatchStats:
        """Counters: queued, enqueued, flushed, published, failed, batches, waits, ..."""
    def __enter__(self) -> Self:
        """Starts the processor."""
    def __exit__(
        self,
        _a: type[BaseException] | None,
        _b: BaseException | None,
        _c: TracebackType | None,
    ) -> Literal[False]:
        """Stops the processor, publishing what is queued."""

def _close_all_buses(timeout: float = 2.0) -> bool:
    """Closes every live bus and stops its handler threads (registered with ``atexit``).

    Waits up to ``timeout`` seconds while they deliver what is buffered, then has them stop
    after the handler call in progress, counting what they still hold in
    ``get_metrics()["events_lost"]``, and waits up to one more second. Returns whether
    every handler thread stopped.
    """

def _stop_all_batch_processors() -> None:
    """Stops every running ``EventBatchProcessor`` (registered with ``atexit``)."""

def _after_fork_in_child() -> None:
    """Marks this process as a forked child (``os.register_at_fork``, by ``tracebus``): a
    bus's thread-mode subscriptions and started batch processors of the parent raise
    ``TracebusError`` on use instead of waiting for threads that stayed in the parent."""

# Native JSON codec (used by tracebus.codec and tracebus.eventstore)

def _encode_event(event: object) -> str | None:
    """JSON text of a built-in event (exact class, no metadata); None: use the Python codec."""

def _decode_event(text: object) -> Event | None:
    """The built-in event a JSON text describes; None: leave the text to the Python codec."""

def _encode_rows(
    events: Iterable[object],
    stream: str | None,
    fallback: Callable[[Event], _StoreRow | None],
) -> list[_StoreRow]:
    """Event store rows (plain tuples); events the native codec declines go to ``fallback``
    (None leaves the event out). A non-event raises ``TypeError`` naming its position."""

def _event_key(event_id: str, counter: bool) -> int:
    """The event store's key of an event id: its bits as a signed 64-bit int, or with
    ``counter`` the id generator's counter value behind it (schema 2)."""

def _correlation_key(correlation_id: str) -> int | str:
    """The event store's correlation column value: the counter value behind a generated
    correlation id (``corr_`` + 16 lower-case hex digits), else the id itself."""

def _event_id_of_key(key: int, counter: bool) -> str:
    """The event id whose key is ``key`` (inverse of ``_event_key``)."""

def _number_rows(
    rows: list[_StoreRow],
    first_seq: int,
    heads: dict[str, tuple[int, int | None]],
    current: Callable[[str], tuple[int, int | None]],
    rows_per_statement: int,
    run_rows: int,
) -> tuple[list[list[int | str | float | None]], int, list[tuple[int, str, str]]]:
    """Flat INSERT parameter lists (10 per row, up to ``rows_per_statement`` rows each),
    numbered from ``first_seq``: stream versions and previous sequence numbers from
    ``heads`` (stream → (version, last seq); updated) or ``current(stream)``; the total
    JSON size; and per ``run_rows`` rows a run ``(first seq, types, sources)``: JSON
    objects mapping each type (source) to its rows' offsets from the first seq."""

def _decode_rows(
    rows: list[_SeqT], column: int, fallback: Callable[[_SeqT], _T]
) -> list[Event | _T]:
    """Events of ``rows`` (JSON in item ``column``); rows declined go to ``fallback``."""
