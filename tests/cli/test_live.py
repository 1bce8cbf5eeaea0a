"""The live view: ``tracebus demo`` and ``tracebus watch`` run in a pseudo-terminal and the
screen is read back; the view's model and score on their own."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

from tracebus import (
    Event,
    EventType,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    SqliteEventStore,
)
from tracebus.cli.live import LiveModel, footer_text, render
from tracebus.cli.watch import watch

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(
    argv: list[str], rows: int = 40, cols: int = 150, timeout: float = 90
) -> tuple[int, str]:
    """Runs ``argv`` with a pseudo-terminal (``rows`` x ``cols``) as stdin, stdout and
    stderr; returns (exit status, everything it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def last_frame(screen: str) -> str:
    """The last frame rich drew: the text after its last cursor-up, without escapes."""
    frame = re.split(r"\x1b\[\d*A", screen)[-1]
    return ANSI.sub("", frame)


def test_demo_live_view_in_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    argv = [
        sys.executable,
        "-m",
        "tracebus",
        "demo",
        "--seed",
        "2",
        "--duration",
        "10",
        "--speed",
        "5",
    ]
    rc, screen = run_in_pty([*argv, "--db", str(db)])
    assert rc == 0, screen[-2000:]
    assert "\x1b[" in screen  # drawn with terminal escapes (colour, cursor movement)
    live, summary = screen.split("== cascades", 1)
    assert (
        "\x1b[1;32mRunning" in live
        or "\x1b[32;1mRunning" in live
        or "Running" in ANSI.sub("", live)
    )
    frame = last_frame(live)
    for heading in (
        "service",
        "type",
        "state",
        "ready",
        "port",
        "pid",
        "last change",
        "correlation",
    ):
        assert heading in frame
    assert re.search(r"tracebus demo — 12 services \(12 Running\)", frame)
    assert re.search(r"k8s-golem\s+│\s+KubeOperation\s+│\s+Running\s+│\s+yes", frame)
    assert re.search(r"pf-\w+-\w+\s+│\s+PortForward\s+│\s+Running\s+│\s+yes\s+│\s+80\d\d", frame)
    assert "clusters" in frame and "golem" in frame and "alpha" in frame
    assert "events" in frame and "health.check" in frame
    assert re.search(
        r"events/s [\d,]+ │ published [\d,]+ │ p99 latency \d+\.\d{3} ms │ drops 0 │ "
        r"score 100 \(healthy\)",
        frame,
    )
    # severities are coloured: an error line (the cluster failure) was drawn in red at some point
    assert re.search(r"\x1b\[1;31mERROR", live) or re.search(r"\x1b\[31;1mERROR", live)
    plain = ANSI.sub("", summary)
    assert "user restarts pf-" in plain
    assert "equals the live state: yes" in plain
    assert str(db) in plain


def test_plain_flag_on_a_terminal(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "tracebus",
        "demo",
        "--seed",
        "2",
        "--speed",
        "0",
        "--duration",
        "8",
        "--plain",
    ]
    rc, screen = run_in_pty([*argv, "--db", str(tmp_path / "p.db")])
    assert rc == 0
    before = screen.split("== cascades", 1)[0]
    assert "\x1b[" not in before
    assert re.search(r"INFO  service\.running\s+k8s-golem", before)


WRITER = textwrap.dedent(
    """
    import sys, time
    from tracebus import *
    R, F = ServiceState.RUNNING, ServiceState.FAILED
    store = SqliteEventStore(sys.argv[1])
    for i in range(40):
        new, old = (R, F) if i % 2 else (F, R)
        u = ManagedServiceUpdate(
            ServiceType.PORT_FORWARD, f"pf-{i % 4}", new, proxy_port=9000 + i % 4, pid=100 + i,
            error_detail=None if i % 2 else "refused",
        )
        store.append(ServiceStateEvent.from_update(u, old))
        time.sleep(0.03)
    store.close()
    """
)


def test_watch_follows_another_process_in_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "watched.db"
    SqliteEventStore(db).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    with subprocess.Popen([sys.executable, str(script), str(db)]) as writer:
        rc, screen = run_in_pty(
            [sys.executable, "-m", "tracebus", "watch", "--db", str(db), "--duration", "4"]
        )
        writer.wait(60)
    assert rc == 0
    assert writer.returncode == 0
    frame = last_frame(screen)
    assert f"tracebus watch {db.name}" in frame and f"db {db}" in frame  # path: in the footer
    assert re.search(r"pf-3\s+│\s+PortForward\s+│\s+Running\s+│\s+yes\s+│\s+9003", frame)
    assert "service.failed" in frame or "service.running" in frame
    assert re.search(r"shown \d+ │ last seq 40", frame)


def test_watch_plain_follows_appends(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = SqliteEventStore(db)
    store.append(Event(EventType.CONFIG_CHANGE, "before"))
    out = io.StringIO()

    def write() -> None:
        for i in range(20):
            store.append(Event(EventType.CONFIG_CHANGE, f"src{i}"))
            time.sleep(0.01)

    t = threading.Thread(target=write)
    reader = SqliteEventStore(db)
    t.start()
    shown = watch(reader, out, duration=1.5, interval=0.05, live=False, since=1)
    t.join()
    reader.close()
    store.close()
    lines = out.getvalue().splitlines()
    assert shown == len(lines) == 20  # the event before `since` is skipped
    assert [ln.split()[0] for ln in lines] == [str(i) for i in range(2, 22)]


def test_model_and_render() -> None:
    m = LiveModel(feed_size=5)
    m.consume(
        [
            ManagedServiceUpdate(
                ServiceType.PORT_FORWARD, "pf", ServiceState.FAILED, error_detail="x"
            ),
            ManagedServiceUpdate(ServiceType.MCP_SERVER, "mcp", ServiceState.RUNNING, pid=7),
            HealthStatusUpdate("ctx", "golem", True, False, ready_nodes=1, total_nodes=3),
        ]
    )
    assert m.services["pf"].state == "Failed"
    assert m.services["mcp"].pid == 7
    assert m.clusters["golem"] == (False, 1, 3)
    for i in range(8):
        u = ManagedServiceUpdate(
            ServiceType.PORT_FORWARD, "pf", ServiceState.RUNNING, proxy_port=8000 + i
        )
        m.on_event(ServiceStateEvent.from_update(u, ServiceState.FAILED), apply_state=True)
    assert len(m.feed) == 5 and m.events == 8
    assert m.services["pf"].port == 8007
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    console.print(render(m, "title", "footer text", height=30))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "title — 2 services (2 Running)" in text
    assert "golem" in text and "1/3 nodes" in text
    assert "footer text" in text


def test_footer_shows_the_monitor_figures() -> None:
    from tracebus import PerformanceMetrics

    m = PerformanceMetrics(
        events_per_second=1234.5,
        p99_event_latency_ms=0.25,
        events_sent=5000,
        events_dropped=3,
        performance_score=97.0,
        system_healthy=True,
    )
    assert footer_text(m) == (
        " events/s 1,234 │ published 5,000 │ p99 latency 0.250 ms │ drops 3 │ score 97 (healthy)"
    )
    bad = PerformanceMetrics(performance_score=40.0, system_healthy=False)
    assert footer_text(bad, " │ x").endswith("score 40 (unhealthy) │ x")


def test_watch_starts_at_the_current_end(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "end.db") as store:
        store.append_many([Event(EventType.CONFIG_CHANGE, f"s{i}") for i in range(3)])
        out = io.StringIO()
        assert watch(store, out, duration=0.2, interval=0.05, live=False) == 0
        assert out.getvalue() == ""
