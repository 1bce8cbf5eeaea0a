"""The ``tracebus`` command line: every command, its --help, and one-line errors."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tracebus
from tracebus.cli import main


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "demo.db"
    assert (
        main(
            ["demo", "--seed", "4", "--speed", "0", "--duration", "16", "--db", str(db), "--plain"]
        )
        == 0
    )
    return db


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err


@pytest.mark.parametrize("command", [[], ["demo"], ["trace"], ["replay"], ["stats"], ["watch"]])
def test_help_everywhere(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    rc, out, _ = run_main(capsys, *command, "--help")
    assert rc == 0
    assert out.startswith("usage: tracebus")
    if not command:
        for name in ("demo", "bench", "trace", "replay", "stats", "watch"):
            assert name in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys)
    assert rc == 2
    assert "usage: tracebus" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "--version")
    assert rc == 0
    assert out.strip() == f"tracebus {tracebus.__version__}"


def test_demo_says_where_events_are(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    rc, out, err = run_main(
        capsys, "demo", "--seed", "1", "--speed", "0", "--duration", "8", "--db", str(db)
    )
    assert rc == 0, err
    assert "events persisted: " in out and str(db) in out
    assert db.exists()


def test_trace(capsys: pytest.CaptureFixture[str], demo_db: Path) -> None:
    with tracebus.SqliteEventStore(demo_db) as s:
        corr = next(e for e in s.replay() if str(e.type) == "user.action").correlation_id
    rc, out, _ = run_main(capsys, "trace", corr, "--db", str(demo_db))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"trace: correlation {corr} (")
    assert lines[1].startswith("  ● [user.action] User restart PortForward")
    assert any("[cascade.stop]" in ln for ln in lines)
    rc, out, _ = run_main(capsys, "trace", corr, "--db", str(demo_db), "--json")
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert rows[0]["depth"] == 0 and rows[0]["type"] == "user.action"
    assert all(r["correlation_id"] == corr for r in rows)


def test_replay_lines_filters_and_json(capsys: pytest.CaptureFixture[str], demo_db: Path) -> None:
    rc, out, _ = run_main(capsys, "replay", "--db", str(demo_db))
    assert rc == 0
    all_lines = out.splitlines()
    with tracebus.SqliteEventStore(demo_db) as s:
        assert len(all_lines) == len(s)
    assert [int(ln.split()[0]) for ln in all_lines] == list(range(1, len(all_lines) + 1))
    rc, out, _ = run_main(
        capsys,
        "replay",
        "--db",
        str(demo_db),
        "--type",
        "service.failed",
        "--type",
        "health.failure",
    )
    assert out and all(
        ln.split()[3] in ("service.failed", "health.failure") for ln in out.splitlines()
    )
    rc, out, _ = run_main(capsys, "replay", "--db", str(demo_db), "--severity", "WARN")
    assert out and all(ln.split()[2] in ("WARN", "ERROR", "FATAL") for ln in out.splitlines())
    rc, out, _ = run_main(
        capsys,
        "replay",
        "--db",
        str(demo_db),
        "--source",
        "health-monitor",
        "--since",
        "10",
        "--limit",
        "3",
    )
    seqs = [int(ln.split()[0]) for ln in out.splitlines()]
    assert len(seqs) == 3 and seqs[0] > 10
    assert all(" MC " in ln or " WC " in ln for ln in out.splitlines())  # health events
    rc, out, _ = run_main(capsys, "replay", "--db", str(demo_db), "--json", "--limit", "5")
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert {"seq", "stream", "version", "type", "event_id", "timestamp"} <= set(rows[0])
    with tracebus.SqliteEventStore(demo_db) as s:
        first = next(iter(s.replay()))
    assert rows[0]["event_id"] == first.event_id


def test_stats(capsys: pytest.CaptureFixture[str], demo_db: Path) -> None:
    rc, out, _ = run_main(capsys, "stats", "--db", str(demo_db))
    assert rc == 0
    assert "events: " in out and "by_type:" in out and "journal_mode: WAL" in out
    rc, out, _ = run_main(capsys, "stats", "--db", str(demo_db), "--json")
    st = json.loads(out)
    assert st["events"] > 50
    assert st["by_type"]["cascade.stop"] >= 1


def test_watch_plain_reads_what_is_there(capsys: pytest.CaptureFixture[str], demo_db: Path) -> None:
    rc, out, _ = run_main(
        capsys, "watch", "--db", str(demo_db), "--since", "0", "--duration", "0.3", "--plain"
    )
    assert rc == 0
    with tracebus.SqliteEventStore(demo_db) as s:
        assert len(out.splitlines()) == len(s)


@pytest.mark.parametrize(
    ("argv", "fragments", "code"),
    [
        (["replay", "--db", "/nonexistent/x.db"], ["no such event store: /nonexistent/x.db"], 1),
        (["stats", "--db", "/nonexistent/x.db"], ["no such event store"], 1),
        (["watch", "--db", "/nonexistent/x.db", "--duration", "1"], ["no such event store"], 1),
        (["trace", "corr_1", "--db", "/nonexistent/x.db"], ["no such event store"], 1),
        (["replay"], ["the following arguments are required: --db"], 2),
        (["trace", "--db", "x.db"], ["CORRELATION_ID"], 2),
        (["frobnicate"], ["invalid choice: 'frobnicate'"], 2),
        (["demo", "--services", "two"], ["--services must be an integer"], 2),
        (["demo", "--services", "1"], ["--services must be at least 3"], 2),
        (["demo", "--duration", "nan"], ["--duration must be a finite number"], 2),
        (["demo", "--speed", "-3"], ["--speed must be a finite number >= 0"], 2),
        (["replay", "--db", "DB", "--since", "-1"], ["--since must be at least 0"], 2),
        (
            ["demo", "--db", "/nonexistent/dir/x.db", "--speed", "0"],
            ["no directory /nonexistent/dir"],
            1,
        ),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str],
    demo_db: Path,
    argv: list[str],
    fragments: list[str],
    code: int,
) -> None:
    argv = [str(demo_db) if a == "DB" else a for a in argv]
    rc, _, err = run_main(capsys, *argv)
    assert rc == code
    assert_one_line_error(err, *fragments)


def test_bad_filters_are_one_line(capsys: pytest.CaptureFixture[str], demo_db: Path) -> None:
    rc, _, err = run_main(capsys, "replay", "--db", str(demo_db), "--severity", "loud")
    assert rc == 1
    assert_one_line_error(err, "--severity must be one of", '"loud"')
    # a type this process never registered is a filter like any other (nothing matches)
    rc, out, err = run_main(capsys, "replay", "--db", str(demo_db), "--type", "no.such.type")
    assert (rc, out, err) == (0, "", "")
    rc, _, err = run_main(capsys, "trace", "corr_0000000000000001", "--db", str(demo_db))
    assert rc == 1
    assert_one_line_error(err, "no events with correlation id corr_0000000000000001")


def test_foreign_and_garbage_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 500)
    rc, _, err = run_main(capsys, "stats", "--db", str(garbage))
    assert rc == 1
    assert_one_line_error(err, "not a usable tracebus event store")
    other = tmp_path / "other.db"
    c = sqlite3.connect(other)
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    rc, _, err = run_main(capsys, "replay", "--db", str(other))
    assert rc == 1
    assert_one_line_error(err, "not a tracebus event store")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    rc, _, err = run_main(capsys, "replay", "--db", str(empty))
    assert rc == 1
    assert_one_line_error(err, "empty database")
    rc, _, err = run_main(capsys, "stats", "--db", str(tmp_path))
    assert rc == 1
    assert_one_line_error(err, "is a directory")


def test_bench_dispatches_to_the_benchmark_module(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("tracebus.bench")
    fake.run = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tracebus.bench", fake)
    monkeypatch.setattr(tracebus, "bench", fake, raising=False)
    assert main(["bench", "--quick", "--cases", "a"]) == 0
    assert seen == [["--quick", "--cases", "a"]]


def test_bench_without_the_module_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tracebus.bench", None)
    monkeypatch.delattr(tracebus, "bench", raising=False)
    rc, _, err = run_main(capsys, "bench")
    assert rc == 2
    assert_one_line_error(err, "tracebus bench: error: the benchmark module is not available")


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "tracebus", "replay", "--db", str(tmp_path / "missing.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr == f"tracebus replay: error: no such event store: {tmp_path / 'missing.db'}\n"
    r = subprocess.run(
        [sys.executable, "-m", "tracebus", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "tracebus demo" in r.stdout
    exe = shutil.which("tracebus")
    if exe is None:
        pytest.skip("the tracebus console script is not on PATH")
    r = subprocess.run([exe, "stats", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("usage: tracebus stats")


def test_bench_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(argv: list[str]) -> int:
        raise ValueError("--cases: unknown case 'zz'")

    fake = types.ModuleType("tracebus.bench")
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tracebus.bench", fake)
    monkeypatch.setattr(tracebus, "bench", fake, raising=False)
    rc, _, err = run_main(capsys, "bench", "--cases", "zz")
    assert rc == 1
    assert_one_line_error(err, "tracebus bench: error: --cases: unknown case 'zz'")
