"""Timeout arguments (issue 12): huge values mean "no timeout" (no panic), NaN and
negatives raise ValueError naming the parameter, and ``close(timeout)`` returns within its
timeout."""

from __future__ import annotations

import math
import queue
import sys
import threading
import time

import pytest
from tb_support import WAIT

from tracebus import (
    Channel,
    EventBus,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    SystemEvent,
)
from tracebus._drain import Drain, check_timeout
from tracebus.reporters import TUIReporter, TUIReporterConfig

HUGE = [sys.maxsize, 1e20, math.inf, 2**70]


def event() -> SystemEvent:
    return SystemEvent("t", "startup")


def later(delay: float, f: object) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        f()  # type: ignore[operator]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("t", HUGE)
def test_huge_timeouts_wait_without_limit_on_recv(t: float) -> None:
    ch = Channel(4)
    later(0.05, lambda: ch.send("x"))
    assert ch.recv(timeout=t) == "x"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("t", HUGE)
def test_huge_timeouts_wait_without_limit_on_a_block_send(t: float) -> None:
    ch = Channel(1, "block")
    ch.send("a")
    later(0.05, ch.recv)
    assert ch.send("b", timeout=t) is True
    assert ch.stats()["sent"] == 2 and ch.stats()["dropped"] == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("t", HUGE)
def test_huge_timeouts_on_publish_deliver_and_count(t: float) -> None:
    bus = EventBus()
    ch = bus.subscribe_channel(buffer_size=1, strategy="block")
    assert bus.publish(event(), timeout=t) == 1  # room: no wait at all
    later(0.05, ch.recv)
    assert bus.publish(event(), timeout=t) == 1  # waits for the receiver
    assert bus.publish_many([], timeout=t) == 0
    m = bus.get_metrics()
    assert (m["events_published"], m["events_delivered"], m["events_dropped"]) == (2, 2, 0)
    bus.close(timeout=t)
    assert bus.closed


@pytest.mark.parametrize("bad", [math.nan, -1.0, -1e-9, -math.inf])
def test_nan_and_negative_timeouts_raise_value_error_naming_the_parameter(bad: float) -> None:
    bus = EventBus()
    ch = Channel(1)
    calls = [
        lambda: ch.recv(timeout=bad),
        lambda: ch.send("x", timeout=bad),
        lambda: bus.publish(event(), timeout=bad),
        lambda: bus.publish_many([event()], timeout=bad),
        lambda: bus.close(timeout=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="timeout"):
            call()
    assert not bus.closed
    bus.close()


@pytest.mark.timeout(120)
def test_tui_reporter_close_returns_within_its_timeout_with_a_full_queue() -> None:
    q: queue.Queue[object] = queue.Queue(maxsize=1)
    rep = TUIReporter(update_queue=q, config=TUIReporterConfig(buffer_size=2000))
    for i in range(1000):
        rep.report(ManagedServiceUpdate(ServiceType.PORT_FORWARD, f"svc-{i}", ServiceState.RUNNING))
    start = time.monotonic()
    rep.close(timeout=1.0)
    took = time.monotonic() - start
    # A hang detector with a generous bound (it took 51 s): the timeout is 1 s.
    assert took < WAIT / 3, took
    # Nothing lost silently: every update is in the queue, or counted as refused, or still
    # being handed over by the forwarder (which counts what the full queue refuses).
    deadline = time.monotonic() + WAIT
    while rep.stats()["forward_dropped"] + q.qsize() < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rep.stats()["forward_dropped"] + q.qsize() == 1000


@pytest.mark.timeout(120)
def test_drain_stop_returns_within_its_timeout_with_a_stuck_handler() -> None:
    bus = EventBus()
    ch = bus.subscribe_channel()
    release = threading.Event()
    started = threading.Event()
    abandoned: list[int] = []

    def handle(batch: list[object]) -> None:
        started.set()
        release.wait(WAIT)  # stuck, and does not watch give_up

    drain = Drain(ch, 1, handle, name="t", abandon=lambda rest: abandoned.append(len(rest)))
    drain.start()
    bus.publish_many([event(), event(), event()])
    assert started.wait(WAIT)
    stopper = threading.Thread(target=drain.stop, args=(0.2,))
    stopper.start()
    # It used to wait 5 s more for the stuck handler: now it returns while it is stuck.
    stopper.join(3.0)
    returned = not stopper.is_alive()
    release.set()
    stopper.join(WAIT)
    drain.thread.join(WAIT)
    assert returned
    assert abandoned == [2]  # the rest is abandoned (counted) once the handler returns
    bus.close()


@pytest.mark.parametrize("t", HUGE)
def test_python_side_timeouts_take_huge_values(t: float) -> None:
    assert check_timeout("timeout", t) is None
    ch = Channel(4)
    rep = TUIReporter(update_queue=queue.Queue())
    rep.close(timeout=t)
    drain = Drain(ch, 1, lambda b: None, name="t").start()
    assert drain.flush(t)
    drain.stop(t)
    assert not drain.thread.is_alive()


@pytest.mark.parametrize("bad", [math.nan, -1.0])
def test_python_side_timeouts_refuse_nan_and_negatives(bad: float) -> None:
    rep = TUIReporter(update_queue=queue.Queue())
    with pytest.raises(ValueError, match="timeout"):
        rep.close(timeout=bad)
    rep.close()
    drain = Drain(Channel(1), 1, lambda b: None, name="t").start()
    for call in (drain.flush, drain.stop):
        with pytest.raises(ValueError, match="timeout"):
            call(bad)
    drain.stop(None)
