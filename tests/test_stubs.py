"""The typed surface: the hand-written ``_core.pyi`` matches the native module, the wheel
ships it, and every script in ``examples/`` runs and prints what it promises.

(``python -m mypy.stubtest tracebus._core`` in ``.ci/run`` checks the stub's types; these
tests check names and parameters without needing mypy.)
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import tracebus
from tracebus import _core

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "python" / "tracebus" / "_core.pyi"
EXAMPLES = ROOT / "examples"

# Dunders every class or module has; the stub need not repeat them.
_IMPLICIT = {
    "__doc__",
    "__module__",
    "__new__",
    "__repr__",
    "__str__",
    "__weakref__",
    "__dict__",
    "__hash__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__match_args__",
    "__slotnames__",  # cached on the class by copyreg once an instance is pickled
}


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_top_level() -> dict[str, ast.stmt]:
    """The stub's names, without its private typing helpers (``_Strategy``, protocols ...)."""
    out: dict[str, ast.stmt] = {}
    for node in _stub_tree().body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            name = node.name
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        else:
            continue
        if _is_typing_helper(name, node):
            continue
        out[name] = node
    return out


def _is_typing_helper(name: str, node: ast.stmt) -> bool:
    if not name.startswith("_") or name.startswith("__"):
        return False
    if isinstance(node, ast.AnnAssign):  # X: TypeAlias = ...
        return True
    if isinstance(node, ast.ClassDef):  # a Protocol used in annotations only
        return any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases)
    return False


def _params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    return [n for n in names if n not in ("self", "cls")]


def _runtime_params(obj: object) -> list[str]:
    out = []
    for p in inspect.signature(obj).parameters.values():  # type: ignore[arg-type]
        if p.name in ("self", "cls"):
            continue
        out.append("*" + p.name if p.kind is p.VAR_POSITIONAL else p.name)
    return out


def test_wheel_ships_stub_and_py_typed() -> None:
    pkg = Path(tracebus.__file__).parent
    assert (pkg / "_core.pyi").is_file()
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_core.pyi").read_text(encoding="utf-8") == STUB.read_text(encoding="utf-8"), (
        "the installed stub differs from python/tracebus/_core.pyi: reinstall (pip install .)"
    )


def test_stub_all_matches_runtime_all() -> None:
    stub_all: list[str] | None = None
    for node in _stub_tree().body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            stub_all = ast.literal_eval(node.value)
    assert stub_all is not None
    assert sorted(stub_all) == sorted(_core.__all__)


def test_every_runtime_name_is_in_the_stub_and_back() -> None:
    stub = _stub_top_level()
    runtime = {n for n in dir(_core) if not n.startswith("__")} | {"__version__"}
    assert sorted(runtime - set(stub)) == []
    assert sorted(set(stub) - runtime) == []


def test_function_parameters_match() -> None:
    for name, node in _stub_top_level().items():
        if isinstance(node, ast.FunctionDef):
            assert _params(node) == _runtime_params(getattr(_core, name)), name


def _class_members(node: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}


def _is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def test_class_members_match() -> None:
    stub_classes = {n: c for n, c in _stub_top_level().items() if isinstance(c, ast.ClassDef)}
    for name, node in stub_classes.items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_core, name)
        members = _class_members(node)
        if issubclass(cls, BaseException):
            assert members == {}, name
            continue
        inherited = {
            m
            for base in node.bases
            if isinstance(base, ast.Name) and base.id in stub_classes
            for m in _class_members(stub_classes[base.id])
        }
        runtime = {m for m in vars(cls) if m not in _IMPLICIT}
        assert sorted(runtime - set(members) - inherited) == [], name
        for m, fn in members.items():
            assert hasattr(cls, m), f"{name}.{m} is in the stub but not at runtime"
            attr = inspect.getattr_static(cls, m)
            is_getter = type(attr).__name__ == "getset_descriptor"
            assert _is_property(fn) == is_getter, f"{name}.{m}: property/method mismatch"
            if m == "__new__":
                assert _params(fn) == _runtime_params(cls), f"{name}()"
            elif not is_getter and not m.startswith("__"):
                assert _params(fn) == _runtime_params(getattr(cls, m)), f"{name}.{m}"


def test_stub_base_classes_match() -> None:
    for name, node in _stub_top_level().items():
        if isinstance(node, ast.ClassDef):
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            runtime_base = getattr(_core, name).__base__.__name__
            assert bases == ([] if runtime_base == "object" else [runtime_base]), name


# Examples ----------------------------------------------------------------------------


def run_example(name: str) -> list[str]:
    """Runs ``examples/<name>`` in a subprocess; returns its stdout lines."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


def test_every_example_is_tested() -> None:
    tested = {"quickstart.py", "filters.py", "async_handler.py", "channel_drain.py"}
    tested |= {"typed_api.py", "anomalies.py"}
    # The integrations' examples are run by tests/integrations/.
    tested |= {"logging_correlation.py", "prometheus_metrics.py", "otel_tracing.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


CORR = r"corr_[0-9a-f]{16}"


def test_quickstart() -> None:
    out = run_example("quickstart.py")
    assert out[:3] == [
        "state: pf-api Failed ready=False",
        "error: connection reset",
        "same correlation: True",
    ]
    assert re.fullmatch(rf"correlation {CORR} \(4 events\)", out[3])
    assert out[4:8] == [
        "● [service.starting] pf-api (PortForward) Unknown → Starting  (user_start)",
        "● [service.running] pf-api (PortForward) Starting → Running  (user_start)",
        "● [service.failed] pf-api (PortForward) Running → Failed (error: connection reset)"
        "  (user_start)",
        # The handler's restart is a child of the failure, caused by it.
        "  └─ [user.action] User restart PortForward pf-api  (service.failed)",
    ]
    assert out[8:] == ["published: 4", "delivered: 1"]


def test_filters() -> None:
    out = run_example("filters.py")
    assert len(out) == 12
    received: dict[str, list[str]] = {}
    for head, tail in zip(out[::2], out[1::2], strict=True):
        name = head[:20].strip()
        assert head[21:].startswith("Filter(")
        assert tail.strip().startswith("-> ")
        received[name] = tail.strip()[3:].split(", ")
    assert received == {
        "problems": [
            "service.failed@pf-db",
            "health.failure@health-monitor",
            "health.failure@health-monitor",
            "system.shutdown@orchestrator",
        ],
        "pf-db lifecycle": ["service.running@pf-db", "service.failed@pf-db"],
        "not health": [
            "service.running@pf-db",
            "service.failed@pf-db",
            "service.running@pf-web",
            "system.shutdown@orchestrator",
        ],
        "failed or shutdown": ["service.failed@pf-db", "system.shutdown@orchestrator"],
        "one operation": ["service.failed@pf-db", "health.failure@health-monitor"],
        "workload health": ["health.failure@health-monitor"],
    }
    reprs = {o[:20].strip(): o[21:] for o in out[::2]}
    assert reprs["problems"] == "Filter(severity >= warn)"
    assert re.fullmatch(rf'Filter\(correlation == "{CORR}"\)', reprs["one operation"])
    assert reprs["workload health"].endswith("& predicate))")


def test_async_handler() -> None:
    out = run_example("async_handler.py")
    assert out[:5] == [
        "mode: async",
        "handled: MC mc healthy (3/3 nodes)",
        "handled: WC wc unhealthy (1/2 nodes)",
        "handled: WC wc recovered (2/2 nodes)",
        "alert: alerting error: wc is down caused_by=health.failure",
    ]
    assert re.fullmatch(rf"correlation {CORR} \(4 events\)", out[5])
    assert out[6:] == [
        "● [health.check] MC mc healthy (3/3 nodes)  (health_round)",
        "● [health.failure] WC wc unhealthy (1/2 nodes)  (health_round)",
        # Published by the async handler after an await: still a child of the failure.
        "  └─ [system.error] alerting error: wc is down  (health.failure)",
        "● [health.recovery] WC wc recovered (2/2 nodes)  (health_round)",
    ]


def test_channel_drain() -> None:
    out = run_example("channel_drain.py")
    assert out == [
        # Capacity 4, evict-oldest by priority: the failure survives 9 less severe events.
        "drained 4: pf-2:Failed, pf-7:Running, pf-8:Running, pf-9:Running",
        "sent=10 delivered=4 dropped=0 evicted=6 buffered=0",
        "every event accounted for: True",
        "subscriptions after close: 0",
        "#0 pf-db: Unknown -> Starting",
        "#1 pf-db: Starting -> Running",
        "gap: 1 change(s) lost before #3",
        "#3 pf-db: Stopping -> Stopped",
        "dropped by the subscription: 1",
    ]


def test_typed_api() -> None:
    out = run_example("typed_api.py")
    assert out[0] == "waited for: WC wc healthy (2/2 nodes)"
    assert "store change: pf Unknown -> Running" in out
    assert "channel: ['pf (PortForward) Starting → Running']" in out
    assert "published=4 handler_errors=0" in out
    assert "new root: True" in out
    assert "remote: corr_4bf92f3577b34da6a3ce929d0e0e4736 parent=evt_00f067aa0ba902b7" in out
    assert out[-7:] == [
        "state: pf Starting -> Running",
        "any: service.running",
        "any: health.check",
        "first health: wc healthy=True",
        "any: health.failure",
        "any: system.startup",
        "async system: orchestrator startup: 3 services",
    ]


def test_anomalies() -> None:
    out = run_example("anomalies.py")
    assert out == [
        "warn rate.source.pf-api: 20.0/s vs baseline 0.0/s (z=+200.0)",
        "warn rate.type.service.failed: 20.0/s vs baseline 0.0/s (z=+200.0)",
    ]
