"""The reference's enumerations, as string-valued enums (``ServiceState.RUNNING == "Running"``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from . import _core

__all__ = ["BufferAction", "EventType", "ServiceState", "ServiceType", "Severity"]


class _StrictStrEnum(StrEnum):
    """A StrEnum whose unknown values raise a ValueError naming the allowed values."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{value!r} is not a valid {cls.__name__}; allowed values: {allowed}")


class ServiceType(_StrictStrEnum):
    """Kinds of managed service. Custom types are plain strings wherever a type is taken."""

    PORT_FORWARD = "PortForward"
    MCP_SERVER = "MCPServer"
    SYSTEM = "System"
    KUBE_OPERATION = "KubeOperation"
    EXTERNAL_CMD = "ExternalCmd"


class ServiceState(_StrictStrEnum):
    """Lifecycle state of a service."""

    UNKNOWN = "Unknown"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    RETRYING = "Retrying"


class EventType(_StrictStrEnum):
    """Built-in event types. Register custom ones with ``register_event_type``."""

    SERVICE_STARTING = "service.starting"
    SERVICE_RUNNING = "service.running"
    SERVICE_STOPPING = "service.stopping"
    SERVICE_STOPPED = "service.stopped"
    SERVICE_FAILED = "service.failed"
    SERVICE_RETRYING = "service.retrying"
    HEALTH_CHECK = "health.check"
    HEALTH_RECOVERY = "health.recovery"
    HEALTH_FAILURE = "health.failure"
    DEPENDENCY_START = "dependency.start"
    DEPENDENCY_STOP = "dependency.stop"
    CASCADE_STOP = "cascade.stop"
    CASCADE_START = "cascade.start"
    USER_ACTION = "user.action"
    SYSTEM_STARTUP = "system.startup"
    SYSTEM_SHUTDOWN = "system.shutdown"
    CONFIG_CHANGE = "config.change"
    SYSTEM_ERROR = "system.error"


_SEVERITY_ORDER = ("trace", "debug", "info", "warn", "error", "fatal")


class Severity(_StrictStrEnum):
    """Event severity, ordered ``TRACE < DEBUG < INFO < WARN < ERROR < FATAL``.

    Spellings are case-insensitive and ``warning`` is ``warn`` (as ``logging`` names it):
    ``Severity("WARN") is Severity("warning") is Severity.WARN``, everywhere a severity is
    taken (filters, channels, events, the CLI's ``--severity``)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            try:
                return cls(_core._parse_severity(value))
            except ValueError:
                pass
        return super()._missing_(value)

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"

    @property
    def rank(self) -> int:
        """Position in the severity order (0 = trace)."""
        return _SEVERITY_ORDER.index(self.value)

    def _other_rank(self, other: object) -> int:
        if isinstance(other, Severity):
            return other.rank
        if isinstance(other, str):
            try:
                return _SEVERITY_ORDER.index(_core._parse_severity(other))
            except ValueError:
                pass
        raise TypeError(f"cannot compare Severity with {other!r}")

    def __lt__(self, other: object) -> bool:
        return self.rank < self._other_rank(other)

    def __le__(self, other: object) -> bool:
        return self.rank <= self._other_rank(other)

    def __gt__(self, other: object) -> bool:
        return self.rank > self._other_rank(other)

    def __ge__(self, other: object) -> bool:
        return self.rank >= self._other_rank(other)

    def __hash__(self) -> int:
        return str.__hash__(self)


class BufferAction(_StrictStrEnum):
    """What a full buffer does with a new item."""

    DROP = "drop"
    BLOCK = "block"
    EVICT_OLDEST = "evict_oldest"


# Keep the members' identity stable for the Rust side (getters return these objects).
_core._bind_enums(ServiceState, Severity, EventType, ServiceType, BufferAction)
