"""``tracebus demo --redis`` and ``tracebus watch --redis`` against a real ``redis-server``:
the watcher (another process) sees every event the demo published, in order, and its live
view ends with the demo's final states; Redis and argument errors are one line."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_support import RedisServer, require_redis_server
from test_cli import assert_one_line_error, run_main
from test_live import last_frame, run_in_pty

import tracebus
from tracebus.cli import main

DEMO = ["demo", "--seed", "4", "--speed", "0", "--duration", "16", "--plain"]


def tracebus_cmd(*args: str) -> list[str]:
    """``python -m tracebus ARGS``: the command line in a process of its own."""
    return [sys.executable, "-m", "tracebus", *args]


def watch_args(server: RedisServer, stream: str) -> list[str]:
    """``watch --redis URL --stream STREAM``, stopping after a minute at the latest."""
    return ["watch", "--redis", server.url, "--stream", stream, "--duration", "60"]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """One redis-server for the module (a missing one fails unless TRACEBUS_NO_REDIS=1)."""
    require_redis_server()
    with RedisServer() as s:
        yield s


@pytest.fixture(scope="module")
def demo_run(
    server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """A demo published to the stream ``cli-demo``: (its event store, stdout, stream)."""
    db = tmp_path_factory.mktemp("cli_redis") / "demo.db"
    r = subprocess.run(
        tracebus_cmd(*DEMO, "--db", str(db), "--redis", server.url, "--stream", "cli-demo"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return db, r.stdout, "cli-demo"


def stored_events(db: Path) -> list[tracebus.Event]:
    with tracebus.SqliteEventStore(db) as s:
        return list(s.replay())


def test_demo_reports_what_it_sent(server: RedisServer, demo_run: tuple[Path, str, str]) -> None:
    db, out, stream = demo_run
    n = len(stored_events(db))
    assert n > 50
    assert f"redis: {n} of {n} events sent to stream {stream} at {server.url}, errors 0" in out
    assert f"try: tracebus watch --redis {server.url} --stream {stream}" in out
    # Everything else the demo does is still there.
    assert "state rebuilt from the event store equals the live state: yes" in out
    client = redis.Redis.from_url(server.url)
    try:
        assert client.xlen(stream) == n
    finally:
        client.close()


def test_watch_plain_sees_every_event_in_order(
    server: RedisServer, demo_run: tuple[Path, str, str]
) -> None:
    db, _, stream = demo_run
    events = stored_events(db)
    r = subprocess.run(
        tracebus_cmd(*watch_args(server, stream), "--plain", "--count", str(len(events))),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    expected = [
        f"{i:>8} {str(e.severity).upper():5} {e.type!s:17} {e}  [{e.correlation_id}]"
        for i, e in enumerate(events, 1)
    ]
    assert r.stdout.splitlines() == expected


def test_watch_live_view_shows_the_final_states(
    server: RedisServer, demo_run: tuple[Path, str, str]
) -> None:
    db, _, stream = demo_run
    n = len(stored_events(db))
    rc, screen = run_in_pty(tracebus_cmd(*watch_args(server, stream), "--count", str(n)))
    assert rc == 0, screen[-2000:]
    frame = last_frame(screen)
    assert f"tracebus watch {server.url} {stream}" in frame
    assert f"shown {n:,}" in frame
    with tracebus.SqliteEventStore(db) as s:
        final = tracebus.rebuild_state(s).get_all_service_states()
    assert len(final) == 12
    assert "— 12 services (" in frame
    for label, snap in final.items():
        ready = "yes" if snap.is_ready else "no"
        assert re.search(
            rf"{re.escape(label)}\s+│\s+{snap.source_type}\s+│\s+{snap.state}\s+│\s+{ready}\s",
            frame,
        ), (label, snap.state, frame)


def test_watch_shows_what_arrives_later(server: RedisServer, tmp_path: Path) -> None:
    """A watcher started before the demo follows it live (the stream is new)."""
    with subprocess.Popen(
        tracebus_cmd(*watch_args(server, "later"), "--plain", "--count", "20"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        db = str(tmp_path / "l.db")
        assert main([*DEMO, "--db", db, "--redis", server.url, "--stream", "later"]) == 0
        out, err = watcher.communicate(timeout=90)
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 20
    first = stored_events(tmp_path / "l.db")[:20]
    assert [ln.split("[")[-1].rstrip("]") for ln in lines] == [e.correlation_id for e in first]


def test_watch_db_count_stops_after_n_events(
    capsys: pytest.CaptureFixture[str], demo_run: tuple[Path, str, str]
) -> None:
    """--count works with --db too (the same follow loop)."""
    db = str(demo_run[0])
    rc, out, _ = run_main(capsys, "watch", "--db", db, "--since", "0", "--count", "5", "--plain")
    assert rc == 0
    assert [ln.split()[0] for ln in out.splitlines()] == ["1", "2", "3", "4", "5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["watch", "demo"])
def test_redis_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    extra = (
        ["--duration", "1"] if command == "watch" else [*DEMO[1:], "--db", str(tmp_path / "x.db")]
    )
    rc, _, err = run_main(capsys, command, "--redis", f"redis://127.0.0.1:{free_port()}/0", *extra)
    assert rc == 1
    assert_one_line_error(err, f"tracebus {command}: error: cannot use Redis at redis://127.0.0.1:")
    rc, _, err = run_main(capsys, command, "--redis", "http://nowhere", *extra)
    assert rc == 1
    assert_one_line_error(
        err, f"tracebus {command}: error: --redis: url 'http://nowhere' is not a Redis URL"
    )


def test_missing_redis_py_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: RedisServer
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis raises ImportError
    rc, _, err = run_main(capsys, "watch", "--redis", server.url, "--duration", "1")
    assert rc == 1
    assert_one_line_error(err, "tracebus watch: error: --redis needs redis-py: pip install redis")


@pytest.mark.parametrize(
    ("argv", "fragment", "code"),
    [
        (["watch"], "one of the arguments --db --redis is required", 2),
        (["watch", "--db", "x.db", "--redis", "redis://h"], "not allowed with argument", 2),
        (["watch", "--redis", "redis://h", "--since", "3"], "--since works with --db only", 1),
        (["watch", "--db", "x.db", "--stream", "s"], "--stream needs --redis URL", 1),
        (["demo", "--stream", "s"], "--stream needs --redis URL", 1),
        (["watch", "--db", "x.db", "--count", "0"], "--count must be at least 1", 2),
    ],
)
def test_argument_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str, code: int
) -> None:
    rc, _, err = run_main(capsys, *argv)
    assert rc == code
    assert_one_line_error(err, fragment)


def test_watch_help_documents_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "watch", "--help")
    assert rc == 0
    for option in ("--db", "--redis URL", "--stream NAME", "--count N", "--duration"):
        assert option in out
    rc, out, _ = run_main(capsys, "demo", "--help")
    assert rc == 0 and "--redis URL" in out and "--stream NAME" in out
