"""Filters: built-in filters compile to a Rust tree, combine with ``&``, ``|`` and ``~``,
and ``filter_by`` adds a Python predicate for what the built-ins cannot say.

Run: ``python examples/filters.py``. It publishes six events and prints, for each
subscription, the filter and the events it received.
"""

from collections.abc import Callable

from tracebus import (
    Event,
    EventBus,
    EventType,
    Filter,
    HealthEvent,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    Severity,
    SystemEvent,
    any_filter,
    filter_by,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    new_correlation_id,
)


def is_workload_cluster(event: Event) -> bool:
    """A predicate: only health events of workload clusters."""
    return isinstance(event, HealthEvent) and not event.is_mc


def recorder(out: list[str]) -> Callable[[Event], None]:
    """A handler appending ``type@source`` of each event it receives to ``out``."""

    def record(event: Event) -> None:
        out.append(f"{event.type}@{event.source}")

    return record


def main() -> None:
    bus = EventBus()
    operation = new_correlation_id()
    filters: dict[str, Filter] = {
        "problems": filter_by_severity(Severity.WARN),
        "pf-db lifecycle": filter_by_type(EventType.SERVICE_RUNNING, EventType.SERVICE_FAILED)
        & filter_by_source("pf-db"),
        "not health": ~filter_by_type(
            EventType.HEALTH_CHECK, EventType.HEALTH_FAILURE, EventType.HEALTH_RECOVERY
        ),
        "failed or shutdown": any_filter(
            filter_by_type(EventType.SERVICE_FAILED), filter_by_type(EventType.SYSTEM_SHUTDOWN)
        ),
        "one operation": filter_by_correlation(operation),
        "workload health": filter_by_type(EventType.HEALTH_FAILURE, EventType.HEALTH_CHECK)
        & filter_by(is_workload_cluster),
    }
    received: dict[str, list[str]] = {name: [] for name in filters}
    for name, flt in filters.items():
        bus.subscribe(flt, recorder(received[name]))

    pf = ServiceType.PORT_FORWARD
    bus.publish_many(
        [
            ServiceStateEvent(pf, "pf-db", ServiceState.STARTING, ServiceState.RUNNING),
            ServiceStateEvent(
                pf,
                "pf-db",
                ServiceState.RUNNING,
                ServiceState.FAILED,
                error="timeout",
                correlation_id=operation,
            ),
            ServiceStateEvent(pf, "pf-web", ServiceState.STARTING, ServiceState.RUNNING),
            HealthEvent("kind-mc", "mc", True, False, 1, 3, "node down"),
            HealthEvent("kind-wc", "wc", False, False, 0, 2, correlation_id=operation),
            SystemEvent("orchestrator", "shutdown", "signal"),
        ]
    )
    for name, flt in filters.items():
        print(f"{name:<20} {flt!r}")
        print(f"{'':<20} -> {', '.join(received[name]) or '(none)'}")
    bus.close()


if __name__ == "__main__":
    main()
