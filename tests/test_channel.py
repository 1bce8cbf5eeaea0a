"""The bounded subscription channel: strategies, exact accounting, consumer API."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tb_support import WAIT, state_event, update, wait_until

from tracebus import (
    BufferAction,
    Channel,
    ChannelClosed,
    EventType,
    PriorityBufferStrategy,
    PublishTimeoutError,
    ServiceState,
    Severity,
    SimpleBufferStrategy,
    SystemEvent,
)


def check_invariant(ch: Channel) -> dict[str, int]:
    s = ch.stats()
    assert s["sent"] == s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"], s
    assert s["buffered"] <= s["capacity"]
    return s


# --- strategies ----------------------------------------------------------------------------


def test_default_is_drop_new_item() -> None:
    ch = Channel(3)
    assert [ch.send(i) for i in range(5)] == [True, True, True, False, False]
    s = check_invariant(ch)
    assert (s["sent"], s["dropped"], s["buffered"], s["evicted"]) == (5, 2, 3, 0)
    assert ch.drain() == [0, 1, 2]
    s = check_invariant(ch)
    assert s["delivered"] == 3


def test_evict_oldest() -> None:
    ch = Channel(3, SimpleBufferStrategy(BufferAction.EVICT_OLDEST))
    assert all(ch.send(i) for i in range(5))  # an eviction still buffers the new item
    s = check_invariant(ch)
    assert (s["evicted"], s["dropped"], s["buffered"]) == (2, 0, 3)
    assert ch.drain() == [2, 3, 4]


def test_strategy_given_as_plain_action_string() -> None:
    ch = Channel(1, "evict_oldest")
    ch.send("a")
    ch.send("b")
    assert ch.drain() == ["b"]


def test_block_with_timeout_raises_and_counts() -> None:
    ch = Channel(2, SimpleBufferStrategy(BufferAction.BLOCK))
    ch.send(1)
    ch.send(2)
    with pytest.raises(PublishTimeoutError):
        ch.send(3, timeout=0.05)
    s = check_invariant(ch)
    assert (s["sent"], s["dropped"], s["blocked"], s["buffered"]) == (3, 1, 1, 2)
    assert ch.drain() == [1, 2]


def test_block_zero_timeout_fails_immediately_when_full() -> None:
    ch = Channel(1, BufferAction.BLOCK)
    ch.send(1)
    with pytest.raises(PublishTimeoutError):
        ch.send(2, timeout=0)
    check_invariant(ch)


def test_blocked_sender_proceeds_when_the_consumer_takes() -> None:
    ch = Channel(1, BufferAction.BLOCK)
    ch.send("first")
    done = threading.Event()

    def sender() -> None:
        ch.send("second")  # waits with the GIL released
        done.set()

    t = threading.Thread(target=sender)
    t.start()
    assert wait_until(lambda: ch.stats()["blocked"] == 1)
    assert not done.is_set()
    assert ch.recv(timeout=WAIT) == "first"
    t.join(WAIT)
    assert done.is_set()
    assert ch.recv(timeout=WAIT) == "second"
    s = check_invariant(ch)
    assert (s["sent"], s["delivered"], s["dropped"]) == (2, 2, 0)


def test_close_wakes_a_blocked_sender() -> None:
    ch = Channel(1, BufferAction.BLOCK)
    ch.send("x")
    outcome: list[BaseException | None] = []

    def sender() -> None:
        try:
            ch.send("y")  # no timeout: only close can end the wait
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=sender)
    t.start()
    assert wait_until(lambda: ch.stats()["blocked"] == 1)
    ch.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ChannelClosed)
    s = check_invariant(ch)
    assert (s["dropped"], s["buffered"]) == (1, 1)
    # Buffered items stay receivable after close.
    assert ch.recv(timeout=WAIT) == "x"
    with pytest.raises(ChannelClosed):
        ch.recv(timeout=WAIT)


def test_many_blocked_senders_all_woken_by_close() -> None:
    ch = Channel(1, BufferAction.BLOCK)
    ch.send(0)
    results: list[str] = []
    lock = threading.Lock()

    def sender(i: int) -> None:
        try:
            ch.send(i)
            r = "sent"
        except ChannelClosed:
            r = "closed"
        with lock:
            results.append(r)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    assert wait_until(lambda: ch.stats()["blocked"] == 4)
    ch.close()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    assert results == ["closed"] * 4
    check_invariant(ch)


# --- priority ------------------------------------------------------------------------------


def sev_item(sev: str, tag: str) -> tuple[str, str]:
    return (sev, tag)


def test_priority_evicts_least_severe_oldest() -> None:
    ch = Channel(3, PriorityBufferStrategy())
    ch.send("info-1", severity=Severity.INFO)
    ch.send("error-1", severity=Severity.ERROR)
    ch.send("info-2", severity=Severity.INFO)
    assert ch.send("warn-1", severity=Severity.WARN)  # evicts info-1 (least severe, oldest)
    s = check_invariant(ch)
    assert s["evicted"] == 1
    # Consumers still see send order among what is buffered.
    assert ch.drain() == ["error-1", "info-2", "warn-1"]


def test_priority_never_evicts_more_severe_than_incoming() -> None:
    ch = Channel(2, PriorityBufferStrategy())
    ch.send("e1", severity="error")
    ch.send("e2", severity="error")
    assert ch.send("d1", severity="debug") is False  # the newcomer is dropped instead
    assert ch.send("w1", severity="warn") is False
    s = check_invariant(ch)
    assert (s["dropped"], s["evicted"]) == (2, 0)
    assert ch.send("f1", severity="fatal") is True  # more severe: evicts the oldest error
    assert ch.drain() == ["e2", "f1"]


def test_priority_same_severity_evicts_oldest() -> None:
    ch = Channel(2, PriorityBufferStrategy())
    for i in range(4):
        ch.send(i, severity="info")
    assert ch.drain() == [2, 3]
    check_invariant(ch)


def test_priority_uses_the_items_own_severity() -> None:
    ch = Channel(2, PriorityBufferStrategy())
    failed = update("a", ServiceState.FAILED)
    running = update("b", ServiceState.RUNNING)
    starting = state_event("c", new=ServiceState.STARTING)  # debug
    ch.send(failed)
    ch.send(running)
    ch.send(starting)  # debug < info: dropped, nothing buffered is less severe
    assert ch.stats()["dropped"] == 1
    ch.send(update("d", ServiceState.FAILED))  # error: evicts the Running update (info)
    got = ch.drain()
    assert [u.source_label for u in got] == ["a", "d"]


def test_priority_rules_override_per_event_type() -> None:
    strat = PriorityBufferStrategy(
        default_action=BufferAction.EVICT_OLDEST,
        rules={EventType.CONFIG_CHANGE: BufferAction.DROP},
    )
    assert strat.default_action is BufferAction.EVICT_OLDEST
    assert strat.rules == {EventType.CONFIG_CHANGE: BufferAction.DROP}
    ch = Channel(1, strat)
    ch.send(SystemEvent("core", "startup"))
    # A config change arriving at a full buffer is dropped by the rule, not evicting.
    assert ch.send(SystemEvent("core", "config_change")) is False
    assert ch.send(SystemEvent("core", "startup")) is True  # default: evicts
    s = check_invariant(ch)
    assert (s["dropped"], s["evicted"]) == (1, 1)


def test_priority_strategy_defaults_and_repr() -> None:
    p = PriorityBufferStrategy()
    assert p.default_action is BufferAction.EVICT_OLDEST
    assert p.rules == {}
    assert "PriorityBufferStrategy" in repr(p)
    assert SimpleBufferStrategy("drop").action is BufferAction.DROP
    assert "drop" in repr(SimpleBufferStrategy(BufferAction.DROP))


# --- ordering and accounting under concurrency ---------------------------------------------


@pytest.mark.parametrize(
    "action", [BufferAction.DROP, BufferAction.EVICT_OLDEST, BufferAction.BLOCK]
)
def test_fifo_per_producer_and_exact_accounting(action: BufferAction) -> None:
    ch = Channel(16, action)
    producers, per = 4, 2000
    received: list[tuple[int, int]] = []
    stop = threading.Event()
    observations = 0

    def produce(p: int) -> None:
        for i in range(per):
            ch.send((p, i))

    def consume() -> None:
        for item in ch:
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    # The invariant holds at every moment a caller can observe.
    while any(t.is_alive() for t in threads):
        check_invariant(ch)
        observations += 1
        if observations > 100_000:
            break
    for t in threads:
        t.join(WAIT)
    ch.close()
    consumer.join(WAIT)
    stop.set()
    s = check_invariant(ch)
    assert s["sent"] == producers * per
    assert s["buffered"] == 0
    assert s["delivered"] == len(received)
    if action is BufferAction.BLOCK:
        assert len(received) == producers * per
        assert s["dropped"] == s["evicted"] == 0
    for p in range(producers):
        seq = [i for q, i in received if q == p]
        assert seq == sorted(seq), f"producer {p} out of order"
        if action is BufferAction.BLOCK:
            assert seq == list(range(per))


# --- consumer API --------------------------------------------------------------------------


def test_recv_try_recv_and_timeouts() -> None:
    ch = Channel(4)
    assert ch.try_recv() is None
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.01)
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0)
    ch.send("a")
    assert ch.try_recv() == "a"
    ch.send("b")
    assert ch.recv(timeout=0) == "b"
    ch.close()
    assert ch.try_recv() is None
    with pytest.raises(ChannelClosed):
        ch.recv()
    check_invariant(ch)


def test_recv_waits_with_the_gil_released() -> None:
    ch = Channel(4)
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(ch.recv()))
    t.start()
    # The main thread keeps running Python while the receiver waits.
    counter = sum(range(10_000))
    assert counter > 0
    ch.send("hello")
    t.join(WAIT)
    assert got == ["hello"]


def test_drain() -> None:
    ch = Channel(10)
    for i in range(7):
        ch.send(i)
    assert ch.drain(max_items=3) == [0, 1, 2]
    assert ch.drain(0) == []
    assert len(ch) == 4
    assert ch.drain() == [3, 4, 5, 6]
    assert ch.drain() == []
    s = check_invariant(ch)
    assert s["delivered"] == 7


def test_iteration_ends_when_closed_and_empty() -> None:
    ch = Channel(10)
    for i in range(3):
        ch.send(i)
    ch.close()
    assert list(ch) == [0, 1, 2]
    assert ch.closed


def test_iteration_blocks_until_items_arrive() -> None:
    ch = Channel(10)
    out: list[int] = []
    t = threading.Thread(target=lambda: out.extend(ch))
    t.start()
    for i in range(5):
        ch.send(i)
    assert wait_until(lambda: len(out) == 5)
    ch.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert out == [0, 1, 2, 3, 4]


def test_context_manager_closes() -> None:
    with Channel(2) as ch:
        ch.send(1)
        assert not ch.closed
    assert ch.closed
    with pytest.raises(ChannelClosed):
        ch.send(2)
    s = check_invariant(ch)
    assert s["dropped"] == 1
    assert ch.drain() == [1]


def test_close_is_idempotent() -> None:
    ch = Channel(2)
    ch.close()
    ch.close()
    assert ch.closed


def test_capacity_and_repr() -> None:
    ch = Channel(7)
    assert ch.capacity == 7
    assert "capacity=7" in repr(ch)
    assert Channel().capacity == 1000


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts loop iterations, to show an idle consumer does not spin."""

    iterations = 0

    def _run_once(self) -> None:  # type: ignore[override]
        CountingLoop.iterations += 1
        super()._run_once()  # type: ignore[misc]


def test_async_for_receives_in_order_and_does_not_spin() -> None:
    ch = Channel(100)

    async def producer() -> None:
        await asyncio.sleep(0.05)
        for i in range(10):
            ch.send(i)
        await asyncio.sleep(0.05)
        ch.close()

    async def consumer() -> list[int]:
        out = []
        async for item in ch:
            out.append(item)
        return out

    async def main() -> list[int]:
        task = asyncio.create_task(producer())
        out = await consumer()
        await task
        return out

    loop = CountingLoop()
    try:
        CountingLoop.iterations = 0
        assert loop.run_until_complete(main()) == list(range(10))
    finally:
        loop.close()
    # A spinning consumer would run thousands of iterations in 0.1 s of waiting.
    assert CountingLoop.iterations < 200, CountingLoop.iterations


def test_async_for_fed_from_another_thread() -> None:
    ch = Channel(100)

    def feed() -> None:
        for i in range(50):
            ch.send(i)
            if i % 10 == 0:
                time.sleep(0.001)
        ch.close()

    async def main() -> list[int]:
        t = threading.Thread(target=feed)
        t.start()
        out = [x async for x in ch]
        t.join(WAIT)
        return out

    assert asyncio.run(main()) == list(range(50))


def test_anext_on_closed_empty_channel_stops() -> None:
    ch = Channel(1)
    ch.close()

    async def main() -> None:
        with pytest.raises(StopAsyncIteration):
            await ch.__anext__()

    asyncio.run(main())


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "exc"),
    [
        (0, ValueError),
        (-1, ValueError),
        (2**40, ValueError),
        ("10", TypeError),
        (1.5, TypeError),
        (True, TypeError),
    ],
)
def test_bad_capacity(capacity: object, exc: type) -> None:
    with pytest.raises(exc, match="capacity"):
        Channel(capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("strategy", "exc"), [(5, TypeError), ("nope", ValueError), (object(), TypeError)]
)
def test_bad_strategy(strategy: object, exc: type) -> None:
    with pytest.raises(exc, match="strategy"):
        Channel(2, strategy)  # type: ignore[arg-type]


def test_bad_strategy_arguments() -> None:
    with pytest.raises(ValueError, match="action"):
        SimpleBufferStrategy("sometimes")
    with pytest.raises(TypeError, match="action"):
        SimpleBufferStrategy(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_action"):
        PriorityBufferStrategy("nope")
    with pytest.raises(TypeError, match="rules"):
        PriorityBufferStrategy(rules=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rules key"):
        PriorityBufferStrategy(rules={"no.such.type": "drop"})
    with pytest.raises(ValueError, match="rules value"):
        PriorityBufferStrategy(rules={EventType.SERVICE_FAILED: "explode"})


def test_bad_send_and_receive_arguments_leave_the_channel_unchanged() -> None:
    ch = Channel(2)
    ch.send("keep")
    before = ch.stats()
    with pytest.raises(TypeError, match="item"):
        ch.send(None)
    with pytest.raises(ValueError, match="timeout"):
        ch.send("x", timeout=-1)
    with pytest.raises(ValueError, match="severity"):
        ch.send("x", severity="loud")
    with pytest.raises(ValueError, match="timeout"):
        ch.recv(timeout=-1)
    with pytest.raises(ValueError, match="max_items"):
        ch.drain(-1)
    with pytest.raises(TypeError, match="max_items"):
        ch.drain("3")
    assert ch.stats() == before
    assert ch.drain() == ["keep"]


@pytest.mark.parametrize(
    "call", [lambda ch: ch.recv(timeout="x"), lambda ch: ch.send(1, timeout="x")]
)
def test_non_numeric_timeout_names_the_parameter(call: Any) -> None:
    # PyO3 names the argument in a note ("while processing 'timeout'"); pytest matches notes.
    ch = Channel(2)
    with pytest.raises(TypeError, match="timeout"):
        call(ch)
    assert ch.stats()["sent"] == 0


# --- property: every non-blocking strategy behaves like a small Python model -------------

Op = tuple[str, int]  # ("send", severity rank) or ("drain", n)
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 5)),
        st.tuples(st.just("drain"), st.integers(0, 3)),
    ),
    max_size=60,
)


def model_run(
    action: str, priority: bool, cap: int, ops: list[Op]
) -> tuple[list[int], dict[str, int]]:
    buf: list[tuple[int, int]] = []  # (seq, severity)
    out: list[int] = []
    stats = {"sent": 0, "dropped": 0, "evicted": 0}
    for i, (op, arg) in enumerate(ops):
        if op == "drain":
            buf.sort()
            out += [seq for seq, _ in buf[:arg]]
            del buf[:arg]
            continue
        stats["sent"] += 1
        if len(buf) < cap:
            buf.append((i, arg))
        elif action == "drop":
            stats["dropped"] += 1
        elif priority:
            lowest = min(sev for _, sev in buf)
            if lowest > arg:
                stats["dropped"] += 1
            else:
                victim = min(x for x in buf if x[1] == lowest)
                buf.remove(victim)
                stats["evicted"] += 1
                buf.append((i, arg))
        else:
            buf.sort()
            buf.pop(0)
            stats["evicted"] += 1
            buf.append((i, arg))
    out += [seq for seq, _ in sorted(buf)]
    return out, stats


@pytest.mark.parametrize(
    ("action", "priority"), [("drop", False), ("evict_oldest", False), ("evict_oldest", True)]
)
@settings(max_examples=100, deadline=None, database=None)
@given(cap=st.integers(1, 4), ops=ops_strategy)
def test_channel_matches_model(action: str, priority: bool, cap: int, ops: list[Op]) -> None:
    strategy = PriorityBufferStrategy(action) if priority else SimpleBufferStrategy(action)
    ch = Channel(cap, strategy)
    out: list[int] = []
    for i, (op, arg) in enumerate(ops):
        if op == "send":
            ch.send(i, severity=list(Severity)[arg])
        else:
            out += ch.drain(arg)
        check_invariant(ch)
    out += ch.drain()
    expected, stats = model_run(action, priority, cap, ops)
    assert out == expected
    s = check_invariant(ch)
    assert (s["sent"], s["dropped"], s["evicted"]) == (
        stats["sent"],
        stats["dropped"],
        stats["evicted"],
    )


def test_several_async_consumers_share_a_channel_and_all_end_on_close() -> None:
    async def main() -> dict[int, list[int]]:
        ch = Channel(100)
        got: dict[int, list[int]] = {0: [], 1: [], 2: []}

        async def consume(i: int) -> None:
            async for x in ch:
                got[i].append(x)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(consume(i)) for i in got]
        await asyncio.sleep(0.02)  # every consumer is waiting

        def feed() -> None:
            for i in range(30):
                ch.send(i)
            ch.close()

        t = threading.Thread(target=feed)
        t.start()
        _done, pending = await asyncio.wait(tasks, timeout=WAIT)
        t.join(WAIT)
        for p in pending:
            p.cancel()
        assert not pending, "a consumer was never woken"
        return got

    got = asyncio.run(main())
    assert sorted(x for xs in got.values() for x in xs) == list(range(30))
    for xs in got.values():
        assert xs == sorted(xs)
