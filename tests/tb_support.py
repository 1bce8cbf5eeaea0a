"""Helpers shared by the tracebus tests (uniquely named: tests/ holds several conftest files).

Tests run against the installed package (``pip install .``), never the source tree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tracebus import (
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
)

# Generous upper bound for waiting on other threads / loops. Not a speed assertion: a
# test only fails on it if the awaited condition never becomes true.
WAIT = 20.0


def wait_until(cond: Callable[[], bool], timeout: float = WAIT, interval: float = 0.002) -> bool:
    """Polls ``cond`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def update(
    label: str = "test-pf",
    state: str = ServiceState.RUNNING,
    service_type: str = ServiceType.PORT_FORWARD,
    **kw: object,
) -> ManagedServiceUpdate:
    """A ManagedServiceUpdate with test defaults."""
    return ManagedServiceUpdate(service_type, label, state, **kw)  # type: ignore[arg-type]


def state_event(
    label: str = "test-pf",
    old: str = ServiceState.STARTING,
    new: str = ServiceState.RUNNING,
    service_type: str = ServiceType.PORT_FORWARD,
    **kw: object,
) -> ServiceStateEvent:
    """A ServiceStateEvent with test defaults."""
    return ServiceStateEvent(service_type, label, old, new, **kw)  # type: ignore[arg-type]


def run_threads(n: int, target: Callable[[int], None]) -> None:
    """Runs ``target(i)`` in ``n`` threads started together; re-raises the first failure."""
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # collected and re-raised in the main thread
            failures.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
        assert not t.is_alive(), "worker thread did not finish (deadlock?)"
    if failures:
        raise failures[0]
