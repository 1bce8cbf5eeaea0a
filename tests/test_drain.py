"""``tracebus._drain.Drain``: the batch-draining writer thread shared by the event store's
``attach`` and the Redis bridge (whose tests cover it end to end)."""

from __future__ import annotations

import threading

import pytest

import tracebus as tb
from tracebus._drain import Drain, check_int


def _events(n: int) -> list[tb.Event]:
    return [tb.SystemEvent("c", "startup", str(i)) for i in range(n)]


def test_batches_and_flush() -> None:
    bus = tb.EventBus()
    ch = bus.subscribe_channel(None, 1000, tb.SimpleBufferStrategy("block"))
    batches: list[list[str]] = []
    drain = Drain(ch, 4, lambda b: batches.append([e.details for e in b]), name="t").start()
    bus.publish_many(_events(10))
    assert drain.flush(10)
    assert [m for b in batches for m in b] == [str(i) for i in range(10)]
    assert all(1 <= len(b) <= 4 for b in batches)
    assert drain.done == 10
    drain.stop(10)
    assert not drain.thread.is_alive()
    bus.close()


def test_flush_times_out_while_a_batch_is_in_hand_and_stop_abandons_the_rest() -> None:
    bus = tb.EventBus()
    ch = bus.subscribe_channel(None, 1000, tb.SimpleBufferStrategy("block"))
    started = threading.Event()
    handled: list[int] = []
    abandoned: list[int] = []
    drain: Drain

    def handle(batch: list[tb.Event]) -> None:
        started.set()
        drain.give_up.wait(30)  # stuck (as a writer retrying an unreachable server)
        handled.append(len(batch))

    drain = Drain(ch, 2, handle, name="t", abandon=lambda rest: abandoned.append(len(rest)))
    drain.start()
    bus.publish_many(_events(1))
    assert started.wait(10)
    bus.publish_many(_events(5))  # buffered behind the stuck batch
    assert not drain.flush(0.05)
    drain.stop(0.1)  # times out, gives up: the batch in hand ends, the rest is abandoned
    assert not drain.thread.is_alive()
    assert (handled, abandoned) == ([1], [5])
    assert drain.done == 6 and drain.flush(0)
    bus.close()


def test_check_int() -> None:
    assert check_int("n", 3, 1) == 3
    with pytest.raises(TypeError, match="n must be an int, got bool"):
        check_int("n", True)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        check_int("n", 0, 1)
