"""Helpers shared by the reliability tests (sizes, figures, threads)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tb_support


def _stress() -> int:
    raw = os.environ.get("TRACEBUS_STRESS", "1").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"TRACEBUS_STRESS must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"TRACEBUS_STRESS must be a positive integer, got {raw!r}")
    return n


STRESS = _stress()

# Liveness bound for joins and waits: a test fails on it only if something never happens.
WAIT = 30.0

FIGURE_KEYS = (
    "events",
    "threads",
    "faults",
    "published",
    "delivered",
    "dropped",
    "evicted",
    "errors",
    "lost",
    "duplicated",
)


def scaled(n: int) -> int:
    """``n`` times the stress multiplier."""
    return n * STRESS


@dataclass
class Figures:
    """One test's figures. Unset fields print as 0; ``extra`` adds free-form notes."""

    test: str
    events: int = 0
    threads: int = 0
    faults: int = 0
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    evicted: int = 0
    errors: int = 0
    lost: int = 0
    duplicated: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def add(self, **kw: int) -> None:
        for k, v in kw.items():
            setattr(self, k, getattr(self, k) + v)

    def line(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in FIGURE_KEYS]
        parts += [f"{k}={v}" for k, v in self.extra.items()]
        return f"[figures] {self.test}: " + " ".join(parts)


def run_threads(targets: list[Callable[[], None]], timeout: float = WAIT * 4) -> None:
    """Runs each target in its own thread, started together; re-raises the first failure
    and fails if a thread does not finish within ``timeout`` (a deadlock)."""
    barrier = threading.Barrier(len(targets))
    failures: list[BaseException] = []

    def body(fn: Callable[[], None]) -> None:
        try:
            barrier.wait()
            fn()
        except BaseException as e:  # collected and re-raised in the main thread
            failures.append(e)

    threads = [threading.Thread(target=body, args=(fn,), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads did not finish (deadlock?): {alive}"
    if failures:
        raise failures[0]


def wait_until(cond: Callable[[], bool], timeout: float = WAIT, interval: float = 0.002) -> bool:
    """``tb_support.wait_until`` with this suite's longer default bound."""
    return tb_support.wait_until(cond, timeout, interval)


def run_child(code: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Runs ``code`` in a child Python, so that a hang cannot take the test run with it;
    None if it did not finish within ``timeout`` seconds."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
