"""ManagedServiceUpdate, HealthStatusUpdate and ServiceStateSnapshot."""

from __future__ import annotations

import re
import time

import pytest
from tb_support import update

from tracebus import (
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    StateStore,
)

EVT = re.compile(r"evt_[0-9a-f]{16}")
CORR = re.compile(r"corr_[0-9a-f]{16}")


def test_defaults() -> None:
    before = time.time()
    u = ManagedServiceUpdate(ServiceType.PORT_FORWARD, "test-pf", ServiceState.STARTING)
    after = time.time()
    assert u.source_type is ServiceType.PORT_FORWARD
    assert u.source_label == "test-pf"
    assert u.state is ServiceState.STARTING
    assert u.is_ready is False
    assert u.error_detail is None
    assert u.proxy_port == 0
    assert u.pid == 0
    assert CORR.fullmatch(u.correlation_id)
    assert EVT.fullmatch(u.event_id)
    assert u.caused_by == "unknown"
    assert u.parent_id is None
    assert before - 1 <= u.timestamp <= after + 1


@pytest.mark.parametrize("state", list(ServiceState))
def test_is_ready_defaults_to_running(state: ServiceState) -> None:
    assert update(state=state).is_ready is (state is ServiceState.RUNNING)


def test_explicit_fields() -> None:
    u = ManagedServiceUpdate(
        "PortForward",
        "pf",
        "Running",
        is_ready=False,
        error_detail="slow",
        proxy_port=8080,
        pid=1234,
        correlation_id="corr_0123456789abcdef",
        caused_by="user_restart",
        parent_id="evt_00000000000000aa",
        timestamp=1700000000.5,
    )
    assert u.state is ServiceState.RUNNING
    assert u.is_ready is False
    assert u.error_detail == "slow"
    assert (u.proxy_port, u.pid) == (8080, 1234)
    assert u.correlation_id == "corr_0123456789abcdef"
    assert u.caused_by == "user_restart"
    assert u.parent_id == "evt_00000000000000aa"
    assert u.timestamp == 1700000000.5


def test_custom_service_type_is_allowed() -> None:
    u = update(service_type="MyDatabase")
    assert u.source_type == "MyDatabase"


def test_every_update_gets_a_unique_event_id_but_fresh_correlations() -> None:
    us = [update() for _ in range(1000)]
    assert len({u.event_id for u in us}) == 1000
    # Outside any correlation scope each update starts its own correlation.
    assert len({u.correlation_id for u in us}) == 1000


def test_immutable() -> None:
    u = update()
    with pytest.raises(AttributeError):
        u.state = ServiceState.FAILED  # type: ignore[misc]
    with pytest.raises(AttributeError):
        u.extra = 1  # type: ignore[attr-defined]
    assert u.state is ServiceState.RUNNING


def test_with_error_forces_failed_and_not_ready() -> None:
    u = update(state=ServiceState.RUNNING, proxy_port=9000, pid=7)
    assert u.is_ready
    f = u.with_error("connection failed")
    assert f.state is ServiceState.FAILED
    assert f.is_ready is False
    assert f.error_detail == "connection failed"
    # Other fields and the correlation carry over; the copy has its own id.
    assert (f.proxy_port, f.pid, f.source_label) == (9000, 7, u.source_label)
    assert f.correlation_id == u.correlation_id
    assert f.event_id != u.event_id
    # The original is untouched.
    assert u.state is ServiceState.RUNNING and u.is_ready and u.error_detail is None


def test_with_error_accepts_an_exception() -> None:
    f = update().with_error(RuntimeError("port in use"))
    assert f.state is ServiceState.FAILED
    assert f.error_detail == "port in use"


def test_with_error_empty_or_none_does_not_fail_the_service() -> None:
    u = update(state=ServiceState.RUNNING)
    for err in ("", None):
        c = u.with_error(err)
        assert c.state is ServiceState.RUNNING
        assert c.is_ready is True
        assert c.error_detail is None


def test_with_cause() -> None:
    u = update()
    c = u.with_cause("health_check")
    assert c.caused_by == "health_check"
    assert c.parent_id is None
    assert c.correlation_id == u.correlation_id
    assert c.event_id != u.event_id
    p = u.with_cause("dependency_change", "evt_0000000000000001")
    assert p.parent_id == "evt_0000000000000001"
    assert u.caused_by == "unknown"


def test_with_correlation() -> None:
    u = update()
    c = u.with_correlation("corr_00000000000000ff", "user_restart", "evt_0000000000000002")
    assert c.correlation_id == "corr_00000000000000ff"
    assert c.caused_by == "user_restart"
    assert c.parent_id == "evt_0000000000000002"
    assert c.event_id != u.event_id
    assert c.state is u.state
    no_parent = u.with_correlation("corr_00000000000000ff", "user_restart")
    assert no_parent.parent_id is None
    assert u.correlation_id != "corr_00000000000000ff"


def test_with_service_data() -> None:
    u = update()
    c = u.with_service_data(8443, 4242)
    assert (c.proxy_port, c.pid) == (8443, 4242)
    assert (u.proxy_port, u.pid) == (0, 0)
    assert c.event_id != u.event_id


def test_str_is_one_readable_line() -> None:
    u = update("test-pf", ServiceState.FAILED, error_detail="connection failed", proxy_port=8080)
    s = str(u)
    assert "\n" not in s
    assert s.startswith("test-pf (PortForward) Failed")
    assert "port=8080" in s
    assert "(error: connection failed)" in s
    assert "test-pf" in repr(u) and u.event_id in repr(u)


def test_to_dict_round_trips_fields() -> None:
    u = update(proxy_port=1, pid=2, caused_by="x")
    d = u.to_dict()
    assert d["source_label"] == "test-pf"
    assert d["state"] == "Running"
    assert d["event_id"] == u.event_id
    assert d["correlation_id"] == u.correlation_id
    assert (d["proxy_port"], d["pid"], d["caused_by"]) == (1, 2, "x")


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"source_label": ""}, ValueError, "source_label"),
        ({"source_label": "   "}, ValueError, "source_label"),
        ({"source_label": "a\x00b"}, ValueError, "source_label"),
        ({"source_label": 42}, TypeError, "source_label"),
        ({"source_label": None}, TypeError, "source_label"),
        ({"source_label": "x" * 5000}, ValueError, "source_label"),
        ({"state": "Exploded"}, ValueError, "state"),
        ({"state": 3}, TypeError, "state"),
        ({"source_type": ""}, ValueError, "source_type"),
        ({"source_type": 1}, TypeError, "source_type"),
        ({"proxy_port": -1}, ValueError, "proxy_port"),
        ({"proxy_port": 70000}, ValueError, "proxy_port"),
        ({"proxy_port": "80"}, TypeError, "proxy_port"),
        ({"proxy_port": True}, TypeError, "proxy_port"),
        ({"pid": -5}, ValueError, "pid"),
        ({"pid": 1.5}, TypeError, "pid"),
        ({"is_ready": 1}, TypeError, "is_ready"),
        ({"error_detail": 12}, TypeError, "error_detail"),
        ({"error_detail": "a\x00"}, ValueError, "error_detail"),
        ({"timestamp": -1.0}, ValueError, "timestamp"),
        ({"timestamp": float("nan")}, ValueError, "timestamp"),
        ({"timestamp": "now"}, TypeError, "timestamp"),
        ({"correlation_id": ""}, ValueError, "correlation_id"),
        ({"caused_by": 5}, TypeError, "caused_by"),
        ({"event_id": "nope"}, ValueError, "event_id"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, object], exc: type, param: str) -> None:
    args: dict[str, object] = {
        "source_type": ServiceType.PORT_FORWARD,
        "source_label": "pf",
        "state": ServiceState.RUNNING,
    }
    positional = {k: kwargs.pop(k) if k in kwargs else v for k, v in args.items()}
    with pytest.raises(exc, match=param):
        ManagedServiceUpdate(
            positional["source_type"],  # type: ignore[arg-type]
            positional["source_label"],  # type: ignore[arg-type]
            positional["state"],  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


def test_helpers_reject_bad_input_and_leave_the_update_unchanged() -> None:
    u = update(proxy_port=5, pid=6)
    snapshot = u.to_dict()
    with pytest.raises(ValueError, match="port"):
        u.with_service_data(-1, 1)
    with pytest.raises(ValueError, match="pid"):
        u.with_service_data(1, -1)
    with pytest.raises(TypeError, match="err"):
        u.with_error(123)
    with pytest.raises(ValueError, match="cause"):
        u.with_cause("")
    with pytest.raises(ValueError, match="correlation_id"):
        u.with_correlation("", "x")
    with pytest.raises(TypeError, match="caused_by"):
        u.with_correlation("corr_1", None)
    assert u.to_dict() == snapshot


# --- HealthStatusUpdate ------------------------------------------------------------------


def test_health_status_update_fields() -> None:
    h = HealthStatusUpdate(
        "teleport.giantswarm.io-golem", "golem", True, True, ready_nodes=3, total_nodes=3
    )
    assert h.context_name == "teleport.giantswarm.io-golem"
    assert h.cluster_short_name == "golem"
    assert h.is_mc is True
    assert h.is_healthy is True
    assert (h.ready_nodes, h.total_nodes) == (3, 3)
    assert h.error is None
    assert h.caused_by == "health_check"
    assert EVT.fullmatch(h.event_id)
    assert CORR.fullmatch(h.correlation_id)
    assert h.timestamp > 0
    w = HealthStatusUpdate(
        "ctx", "wc1", False, False, ready_nodes=1, total_nodes=3, error="node down"
    )
    assert w.is_mc is False and w.is_healthy is False and w.error == "node down"


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "param"),
    [
        (("", "c", True, True), {}, ValueError, "context_name"),
        (("ctx", 1, True, True), {}, TypeError, "cluster_short_name"),
        (("ctx", "c", "yes", True), {}, TypeError, "is_mc"),
        (("ctx", "c", True, None), {}, TypeError, "is_healthy"),
        (("ctx", "c", True, True), {"ready_nodes": -1}, ValueError, "ready_nodes"),
        (("ctx", "c", True, True), {"ready_nodes": 4, "total_nodes": 3}, ValueError, "ready_nodes"),
    ],
)
def test_health_status_update_bad_input(
    args: tuple[object, ...], kwargs: dict[str, object], exc: type, param: str
) -> None:
    with pytest.raises(exc, match=param):
        HealthStatusUpdate(*args, **kwargs)  # type: ignore[arg-type]


# --- ServiceStateSnapshot ----------------------------------------------------------------


def test_snapshot_carries_the_update_fields_and_is_immutable() -> None:
    store = StateStore()
    u = update("svc", ServiceState.RUNNING, proxy_port=80, pid=9, caused_by="user", timestamp=123.0)
    store.set_service_state(u)
    s = store.get_service_state("svc")
    assert s is not None
    assert s.label == "svc"
    assert s.source_type is ServiceType.PORT_FORWARD
    assert s.state is ServiceState.RUNNING
    assert s.is_ready is True
    assert (s.proxy_port, s.pid) == (80, 9)
    assert s.last_updated == 123.0
    assert s.event_id == u.event_id
    assert s.correlation_id == u.correlation_id
    assert s.caused_by == "user"
    assert s.parent_id is None
    assert s.to_dict()["label"] == "svc"
    with pytest.raises(AttributeError):
        s.state = ServiceState.FAILED  # type: ignore[misc]
    assert s == store.get_service_state("svc")
    assert "svc" in repr(s)


def test_label_length_boundary_and_unicode() -> None:
    store = StateStore()
    long_ok = "é" * 1000  # counted in characters, not bytes
    store.set_service_state(update(long_ok))
    assert store.get_service_state(long_ok) is not None
    with pytest.raises(ValueError, match="source_label"):
        update("x" * 1001)
    u = update("сервис-🚀")
    store.set_service_state(u)
    assert store.get_service_state("сервис-🚀").event_id == u.event_id  # type: ignore[union-attr]
    assert len(store) == 2
