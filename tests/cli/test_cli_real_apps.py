"""Issue 15: the CLI on stores of real applications (custom types and classes, time
travel, JSON lines), through the installed ``tracebus`` console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tracebus as tb
from tracebus import ManagedServiceUpdate, ServiceStateEvent, SqliteEventStore

TRACEBUS = shutil.which("tracebus", path=os.path.dirname(sys.executable)) or "tracebus"

USER_MODULE = """
import tracebus as tb

tb.register_event_type("deploy.done")


class Note(tb.Event):
    pass  # a user's event class: fields are plain attributes
"""

WRITER = """
import sys
import tracebus as tb
from tracebus import SqliteEventStore
from usermod import Note

with SqliteEventStore(sys.argv[1]) as s:
    e = tb.Event("deploy.done", "ci", severity="warn", metadata={"version": "1.2"})
    s.append(e)
    n = Note("deploy.done", "notes", parent_id=e.event_id, correlation_id=e.correlation_id)
    n.text = "rolled out"
    s.append(n)
    print(e.correlation_id)
"""


def cli(
    *argv: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if env is None:
        full_env.pop("TRACEBUS_IMPORT", None)
    return subprocess.run(
        [TRACEBUS, *argv],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def app_store(tmp_path: Path) -> tuple[Path, str]:
    """A store written by a user program: a registered custom type and an Event subclass
    from the user's module (which the CLI does not import unless told)."""
    (tmp_path / "usermod.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "writer.py").write_text(textwrap.dedent(WRITER))
    db = tmp_path / "app.db"
    r = subprocess.run(
        [sys.executable, "writer.py", str(db)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return db, r.stdout.strip()


@pytest.mark.timeout(120)
def test_custom_events_everywhere_without_import(
    tmp_path: Path, app_store: tuple[Path, str]
) -> None:
    db, corr = app_store
    r = cli("replay", "--db", str(db), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "deploy.done" in lines[0] and "WARN" in lines[0]
    assert "notes" in lines[1] and "text=rolled out" in lines[1]
    r = cli(
        "replay", "--db", str(db), "--type", "deploy.done", "--severity", "WARNING", cwd=tmp_path
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stderr
    r = cli("trace", corr, "--db", str(db), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "● [deploy.done]" in r.stdout and "└─ [deploy.done]" in r.stdout
    r = cli("stats", "--db", str(db), "--by-type", cwd=tmp_path)
    assert r.returncode == 0 and "deploy.done: 2" in r.stdout, r.stderr
    r = cli(
        "watch", "--db", str(db), *"--since 0 --count 2 --plain --duration 20".split(), cwd=tmp_path
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr


@pytest.mark.timeout(120)
def test_import_decodes_user_classes(tmp_path: Path, app_store: tuple[Path, str]) -> None:
    db, _ = app_store
    for how in (["--import", "usermod"], []):
        env = {} if how else {"TRACEBUS_IMPORT": "usermod"}
        r = cli("replay", "--db", str(db), "--json", *how, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        assert rows[1]["class"] == "usermod:Note" and rows[1]["text"] == "rolled out"
    r = cli("replay", "--db", str(db), "--import", "no_such_module_xyz", cwd=tmp_path)
    assert r.returncode == 1 and "--import no_such_module_xyz" in r.stderr


@pytest.mark.timeout(120)
def test_json_lines_round_trip(tmp_path: Path, app_store: tuple[Path, str]) -> None:
    db, _ = app_store
    r = cli("replay", "--db", str(db), "--json", "--import", "usermod", cwd=tmp_path)
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    first = rows[0]
    header = "seq event_id type severity source timestamp correlation_id parent_id caused_by"
    assert set(header.split()) <= set(first)
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert first["metadata"] == {"version": "1.2"}
    other = tmp_path / "other.db"
    r2 = cli("import", "--db", str(other), "--import", "usermod", cwd=tmp_path, stdin=r.stdout)
    assert r2.returncode == 0, r2.stderr
    r3 = cli("replay", "--db", str(other), "--json", "--import", "usermod", cwd=tmp_path)
    assert r3.stdout == r.stdout


@pytest.mark.timeout(120)
def test_demo_store_round_trips_through_json(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    assert (
        cli(
            "demo", "--speed", "0", "--duration", "3", "--seed", "1", "--db", str(db), "--plain"
        ).returncode
        == 0
    )
    a = cli("replay", "--db", str(db), "--json")
    b = tmp_path / "b.db"
    assert cli("import", "--db", str(b), stdin=a.stdout).returncode == 0
    assert cli("replay", "--db", str(b), "--json").stdout == a.stdout
    with SqliteEventStore(db) as s1, SqliteEventStore(b) as s2:
        assert [tb.encode_event(e) for e in s1.replay()] == [
            tb.encode_event(e) for e in s2.replay()
        ]


def _history(db: Path) -> list[int]:
    """pf-1 starts, runs, fails; mcp-1 appears later. Returns the seqs."""
    t0 = 1_800_000_000.0
    seqs = []
    with SqliteEventStore(db) as s:
        for i, (label, old, new) in enumerate(
            [
                ("pf-1", "Unknown", "Starting"),
                ("pf-1", "Starting", "Running"),
                ("mcp-1", "Unknown", "Running"),
                ("pf-1", "Running", "Failed"),
            ]
        ):
            e = ServiceStateEvent("PortForward", label, old, new, timestamp=t0 + 60 * i)
            seqs.append(s.append(e))
    return seqs


def test_rebuild_state_until(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    seqs = _history(db)
    with SqliteEventStore(db) as s:
        assert s.rebuild_state(until=seqs[1]).get_service_state("pf-1").state == "Running"
        assert s.rebuild_state(until=seqs[1]).get_service_state("mcp-1") is None
        at = s.rebuild_state(until=1_800_000_000.0 + 150)
        assert set(at.get_all_service_states()) == {"pf-1", "mcp-1"}
        assert at.get_service_state("pf-1").state == "Running"
        assert s.rebuild_state().get_service_state("pf-1").state == "Failed"
        assert tb.rebuild_state(s, until=0).get_all_service_states() == {}
        with pytest.raises(TypeError, match="until must be"):
            s.rebuild_state(until="soon")  # type: ignore[arg-type]
    assert isinstance(ManagedServiceUpdate, type)


def test_state_and_diff_commands(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    seqs = _history(db)
    r = cli("state", "--db", str(db), "--at", str(seqs[1]))
    assert r.returncode == 0, r.stderr
    assert "pf-1" in r.stdout and "Running" in r.stdout and "mcp-1" not in r.stdout
    r = cli("state", "--db", str(db), "--at", "2027-01-15T08:02:30Z")
    assert "mcp-1" in r.stdout and "Failed" not in r.stdout, r.stdout
    r = cli("state", "--db", str(db), "--at", "-30s")  # before the last event (the failure)
    assert "Failed" not in r.stdout and "mcp-1" in r.stdout
    r = cli("state", "--db", str(db), "--at", "yesterday")
    assert r.returncode == 1 and "--at must be" in r.stderr
    r = cli("diff", "--db", str(db), "--from", str(seqs[1]), "--to", str(seqs[3]))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "+ mcp-1: added, Running" in out
    assert "~ pf-1: Running → Failed" in out
    assert f"seq {seqs[3]} " in out and "service.failed" in out


def test_trace_prefix_and_ambiguity(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    with SqliteEventStore(db) as s:
        s.append(tb.Event("health.check", "a", correlation_id="job-alpha-1"))
        s.append(tb.Event("health.check", "b", correlation_id="job-alpha-2"))
        s.append(tb.Event("health.check", "c", correlation_id="job-beta-1"))
    r = cli("trace", "job-b", "--db", str(db))
    assert r.returncode == 0 and "correlation job-beta-1" in r.stdout, r.stderr
    r = cli("trace", "job-alpha", "--db", str(db))
    assert r.returncode == 1
    assert "ambiguous" in r.stderr and "job-alpha-1" in r.stderr and "job-alpha-2" in r.stderr


def test_stats_times_are_iso(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _history(db)
    r = cli("stats", "--db", str(db))
    assert "first_timestamp: 2027-01-15T08:00:00.000Z" in r.stdout, r.stdout
    assert "duration: 3m 00.0s" in r.stdout


@pytest.mark.timeout(60)
def test_watch_waits_for_the_file(tmp_path: Path) -> None:
    db = tmp_path / "late.db"
    proc = subprocess.Popen(
        [TRACEBUS, "watch", "--db", str(db), *"--since 0 --count 1 --plain --duration 30".split()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert proc.poll() is None  # still waiting, not failed
    with SqliteEventStore(db) as s:
        s.append(tb.Event("health.check", "late"))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "late" in out and "waiting for" in err


@pytest.mark.timeout(60)
def test_demo_short_durations(tmp_path: Path) -> None:
    for d in ("0.5", "3"):
        db = tmp_path / f"short-{d}.db"
        r = cli("demo", "--speed", "0", "--duration", d, "--db", str(db), "--plain")
        assert r.returncode == 0, r.stderr
        assert "user restarts" in r.stdout and "cluster alpha recovers" in r.stdout
    r = cli("demo", "--help")
    assert "default 30" in r.stdout and "86400" in r.stdout


@pytest.mark.timeout(60)
def test_replay_follow_at_speed(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _history(db)  # events 60 s apart: at --speed 600 they arrive 0.1 s apart
    t = time.monotonic()
    r = cli(
        "watch",
        "--db",
        str(db),
        "--from",
        "0",
        "--speed",
        "600",
        "--plain",
        "--count",
        "4",
        "--duration",
        "30",
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4
    assert time.monotonic() - t >= 0.3  # paced, not dumped at once (a lower bound only)
    r = cli("replay", "--db", str(db), "--follow", "--type", "service.failed", "--limit", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("service.failed") == 1 and "Running → Failed" in r.stdout
