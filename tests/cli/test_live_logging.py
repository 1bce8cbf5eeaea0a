"""While a live view runs, ``tracebus`` log records (e.g. the Redis bridge's reconnect
warnings, logged on its threads) print through the view's console, above the live region,
not through the usual handlers onto the terminal under it; afterwards logging is as
before."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterator

import pytest

import tracebus as tb
from tracebus.cli.demo import DemoConfig, DemoEnvironment
from tracebus.cli.live import DemoLiveView
from tracebus.cli.watch import follow


@pytest.fixture
def stderr_log() -> Iterator[io.StringIO]:
    """A root handler writing to a stand-in for stderr (as ``logging.basicConfig`` sets
    up), checked to leave the ``tracebus`` logger as it found it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    logger = logging.getLogger("tracebus")
    before = (list(logger.handlers), logger.propagate)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
    assert (list(logger.handlers), logger.propagate) == before


def _warn_from_a_thread(message: str) -> None:
    t = threading.Thread(target=logging.getLogger("tracebus.redis").warning, args=(message,))
    t.start()
    t.join()


def _check(out: str, stderr: str, during: str, after: str) -> None:
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)  # rich's styles
    assert during in out and during not in stderr
    assert after in stderr and after not in out


def test_warnings_print_above_the_watch_view(stderr_log: io.StringIO) -> None:
    out = io.StringIO()
    polls = 0

    def poll(limit: int) -> list[tuple[int, tb.Event]]:
        nonlocal polls
        polls += 1
        if polls == 2:
            _warn_from_a_thread("lost the connection (while watching)")
        return []

    follow(poll, out, title="t", status=lambda: "s", duration=0.3, interval=0.01)
    assert polls >= 2
    logging.getLogger("tracebus.redis").warning("after watching")
    _check(
        out.getvalue(),
        stderr_log.getvalue(),
        "lost the connection (while watching)",
        "after watching",
    )


def test_plain_watch_leaves_logging_alone(stderr_log: io.StringIO) -> None:
    out = io.StringIO()

    def poll(limit: int) -> list[tuple[int, tb.Event]]:
        _warn_from_a_thread("plain warning")
        return []

    follow(poll, out, title="t", status=lambda: "s", duration=0.05, interval=0.01, live=False)
    assert "plain warning" in stderr_log.getvalue() and "plain warning" not in out.getvalue()


def test_warnings_print_above_the_demo_view(stderr_log: io.StringIO) -> None:
    env = DemoEnvironment(DemoConfig(services=3))
    feed = env.bus.subscribe_channel(None, 1000)
    out = io.StringIO()
    view = DemoLiveView(env, feed, out)
    view.start()
    try:
        view.refresh(0)
        _warn_from_a_thread("lost the connection (demo)")
        view.refresh(0)
    finally:
        view.stop()
    logging.getLogger("tracebus.redis").warning("after the demo")
    _check(out.getvalue(), stderr_log.getvalue(), "lost the connection (demo)", "after the demo")
    env.bus.close()
