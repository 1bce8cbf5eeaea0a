"""Enumerations: reference values, strict parsing, Severity ordering, ids."""

from __future__ import annotations

import re

import pytest

from tracebus import (
    BufferAction,
    EventType,
    ServiceState,
    ServiceType,
    Severity,
    new_correlation_id,
    new_event_id,
)


def test_service_type_values() -> None:
    assert [m.value for m in ServiceType] == [
        "PortForward",
        "MCPServer",
        "System",
        "KubeOperation",
        "ExternalCmd",
    ]


def test_service_state_values() -> None:
    assert [m.value for m in ServiceState] == [
        "Unknown",
        "Starting",
        "Running",
        "Stopping",
        "Stopped",
        "Failed",
        "Retrying",
    ]


def test_event_type_values_include_every_reference_type() -> None:
    reference = {
        "service.starting",
        "service.running",
        "service.stopping",
        "service.stopped",
        "service.failed",
        "service.retrying",
        "health.check",
        "health.recovery",
        "health.failure",
        "dependency.start",
        "dependency.stop",
        "cascade.stop",
        "cascade.start",
        "user.action",
        "system.startup",
        "system.shutdown",
        "config.change",
    }
    values = {m.value for m in EventType}
    assert reference <= values


def test_severity_and_buffer_action_values() -> None:
    assert [m.value for m in Severity] == ["trace", "debug", "info", "warn", "error", "fatal"]
    assert [m.value for m in BufferAction] == ["drop", "block", "evict_oldest"]


@pytest.mark.parametrize(
    ("member", "text"),
    [
        (ServiceState.RUNNING, "Running"),
        (ServiceType.PORT_FORWARD, "PortForward"),
        (EventType.SERVICE_FAILED, "service.failed"),
        (Severity.WARN, "warn"),
        (BufferAction.EVICT_OLDEST, "evict_oldest"),
    ],
)
def test_enums_are_strings(member: str, text: str) -> None:
    assert member == text
    assert isinstance(member, str)
    assert str(member) == text
    assert type(member)(text) is member


@pytest.mark.parametrize("cls", [ServiceType, ServiceState, EventType, Severity, BufferAction])
def test_unknown_value_names_allowed_values(cls: type) -> None:
    with pytest.raises(ValueError) as ei:
        cls("definitely-not-a-member")
    msg = str(ei.value)
    assert "definitely-not-a-member" in msg
    assert cls.__name__ in msg
    for m in cls:
        assert repr(m.value) in msg


def test_state_values_are_case_sensitive() -> None:
    with pytest.raises(ValueError, match="allowed values"):
        ServiceState("running")


def test_severity_ordering() -> None:
    order = [
        Severity.TRACE,
        Severity.DEBUG,
        Severity.INFO,
        Severity.WARN,
        Severity.ERROR,
        Severity.FATAL,
    ]
    assert sorted(reversed(order)) == order
    for i, a in enumerate(order):
        assert a.rank == i
        for j, b in enumerate(order):
            assert (a < b) == (i < j)
            assert (a <= b) == (i <= j)
            assert (a > b) == (i > j)
            assert (a >= b) == (i >= j)
    assert max(order) is Severity.FATAL
    assert min(order) is Severity.TRACE


def test_severity_compares_with_its_strings_but_not_other_things() -> None:
    assert Severity.ERROR > "warn"
    assert Severity.DEBUG < "info"
    assert Severity.INFO >= "info"
    with pytest.raises(TypeError):
        _ = Severity.INFO < "loud"
    with pytest.raises(TypeError):
        _ = Severity.INFO < 3


def test_severity_is_hashable_like_its_string() -> None:
    d = {Severity.ERROR: 1}
    assert d["error"] == 1
    assert hash(Severity.WARN) == hash("warn")


def test_new_correlation_id_format_and_uniqueness() -> None:
    ids = [new_correlation_id() for _ in range(2000)]
    for c in ids:
        assert re.fullmatch(r"corr_[0-9a-f]{16}", c), c
    assert len(set(ids)) == len(ids)


def test_new_event_id_format_and_uniqueness() -> None:
    ids = [new_event_id() for _ in range(2000)]
    for e in ids:
        assert re.fullmatch(r"evt_[0-9a-f]{16}", e), e
    assert len(set(ids)) == len(ids)
