"""Events: the five kinds, their types/severities/sources/causes/text, copies, pickling,
pattern matching, read-only metadata, custom types and user subclasses."""

from __future__ import annotations

import copy
import pickle
import re
from typing import Any

import pytest
from tb_support import state_event

from tracebus import (
    DependencyEvent,
    Event,
    EventBus,
    EventType,
    HealthEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    Severity,
    SystemEvent,
    UserActionEvent,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
    register_event_type,
    registered_event_types,
)

S = ServiceState
T = EventType

# --- ServiceStateEvent ---------------------------------------------------------------------

STATE_RULES = [
    (S.STARTING, T.SERVICE_STARTING, Severity.DEBUG),
    (S.RUNNING, T.SERVICE_RUNNING, Severity.INFO),
    (S.STOPPING, T.SERVICE_STOPPING, Severity.DEBUG),
    (S.STOPPED, T.SERVICE_STOPPED, Severity.INFO),
    (S.FAILED, T.SERVICE_FAILED, Severity.ERROR),
    (S.RETRYING, T.SERVICE_RETRYING, Severity.WARN),
]


@pytest.mark.parametrize(("new", "etype", "sev"), STATE_RULES)
def test_service_state_event_type_and_severity_follow_new_state(
    new: ServiceState, etype: EventType, sev: Severity
) -> None:
    e = state_event("test-pf", S.UNKNOWN, new)
    assert e.type is etype
    assert e.severity is sev
    assert e.source == "test-pf"
    assert e.caused_by == "unknown"
    assert e.is_ready is (new is S.RUNNING)


def test_service_state_event_fields_and_text() -> None:
    e = ServiceStateEvent(
        ServiceType.PORT_FORWARD,
        "test-pf",
        S.STARTING,
        S.FAILED,
        error="connection failed",
        proxy_port=8080,
        pid=77,
    )
    assert e.service_type is ServiceType.PORT_FORWARD
    assert (e.old_state, e.new_state) == (S.STARTING, S.FAILED)
    assert e.error == "connection failed"
    assert (e.proxy_port, e.pid) == (8080, 77)
    assert str(e) == "test-pf (PortForward) Starting → Failed (error: connection failed)"
    assert str(state_event("a", S.STARTING, S.RUNNING)) == "a (PortForward) Starting → Running"
    assert re.fullmatch(r"evt_[0-9a-f]{16}", e.event_id)
    assert re.fullmatch(r"corr_[0-9a-f]{16}", e.correlation_id)
    assert e.parent_id is None
    assert "ServiceStateEvent" in repr(e) and e.event_id in repr(e)


def test_with_error_is_consistent() -> None:
    e = state_event("test-pf", S.STARTING, S.RUNNING, metadata={"k": 1})
    f = e.with_error("connection failed")
    assert isinstance(f, ServiceStateEvent)
    assert f.new_state is S.FAILED
    assert f.type is T.SERVICE_FAILED  # the reference left service.running here
    assert f.severity is Severity.ERROR
    assert f.is_ready is False
    assert f.error == "connection failed"
    assert f.old_state is S.STARTING
    assert f.correlation_id == e.correlation_id
    assert f.event_id != e.event_id
    assert dict(f.metadata) == {"k": 1}
    assert str(f) == "test-pf (PortForward) Starting → Failed (error: connection failed)"
    # The original is untouched.
    assert (e.new_state, e.type, e.is_ready, e.error) == (S.RUNNING, T.SERVICE_RUNNING, True, None)


def test_with_error_accepts_exceptions_and_empty_means_no_error() -> None:
    e = state_event()
    assert e.with_error(OSError("refused")).error == "refused"
    same = e.with_error("")
    assert same.new_state is S.RUNNING and same.error is None
    with pytest.raises(TypeError, match="err"):
        e.with_error(42)


def test_from_update_carries_timestamp_and_ids() -> None:
    u = ManagedServiceUpdate(
        "PortForward",
        "pf",
        "Failed",
        error_detail="x",
        timestamp=1000.0,
        correlation_id="corr_00000000000000aa",
        caused_by="user",
        parent_id="evt_00000000000000bb",
        pid=5,
    )
    e = ServiceStateEvent.from_update(u, S.RUNNING)
    assert (e.old_state, e.new_state, e.type, e.severity) == (
        S.RUNNING,
        S.FAILED,
        T.SERVICE_FAILED,
        Severity.ERROR,
    )
    assert e.timestamp == 1000.0
    assert e.event_id == u.event_id
    assert (e.correlation_id, e.caused_by, e.parent_id) == (u.correlation_id, "user", u.parent_id)
    assert (e.error, e.pid, e.is_ready) == ("x", 5, False)
    with pytest.raises(TypeError, match="update"):
        ServiceStateEvent.from_update("nope", S.RUNNING)  # type: ignore[arg-type]


# --- HealthEvent ---------------------------------------------------------------------------


def test_health_event_healthy() -> None:
    h = HealthEvent("teleport-golem", "golem", True, True, 3, 3)
    assert h.type is T.HEALTH_CHECK
    assert h.severity is Severity.INFO
    assert h.source == "health-monitor"
    assert h.caused_by == "health_check"
    assert h.recovered is False
    assert str(h) == "MC golem healthy (3/3 nodes)"
    assert (h.context_name, h.cluster_short_name, h.is_mc, h.is_healthy) == (
        "teleport-golem",
        "golem",
        True,
        True,
    )
    assert (h.ready_nodes, h.total_nodes, h.error) == (3, 3, None)


def test_health_event_unhealthy_and_recovery() -> None:
    h = HealthEvent("ctx", "wc1", False, False, 1, 3, "node down")
    assert h.type is T.HEALTH_FAILURE
    assert h.severity is Severity.ERROR
    assert str(h) == "WC wc1 unhealthy (1/3 nodes) (error: node down)"
    r = HealthEvent("ctx", "golem", True, True, 3, 3, recovered=True)
    assert r.type is T.HEALTH_RECOVERY
    assert r.severity is Severity.INFO
    assert r.recovered is True
    assert str(r) == "MC golem recovered (3/3 nodes)"
    with pytest.raises(ValueError, match="recovered"):
        HealthEvent("ctx", "golem", True, False, recovered=True)


def test_health_event_from_update() -> None:
    u = HealthStatusUpdate("ctx", "golem", True, True, ready_nodes=3, total_nodes=3, timestamp=50.0)
    h = HealthEvent.from_update(u)
    assert str(h) == "MC golem healthy (3/3 nodes)"
    assert h.timestamp == 50.0
    assert h.event_id == u.event_id and h.correlation_id == u.correlation_id
    assert HealthEvent.from_update(u, recovered=True).type is T.HEALTH_RECOVERY
    bad = HealthStatusUpdate("ctx", "golem", True, False)
    # recovered only applies to a healthy cluster
    assert HealthEvent.from_update(bad, recovered=True).type is T.HEALTH_FAILURE


# --- DependencyEvent -----------------------------------------------------------------------


def test_dependency_event_cascades() -> None:
    d = DependencyEvent("k8s-mc", ServiceType.KUBE_OPERATION, ["pf-1", "mcp-1"], "stop")
    assert d.type is T.CASCADE_STOP
    assert d.severity is Severity.INFO
    assert d.source == "k8s-mc"
    assert d.caused_by == "dependency_change"
    assert d.affected == ("pf-1", "mcp-1")
    assert d.action == "stop" and d.cascade is True
    assert d.dependency_type is ServiceType.KUBE_OPERATION
    assert str(d) == "stop cascade from k8s-mc affecting 2 services"
    s = DependencyEvent("k8s-mc", ServiceType.KUBE_OPERATION, ("pf-1",), "start")
    assert s.type is T.CASCADE_START
    assert str(s) == "start cascade from k8s-mc affecting 1 service"


def test_dependency_start_and_stop_exist() -> None:
    stop = DependencyEvent("db", "Database", ["api"], "stop", cascade=False)
    start = DependencyEvent("db", "Database", ["api"], "start", cascade=False)
    assert stop.type is T.DEPENDENCY_STOP
    assert start.type is T.DEPENDENCY_START
    assert str(stop) == "stop dependency from db affecting 1 service"


def test_dependency_event_bad_input() -> None:
    with pytest.raises(ValueError, match="action"):
        DependencyEvent("k8s", "KubeOperation", [], "restart")
    with pytest.raises(TypeError, match="affected"):
        DependencyEvent("k8s", "KubeOperation", "pf-1", "stop")
    with pytest.raises(TypeError, match="affected"):
        DependencyEvent("k8s", "KubeOperation", 5, "stop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="affected"):
        DependencyEvent("k8s", "KubeOperation", ["ok", ""], "stop")


# --- UserActionEvent / SystemEvent ---------------------------------------------------------


def test_user_action_event() -> None:
    u = UserActionEvent("restart", ServiceType.PORT_FORWARD, "test-pf")
    assert u.type is T.USER_ACTION
    assert u.severity is Severity.INFO
    assert u.source == "user"
    assert u.caused_by == "user_action"
    assert (u.action, u.target_type, u.target_name) == (
        "restart",
        ServiceType.PORT_FORWARD,
        "test-pf",
    )
    assert str(u) == "User restart PortForward test-pf"
    assert UserActionEvent("stop", "MCPServer", "m", source="tui").source == "tui"


@pytest.mark.parametrize(
    ("action", "etype", "sev"),
    [
        ("startup", T.SYSTEM_STARTUP, Severity.INFO),
        ("shutdown", T.SYSTEM_SHUTDOWN, Severity.WARN),
        ("config_change", T.CONFIG_CHANGE, Severity.INFO),
        ("error", T.SYSTEM_ERROR, Severity.ERROR),
    ],
)
def test_system_event_types_follow_action(action: str, etype: EventType, sev: Severity) -> None:
    e = SystemEvent("orchestrator", action, "details here")
    assert e.type is etype
    assert e.severity is sev
    assert e.source == "orchestrator"
    assert e.component == "orchestrator"
    assert e.caused_by == "system_operation"
    assert e.details == "details here"


def test_system_event_text_and_bad_action() -> None:
    # The reference's text forms: component, action, then the details after a colon.
    assert str(SystemEvent("tui", "startup", "UI initialized")) == "tui startup: UI initialized"
    assert str(SystemEvent("orchestrator", "shutdown")) == "orchestrator shutdown"
    assert str(SystemEvent("core", "config_change", "reload")) == "core config_change: reload"
    with pytest.raises(ValueError, match="action"):
        SystemEvent("core", "explode")


# --- the Event base ------------------------------------------------------------------------


def test_base_event_defaults() -> None:
    e = Event(T.HEALTH_CHECK, "probe")
    assert e.type is T.HEALTH_CHECK
    assert e.severity is Severity.INFO
    assert e.caused_by == "unknown"
    assert dict(e.metadata) == {}
    assert str(e) == "[health.check] probe"
    h = e.header_dict()
    assert h["type"] == "health.check" and h["source"] == "probe" and h["event_id"] == e.event_id


def test_events_are_immutable() -> None:
    e = state_event()
    for attr, value in [
        ("source", "x"),
        ("type", T.SERVICE_FAILED),
        ("severity", Severity.FATAL),
        ("new_state", S.FAILED),
    ]:
        with pytest.raises(AttributeError):
            setattr(e, attr, value)
    with pytest.raises(AttributeError):
        e.anything = 1  # type: ignore[attr-defined]


def test_metadata_is_read_only_and_copied_in() -> None:
    src = {"attempt": 1}
    e = state_event(metadata=src)
    src["attempt"] = 99  # the event took its own copy
    assert e.metadata["attempt"] == 1
    with pytest.raises(TypeError):
        e.metadata["attempt"] = 2  # type: ignore[index]
    with pytest.raises(TypeError, match="metadata"):
        state_event(metadata=[1, 2])
    with pytest.raises(TypeError, match="metadata key"):
        state_event(metadata={1: "x"})


def test_with_metadata_and_with_correlation_return_copies() -> None:
    e = state_event(metadata={"a": 1})
    m = e.with_metadata("b", 2)
    assert isinstance(m, ServiceStateEvent)
    assert dict(m.metadata) == {"a": 1, "b": 2}
    assert dict(e.metadata) == {"a": 1}
    assert m.event_id != e.event_id
    assert (m.type, m.source, m.correlation_id, m.new_state) == (
        e.type,
        e.source,
        e.correlation_id,
        e.new_state,
    )
    c = e.with_correlation("corr_00000000000000cc", "user_action", "evt_00000000000000dd")
    assert (c.correlation_id, c.caused_by, c.parent_id) == (
        "corr_00000000000000cc",
        "user_action",
        "evt_00000000000000dd",
    )
    assert c.event_id != e.event_id
    assert dict(c.metadata) == {"a": 1}
    assert e.correlation_id != "corr_00000000000000cc"
    assert e.with_correlation("corr_00000000000000cc", "x").parent_id is None
    with pytest.raises(TypeError, match="key"):
        e.with_metadata(1, 2)
    with pytest.raises(ValueError, match="correlation_id"):
        e.with_correlation("", "x")


def all_kinds() -> list[Event]:
    return [
        Event(T.CONFIG_CHANGE, "cfg", severity=Severity.WARN, metadata={"m": 1}),
        state_event("pf", S.STARTING, S.FAILED, error="boom", proxy_port=1, pid=2),
        HealthEvent("ctx", "golem", True, True, 3, 3, recovered=True),
        HealthEvent("ctx", "wc", False, False, 0, 2, "down"),
        DependencyEvent("k8s-mc", ServiceType.KUBE_OPERATION, ["a", "b"], "stop"),
        DependencyEvent("db", "DB", ["a"], "start", cascade=False),
        UserActionEvent("restart", ServiceType.PORT_FORWARD, "test-pf", source="tui"),
        SystemEvent("core", "shutdown", "bye"),
    ]


def same_event(a: Any, b: Any, same_id: bool = True) -> None:
    assert type(a) is type(b)
    ha, hb = a.header_dict(), b.header_dict()
    if not same_id:
        ha.pop("event_id")
        hb.pop("event_id")
    assert ha == hb
    assert str(a) == str(b)
    assert dict(a.metadata) == dict(b.metadata)
    for name in getattr(type(a), "__match_args__", ()):
        assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("event", all_kinds(), ids=lambda e: f"{type(e).__name__}-{e.type}")
def test_pickle_and_copy_round_trip(event: Event) -> None:
    same_event(pickle.loads(pickle.dumps(event)), event)
    same_event(copy.copy(event), event)
    same_event(copy.deepcopy(event), event)
    same_event(event.with_metadata("x", 1), event.with_metadata("x", 1), same_id=False)
    m = event.with_metadata("x", 1)
    assert m.type == event.type and str(m) == str(event)


def test_pattern_matching() -> None:
    def describe(e: Event) -> str:
        match e:
            case ServiceStateEvent(_, label, _, ServiceState.FAILED):
                return f"failed:{label}"
            case ServiceStateEvent(service_type=ServiceType.PORT_FORWARD, source=label):
                return f"pf:{label}"
            case HealthEvent(_, cluster, True, False):
                return f"mc-down:{cluster}"
            case DependencyEvent(source, _, affected, "stop"):
                return f"stop:{source}:{len(affected)}"
            case UserActionEvent("restart", _, target):
                return f"restart:{target}"
            case SystemEvent(component, "shutdown"):
                return f"shutdown:{component}"
            case Event(EventType.CONFIG_CHANGE, source):
                return f"config:{source}"
            case _:
                return "other"

    assert describe(state_event("x", S.RUNNING, S.FAILED)) == "failed:x"
    assert describe(state_event("y")) == "pf:y"
    assert describe(HealthEvent("c", "golem", True, False)) == "mc-down:golem"
    assert describe(DependencyEvent("k8s", "KubeOperation", ["a", "b"], "stop")) == "stop:k8s:2"
    assert describe(UserActionEvent("restart", "PortForward", "pf")) == "restart:pf"
    assert describe(SystemEvent("core", "shutdown")) == "shutdown:core"
    assert describe(Event(T.CONFIG_CHANGE, "cfg")) == "config:cfg"
    assert describe(SystemEvent("core", "startup")) == "other"


# --- custom types and subclasses -----------------------------------------------------------


def test_register_event_type() -> None:
    name = register_event_type("testsuite.deploy")
    assert name == "testsuite.deploy"
    assert register_event_type("testsuite.deploy") == name  # idempotent
    assert "testsuite.deploy" in registered_event_types()
    reg = registered_event_types()
    assert reg[: len(EventType)] == list(EventType)
    e = Event("testsuite.deploy", "deployer", severity=Severity.WARN)
    assert e.type == "testsuite.deploy"
    assert e.severity is Severity.WARN


@pytest.mark.parametrize(
    ("name", "exc"),
    [
        ("", ValueError),
        ("has space", ValueError),
        ("nul\x00", ValueError),
        (5, TypeError),
        (None, TypeError),
    ],
)
def test_register_event_type_bad_names(name: object, exc: type) -> None:
    before = registered_event_types()
    with pytest.raises(exc, match="name"):
        register_event_type(name)  # type: ignore[arg-type]
    assert registered_event_types() == before


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="type"):
        Event("testsuite.never-registered", "x")
    with pytest.raises(TypeError, match="type"):
        Event(5, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"source": ""}, ValueError, "source"),
        ({"source": "a\x00"}, ValueError, "source"),
        ({"source": 3}, TypeError, "source"),
        ({"severity": "loud"}, ValueError, "severity"),
        ({"timestamp": -5.0}, ValueError, "timestamp"),
        ({"event_id": "evt_nothex"}, ValueError, "event_id"),
        ({"correlation_id": ""}, ValueError, "correlation_id"),
    ],
)
def test_event_bad_input(kwargs: dict[str, Any], exc: type, param: str) -> None:
    args = {"source": "ok", **kwargs}
    source = args.pop("source")
    with pytest.raises(exc, match=param):
        Event(T.HEALTH_CHECK, source, **args)


@pytest.mark.parametrize(
    ("call", "exc", "param"),
    [
        (
            lambda: ServiceStateEvent("PortForward", "pf", "Bogus", "Running"),
            ValueError,
            "old_state",
        ),
        (lambda: ServiceStateEvent("PortForward", "pf", "Running", 1), TypeError, "new_state"),
        (lambda: ServiceStateEvent("PortForward", "", "Running", "Running"), ValueError, "source"),
        (
            lambda: ServiceStateEvent("PortForward", "pf", "Running", "Running", proxy_port=-1),
            ValueError,
            "proxy_port",
        ),
        (
            lambda: ServiceStateEvent("PortForward", "pf", "Running", "Running", pid=-1),
            ValueError,
            "pid",
        ),
        (lambda: HealthEvent("ctx", "c", "yes", True), TypeError, "is_mc"),
        (lambda: HealthEvent("ctx", "c", True, True, 5, 2), ValueError, "ready_nodes"),
        (lambda: UserActionEvent("", "PortForward", "pf"), ValueError, "action"),
        (lambda: UserActionEvent("restart", "PortForward", None), TypeError, "target_name"),
        (lambda: SystemEvent("", "startup"), ValueError, "component"),
    ],
)
def test_kind_bad_input(call: Any, exc: type, param: str) -> None:
    with pytest.raises(exc, match=param):
        call()


register_event_type("testsuite.rollout")


class Rollout(Event):
    """A user-defined event kind."""

    def __new__(cls, version: str, **kw: Any) -> Rollout:
        kw.setdefault("severity", Severity.WARN)
        return super().__new__(cls, "testsuite.rollout", "deployer", **kw)

    def __init__(self, version: str, **kw: Any) -> None:
        self.version = version

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        _, kw = super().__getnewargs_ex__()
        return (self.version,), kw

    def __str__(self) -> str:
        return f"rollout {self.version}"


class Tagged(Event):
    """A subclass that keeps Event's constructor."""


def test_user_subclass_behaves_like_builtins() -> None:
    with_scope_free = Rollout("1.2.3")
    assert with_scope_free.type == "testsuite.rollout"
    assert with_scope_free.severity is Severity.WARN
    assert with_scope_free.version == "1.2.3"
    assert str(with_scope_free) == "rollout 1.2.3"
    m = with_scope_free.with_metadata("env", "prod")
    assert isinstance(m, Rollout) and m.version == "1.2.3" and m.metadata["env"] == "prod"
    p = pickle.loads(pickle.dumps(with_scope_free))
    assert (
        isinstance(p, Rollout) and p.version == "1.2.3" and p.event_id == with_scope_free.event_id
    )
    t = Tagged(T.USER_ACTION, "ui")
    t.note = "kept"  # type: ignore[attr-defined]
    c = t.with_correlation("corr_00000000000000ee", "x")
    assert isinstance(c, Tagged) and c.note == "kept"  # type: ignore[attr-defined]
    assert "Tagged" in repr(t)


def test_user_subclasses_and_custom_types_route_like_builtins() -> None:
    bus = EventBus()
    try:
        by_type: list[Event] = []
        by_sev: list[Event] = []
        by_src: list[Event] = []
        bus.subscribe(filter_by_type("testsuite.rollout"), by_type.append)
        bus.subscribe(filter_by_severity(Severity.WARN), by_sev.append)
        bus.subscribe(filter_by_source("ui"), by_src.append)
        r = Rollout("2.0")
        t = Tagged(T.USER_ACTION, "ui")
        bus.publish(r)
        bus.publish(t)
        bus.publish(state_event())
        assert by_type == [r] and by_type[0] is r  # the same object, subclass intact
        assert by_sev == [r]
        assert by_src == [t]
        assert bus.get_metrics()["events_by_type"]["testsuite.rollout"] == 1
    finally:
        bus.close()


# --- the reference's behaviours: HealthEvent.with_error, Unknown severity, to_dict ---------


def test_health_event_with_error_is_unhealthy_error_failure() -> None:
    ok = HealthEvent("ctx", "wc", False, True, 3, 3, recovered=True)
    bad = ok.with_error("api server unreachable")
    assert bad.error == "api server unreachable"
    assert bad.is_healthy is False and bad.recovered is False
    assert bad.severity is Severity.ERROR
    assert bad.type is EventType.HEALTH_FAILURE
    assert bad.event_id != ok.event_id and bad.correlation_id == ok.correlation_id
    assert type(bad) is HealthEvent
    assert ok.is_healthy and ok.severity is Severity.INFO  # the original is unchanged
    cleared = bad.with_error(None)
    assert cleared.error is None and cleared.is_healthy is False
    with pytest.raises(TypeError, match="err"):
        ok.with_error(42)  # type: ignore[arg-type]


def test_health_event_with_error_keeps_a_subclass() -> None:
    class Mine(HealthEvent):
        pass

    bad = Mine("ctx", "wc", True, True).with_error("x")
    assert type(bad) is Mine and not bad.is_healthy


def test_transition_into_unknown_has_severity_info() -> None:
    e = ServiceStateEvent(ServiceType.PORT_FORWARD, "pf", ServiceState.RUNNING, "Unknown")
    assert e.severity is Severity.INFO
    assert ServiceStateEvent("PortForward", "pf", "Stopped", "Starting").severity is Severity.DEBUG


def test_event_to_dict_like_updates_and_snapshots() -> None:
    e = ServiceStateEvent("PortForward", "pf", "Starting", "Running", proxy_port=8080)
    d = e.to_dict()
    assert d["type"] == "service.running" and d["source"] == "pf" and d["severity"] == "info"
    assert d["event_id"] == e.event_id and d["correlation_id"] == e.correlation_id
    assert d["service_type"] == "PortForward" and d["new_state"] == "Running"
    assert d["proxy_port"] == 8080 and d["error"] is None
    base = Event("user.action", "ui", metadata={"k": 1}).to_dict()
    assert base["type"] == "user.action" and base["metadata"] == {"k": 1}
    s = SystemEvent("tui", "startup", "UI initialized").to_dict()
    assert (s["component"], s["action"], s["details"]) == ("tui", "startup", "UI initialized")
    dep = DependencyEvent("pf", "PortForward", ["a", "b"], "stop").to_dict()
    assert dep["affected"] == ["a", "b"]
    import json

    json.dumps(d)  # JSON-friendly


def test_system_event_anomaly_action() -> None:
    e = SystemEvent("performance-monitor", "anomaly", "rate up", metadata={"z": 5.0})
    assert e.type == "system.anomaly" and e.severity is Severity.WARN
    assert e.action == "anomaly"
    assert str(e) == "performance-monitor anomaly: rate up"
    assert pickle.loads(pickle.dumps(e)).type == "system.anomaly"
