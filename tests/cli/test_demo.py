"""``tracebus demo`` in plain mode: short, seeded runs whose output and store are checked."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tracebus import EventType, ServiceState, SqliteEventStore, rebuild_state
from tracebus.cli.demo import DemoConfig, DemoEnvironment, build_environment, run_demo


def run(tmp_path: Path, **kw: object) -> tuple[str, Path]:
    tmp_path.mkdir(exist_ok=True)
    db = tmp_path / "demo.db"
    settings: dict[str, object] = {"seed": 1, "speed": 0, "db": str(db), **kw}
    cfg = DemoConfig(**settings)  # type: ignore[arg-type]
    out = io.StringIO()
    assert run_demo(cfg, out, live=False) == 0
    return out.getvalue(), db


def section(text: str, title: str) -> str:
    start = text.index(f"== {title}")
    end = text.find("\n== ", start + 1)
    return text[start : end if end >= 0 else None]


def test_plain_demo_shows_cascade_trees_and_final_states(tmp_path: Path) -> None:
    out, db = run(tmp_path, duration=20)
    cascades = section(out, "cascades")
    # the four scripted cascades, each one correlation tree with its cause at the root
    assert re.search(r"^startup: correlation corr_\w+ \(\d+ events\)$", cascades, re.M)
    assert "  ● [system.startup] tracebus-demo startup: 12 services" in cascades
    assert re.search(r"^cluster alpha fails: correlation", cascades, re.M)
    assert "  ● [health.failure] WC alpha unhealthy" in cascades
    assert re.search(r"^cluster alpha recovers: correlation", cascades, re.M)
    assert "  ● [health.recovery] WC alpha recovered" in cascades
    assert re.search(r"^user restarts pf-\w+-\w+: correlation", cascades, re.M)
    assert "  ● [user.action] User restart PortForward pf-" in cascades
    # cause → effect nesting: a port-forward failure stops its MCP server in a cascade
    assert re.search(
        r"└─ \[service\.failed\] pf-alpha-(\w+) \(PortForward\) Running → Failed.*\n"
        r"\s+└─ \[cascade\.stop\] stop cascade from pf-alpha-\1 affecting 1 service\n"
        r"\s+└─ \[service\.stopping\] mcp-\1-alpha \(MCPServer\) Running → Stopping\n"
        r"\s+└─ \[service\.stopped\] mcp-\1-alpha \(MCPServer\) Stopping → Stopped",
        cascades,
    )
    assert "Failed → Retrying (error: retry 1/2)" in cascades
    assert re.search(
        r"└─ \[cascade\.start\] start cascade from k8s-golem affecting 3 services", cascades
    )
    final = section(out, "final state")
    assert "(12 services)" in final
    rows = [ln.split() for ln in final.splitlines()[2:] if ln.strip()]
    assert len(rows) == 12
    assert {r[2] for r in rows} == {"Running"}
    assert {r[1] for r in rows} == {"KubeOperation", "PortForward", "MCPServer"}
    assert all(r[3] == "yes" for r in rows)
    metrics = section(out, "metrics")
    assert "dropped 0, handler errors 0" in metrics
    assert re.search(
        r"performance monitor: [\d,]+ events/s, drop ratio 0\.000, score 100 \(healthy\)", metrics
    )
    assert "state rebuilt from the event store equals the live state: yes" in metrics
    assert f"to {db}" in metrics


def test_plain_demo_prints_one_line_per_event(tmp_path: Path) -> None:
    out, db = run(tmp_path, duration=12)
    lines = out[: out.index("\n== cascades")].strip().splitlines()
    assert all(
        re.match(r"^\s*\d+\.\d{3}s (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S+", ln) for ln in lines
    )
    # one line per stored event, in the stored order (causes before their effects)
    with SqliteEventStore(db) as s:
        stored = list(s.replay())
    assert len(lines) == len(stored)
    for ln, e in zip(lines, stored, strict=True):
        assert ln.split()[2] == str(e.type)
        assert ln.endswith(f"{e}  [{e.correlation_id}]")


def test_persisted_cascades_are_single_trees(tmp_path: Path) -> None:
    out, db = run(tmp_path, duration=20)
    corrs = re.findall(r"^[^\n]*: correlation (corr_[0-9a-f]+) \(\d+ events\)$", out, re.M)
    assert len(corrs) == 4
    roots = []
    with SqliteEventStore(db) as s:
        for c in corrs:
            t = s.trace(c)
            assert len(t.roots) == 1, t.render()
            roots.append(str(t.roots[0].event.type))
            # every event of the tree is in this correlation and its parent is in the tree
            ids = {e.event_id for e in t.events()}
            for e in t.events()[1:]:
                assert e.correlation_id == c
                assert e.parent_id in ids
        assert roots == ["system.startup", "health.failure", "health.recovery", "user.action"]
        state = rebuild_state(s)
    assert {str(x.state) for x in state.get_all_service_states().values()} == {"Running"}


def normalise(text: str) -> str:
    text = re.sub(r"(corr|evt)_[0-9a-f]{16}", r"\1_X", text)
    text = re.sub(r"\d+\.\d{3}s ", "T ", text)
    return re.sub(r"== metrics ==.*", "", text, flags=re.S)


def test_same_seed_same_story(tmp_path: Path) -> None:
    a, _ = run(tmp_path / "a", duration=16, services=20)
    b, _ = run(tmp_path / "b", duration=16, services=20)
    c, _ = run(tmp_path / "c", duration=16, services=20, seed=99)
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(c)


def test_db_accumulates_runs_and_rebuild_uses_this_run(tmp_path: Path) -> None:
    out1, _ = run(tmp_path, duration=10)
    out2, _ = run(tmp_path, duration=10)
    n1 = int(re.search(r"events persisted: (\d+)", out1).group(1))  # type: ignore[union-attr]
    assert f"(sequence {n1 + 1}.." in out2
    assert "equals the live state: yes" in out2


def test_scales_to_many_services(tmp_path: Path) -> None:
    out, _ = run(tmp_path, duration=10, services=1500)
    final = section(out, "final state")
    assert "(1500 services)" in final
    assert "1460 more (1500 Running)" in final
    assert "equals the live state: yes" in out
    assert "… " in section(out, "cascades")  # big trees are cut, with a pointer to `tracebus trace`


def test_environment_shape() -> None:
    import random

    clusters, services = build_environment(12, random.Random(0))
    assert [c.name for c in clusters] == ["golem", "alpha"]
    assert clusters[0].is_mc and not clusters[1].is_mc
    assert len(services) == 12
    for s in services.values():
        if s.type == "PortForward":
            assert services[s.depends_on].type == "KubeOperation"  # type: ignore[index]
        if s.type == "MCPServer":
            assert services[s.depends_on].type == "PortForward"  # type: ignore[index]
    _, big = build_environment(5000, random.Random(0))
    assert len(big) == 5000
    assert len({s.port for s in big.values() if s.port}) > 1000


def test_environment_uses_only_public_state(tmp_path: Path) -> None:
    env = DemoEnvironment(DemoConfig(seed=3, speed=0, db=str(tmp_path / "x.db")))
    env.subscribe_handlers()
    env.startup()
    assert all(env.state_of(label) == ServiceState.RUNNING for label in env.services)
    m = env.bus.get_metrics()
    assert m["events_by_type"][EventType.CASCADE_START] > 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"services": 2}, "services must be between 3"),
        ({"services": True}, "services must be an int"),
        ({"duration": 1}, "duration must be between 8"),
        ({"speed": -1}, "speed must be"),
        ({"speed": float("nan")}, "speed must be"),
    ],
)
def test_bad_config(kw: dict[str, object], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        DemoConfig(**kw).validate()  # type: ignore[arg-type]
