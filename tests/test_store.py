"""The state store: semantics, queries, subscriptions (order, gaps, clears), metrics,
concurrency and bad input."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tb_support import WAIT, run_threads, update, wait_until

from tracebus import (
    BufferAction,
    ChannelClosed,
    ManagedServiceUpdate,
    PriorityBufferStrategy,
    ServiceState,
    ServiceStateSnapshot,
    ServiceType,
    StateChangeEvent,
    StateStore,
)

S = ServiceState


def test_empty_store(store: StateStore) -> None:
    assert store.get_service_state("nope") is None
    assert store.get_all_service_states() == {}
    assert len(store) == 0
    m = store.get_metrics()
    assert m["total_services"] == 0
    assert m["state_changes"] == 0
    assert m["active_subscriptions"] == 0
    assert m["services_by_type"] == {} and m["services_by_state"] == {}


def test_changed_when_new_or_state_differs_snapshot_stored_either_way(store: StateStore) -> None:
    u1 = update("pf", S.STARTING)
    assert store.set_service_state(u1) is True  # new label
    u2 = update("pf", S.STARTING, pid=42)
    assert store.set_service_state(u2) is False  # same state
    snap = store.get_service_state("pf")
    assert snap is not None and snap.pid == 42 and snap.event_id == u2.event_id  # stored anyway
    assert store.set_service_state(update("pf", S.RUNNING)) is True
    assert store.get_service_state("pf").state is S.RUNNING  # type: ignore[union-attr]
    assert store.get_metrics()["state_changes"] == 2


def test_transition_returns_old_and_new(store: StateStore) -> None:
    t = store.transition(update("a", S.STARTING))
    assert (t.changed, t.old_state, t.new_state) == (True, S.UNKNOWN, S.STARTING)
    t = store.transition(update("a", S.RUNNING))
    assert (t.changed, t.old_state, t.new_state) == (True, S.STARTING, S.RUNNING)
    t = store.transition(update("a", S.RUNNING))
    assert (t.changed, t.old_state, t.new_state) == (False, S.RUNNING, S.RUNNING)
    assert "changed=False" in repr(t)


def test_if_newer_keeps_the_newest_update_by_timestamp_then_event_id(store: StateStore) -> None:
    sub = store.subscribe()
    first = update("a", S.STARTING, timestamp=10.0, event_id="evt_0000000000000005")
    assert store.transition(first, if_newer=True).stored  # unknown label
    older = update("a", S.FAILED, timestamp=9.0, event_id="evt_00000000000000ff")
    t = store.transition(older, if_newer=True)
    assert (t.stored, t.changed, t.updated) == (False, False, False)
    assert (t.old_state, t.new_state) == (S.STARTING, S.STARTING)
    assert "stored=False" in repr(t)
    assert store.set_service_state(first, if_newer=True) is False  # the same update again
    tie = update("a", S.RUNNING, timestamp=10.0, event_id="evt_0000000000000006")
    assert store.set_service_state(tie, if_newer=True) is True  # same time, larger id
    snap = store.get_service_state("a")
    assert snap is not None and snap.event_id == tie.event_id
    # Without if_newer the write is unconditional, as before.
    assert store.transition(older).stored
    assert store.get_service_state("a").state is S.FAILED  # type: ignore[union-attr]
    seen = [c.new_state for c in sub.drain()]  # skipped updates notify nobody
    assert seen == [S.STARTING, S.RUNNING, S.FAILED]
    with pytest.raises(TypeError, match="if_newer"):
        store.set_service_state(first, if_newer="yes")  # type: ignore[arg-type]


def test_if_newer_under_concurrent_writers_keeps_the_newest(store: StateStore) -> None:
    """Writers racing with updates of random age: the one left is the newest of all."""
    import random

    updates = [
        update("x", S.RUNNING, timestamp=float(random.Random(i).randrange(1000)), pid=i)
        for i in range(4000)
    ]

    def write(part: list[ManagedServiceUpdate]) -> None:
        for u in part:
            store.set_service_state(u, if_newer=True)

    run_threads(4, lambda i: write(updates[i::4]))
    newest = max(updates, key=lambda u: (u.timestamp, u.event_id))
    snap = store.get_service_state("x")
    assert snap is not None and snap.event_id == newest.event_id


def test_snapshot_uses_the_update_timestamp(store: StateStore) -> None:
    store.set_service_state(update("a", timestamp=1234.5))
    snap = store.get_service_state("a")
    assert isinstance(snap, ServiceStateSnapshot)
    assert snap.last_updated == 1234.5


def test_queries(store: StateStore) -> None:
    store.set_service_state(update("pf-b", S.RUNNING, ServiceType.PORT_FORWARD))
    store.set_service_state(update("pf-a", S.FAILED, ServiceType.PORT_FORWARD))
    store.set_service_state(update("mcp", S.RUNNING, ServiceType.MCP_SERVER))
    store.set_service_state(update("db", S.STARTING, "CustomDB"))
    all_ = store.get_all_service_states()
    assert set(all_) == {"pf-a", "pf-b", "mcp", "db"}
    assert all(isinstance(v, ServiceStateSnapshot) for v in all_.values())
    assert [s.label for s in store.get_services_by_type(ServiceType.PORT_FORWARD)] == [
        "pf-a",
        "pf-b",
    ]
    assert [s.label for s in store.get_services_by_type("CustomDB")] == ["db"]
    assert store.get_services_by_type(ServiceType.SYSTEM) == []
    assert [s.label for s in store.get_services_by_state(S.RUNNING)] == ["mcp", "pf-b"]
    assert [s.label for s in store.get_services_by_state("Failed")] == ["pf-a"]
    assert store.get_services_by_state(S.STOPPED) == []
    m = store.get_metrics()
    assert m["total_services"] == 4 == len(store)
    assert m["services_by_type"] == {
        ServiceType.PORT_FORWARD: 2,
        ServiceType.MCP_SERVER: 1,
        "CustomDB": 1,
    }
    assert m["services_by_state"] == {S.RUNNING: 2, S.FAILED: 1, S.STARTING: 1}


def test_clear_and_clear_all(store: StateStore) -> None:
    for i in range(5):
        store.set_service_state(update(f"s{i}"))
    assert store.clear("s0") is True
    assert store.clear("s0") is False
    assert store.get_service_state("s0") is None
    assert len(store) == 4
    assert store.clear_all() == 4
    assert len(store) == 0
    assert store.clear_all() == 0
    m = store.get_metrics()
    assert m["total_services"] == 0
    assert m["services_by_type"] == {} and m["services_by_state"] == {}


def test_metrics_never_negative_through_type_and_state_moves(store: StateStore) -> None:
    store.set_service_state(update("x", S.RUNNING, ServiceType.PORT_FORWARD))
    store.set_service_state(update("x", S.FAILED, ServiceType.MCP_SERVER))  # type moved too
    m = store.get_metrics()
    assert m["services_by_type"] == {ServiceType.MCP_SERVER: 1}
    assert m["services_by_state"] == {S.FAILED: 1}
    store.clear("x")
    store.clear("x")
    store.clear_all()
    store.set_service_state(update("x", S.STOPPED))
    store.clear_all()
    m = store.get_metrics()
    for k, v in m.items():
        if isinstance(v, dict):
            assert all(n > 0 for n in v.values()), (k, v)
        else:
            assert v >= 0, (k, v)
    assert m["services_by_type"] == {} and m["services_by_state"] == {}


# --- subscriptions -------------------------------------------------------------------------


def test_subscriber_receives_changes_with_snapshot_and_sequence(store: StateStore) -> None:
    sub = store.subscribe()
    u = update("pf", S.STARTING)
    store.set_service_state(u)
    store.set_service_state(update("pf", S.RUNNING))
    evs = sub.drain()
    assert all(isinstance(e, StateChangeEvent) for e in evs)
    assert [(e.label, e.old_state, e.new_state, e.sequence) for e in evs] == [
        ("pf", S.UNKNOWN, S.STARTING, 0),
        ("pf", S.STARTING, S.RUNNING, 1),
    ]
    assert evs[0].snapshot is not None and evs[0].snapshot.event_id == u.event_id
    assert evs[0].cleared is False
    assert "sequence=0" in repr(evs[0])


def test_same_state_with_new_data_notifies_but_identical_does_not(store: StateStore) -> None:
    sub = store.subscribe("pf")
    u = update("pf", S.RUNNING)
    store.set_service_state(u)
    store.set_service_state(update("pf", S.RUNNING, pid=10))  # pid changed: notify
    store.set_service_state(update("pf", S.RUNNING, pid=10))  # nothing changed
    evs = sub.drain()
    assert len(evs) == 2
    assert evs[1].old_state is S.RUNNING and evs[1].new_state is S.RUNNING
    assert evs[1].snapshot.pid == 10


def test_label_subscription_only_sees_its_label(store: StateStore) -> None:
    sub_a = store.subscribe("a")
    sub_all = store.subscribe(None)
    store.set_service_state(update("a"))
    store.set_service_state(update("b"))
    store.clear("b")
    assert [e.label for e in sub_a.drain()] == ["a"]
    assert [e.label for e in sub_all.drain()] == ["a", "b", "b"]


def test_clear_notifies_with_cleared(store: StateStore) -> None:
    store.set_service_state(update("a", S.RUNNING))
    store.set_service_state(update("b", S.FAILED))
    sub = store.subscribe()
    store.clear("a")
    store.clear("nope")  # nothing to notify
    store.clear_all()
    evs = sub.drain()
    assert [(e.label, e.old_state, e.new_state, e.cleared, e.snapshot) for e in evs] == [
        ("a", S.RUNNING, S.UNKNOWN, True, None),
        ("b", S.FAILED, S.UNKNOWN, True, None),
    ]
    assert [e.sequence for e in evs] == [0, 1]


def test_closing_a_subscription(store: StateStore) -> None:
    sub = store.subscribe()
    assert store.get_metrics()["active_subscriptions"] == 1
    store.set_service_state(update("a"))
    sub.close()
    assert store.get_metrics()["active_subscriptions"] == 0
    store.set_service_state(update("b"))
    assert [e.label for e in sub.drain()] == ["a"]  # buffered items stay readable
    with pytest.raises(ChannelClosed):
        sub.recv(timeout=0)
    with sub:
        pass
    with store.subscribe() as s2:
        assert store.get_metrics()["active_subscriptions"] == 1
    assert s2.closed
    assert store.get_metrics()["active_subscriptions"] == 0


def test_store_channel_cannot_be_sent_to(store: StateStore) -> None:
    sub = store.subscribe()
    with pytest.raises(TypeError):
        sub.send(update())


def test_gap_detection_when_the_buffer_overflows_drop(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=5)  # default strategy: drop the newest
    states = [S.STARTING, S.RUNNING]
    for i in range(20):
        store.set_service_state(update("pf", states[i % 2]))
    first = sub.drain()
    assert [e.sequence for e in first] == [0, 1, 2, 3, 4]
    store.set_service_state(update("pf", S.FAILED))
    nxt = sub.drain()
    assert [e.sequence for e in nxt] == [20]  # 5..19 were dropped: the consumer sees a gap
    stats = sub.stats()
    assert stats["dropped"] == 15
    assert (
        stats["sent"]
        == stats["delivered"] + stats["dropped"] + stats["evicted"] + stats["buffered"]
    )
    m = store.get_metrics()
    assert m["subscription_drops"] == 15
    assert m["subscription_events"] == 6


def test_gap_detection_with_evict_oldest(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=5, strategy=BufferAction.EVICT_OLDEST)
    for i in range(20):
        store.set_service_state(update(f"s{i}"))
    evs = sub.drain()
    assert [e.sequence for e in evs] == [15, 16, 17, 18, 19]
    assert [e.label for e in evs] == [f"s{i}" for i in range(15, 20)]
    assert sub.stats()["evicted"] == 15
    assert store.get_metrics()["subscription_drops"] == 15


def test_priority_subscription_keeps_failures(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=3, strategy=PriorityBufferStrategy())
    store.set_service_state(update("f1", S.FAILED))
    for i in range(10):
        store.set_service_state(update(f"r{i}", S.RUNNING))
    store.set_service_state(update("f2", S.FAILED))
    labels = [e.label for e in sub.drain()]
    assert "f1" in labels and "f2" in labels


def test_block_subscriber_sees_everything_in_order(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=1, strategy=BufferAction.BLOCK)
    seen: list[StateChangeEvent] = []

    def consume() -> None:
        for ev in sub:
            seen.append(ev)

    t = threading.Thread(target=consume)
    t.start()
    seq = [S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED]
    for i in range(200):
        store.set_service_state(update("pf", seq[i % 4]))  # waits for room, GIL released
    assert wait_until(lambda: len(seen) == 200)
    sub.close()
    t.join(WAIT)
    assert [e.sequence for e in seen] == list(range(200))
    assert [e.new_state for e in seen] == [seq[i % 4] for i in range(200)]
    assert sub.stats()["dropped"] == 0
    assert store.get_metrics()["subscription_drops"] == 0


# --- concurrency ---------------------------------------------------------------------------


def test_eight_threads_hammering_one_store_exact_counts(store: StateStore) -> None:
    n_threads, labels_per, rounds = 8, 25, 12
    cycle = [S.STARTING, S.RUNNING, S.RUNNING, S.FAILED]  # one repeat per cycle: not a change
    sub = store.subscribe(buffer_size=100_000)

    def work(i: int) -> None:
        for r in range(rounds):
            for j in range(labels_per):
                store.set_service_state(update(f"t{i}-s{j}", cycle[r % len(cycle)]))
                store.get_service_state(f"t{i}-s{(j + 1) % labels_per}")
                if j % 5 == 0:
                    store.get_all_service_states()

    run_threads(n_threads, work)
    total = n_threads * labels_per
    # Per label: first update is a change (new), then cycle transitions; STARTING->RUNNING
    # change, RUNNING->RUNNING not, RUNNING->FAILED change, FAILED->STARTING change.
    changes_per_label = 1 + sum(
        1 for r in range(1, rounds) if cycle[r % len(cycle)] != cycle[(r - 1) % len(cycle)]
    )
    m = store.get_metrics()
    assert m["total_services"] == total == len(store)
    assert m["state_changes"] == total * changes_per_label
    assert m["operations"] == total * rounds
    final_state = cycle[(rounds - 1) % len(cycle)]
    assert m["services_by_state"] == {final_state: total}
    assert m["services_by_type"] == {ServiceType.PORT_FORWARD: total}
    # Identical updates (RUNNING->RUNNING with the same data) notify nobody.
    assert m["subscription_events"] == total * changes_per_label
    assert m["subscription_drops"] == 0
    evs = sub.drain()
    assert len(evs) == total * changes_per_label
    assert [e.sequence for e in evs] == list(range(len(evs)))


def test_subscriber_sees_every_change_in_order_with_concurrent_writers(store: StateStore) -> None:
    """Eight writers on the same labels: each change's old_state is the previous change's
    new_state for that label, and the last one matches the store."""
    sub = store.subscribe(buffer_size=100_000)
    labels = [f"shared{i}" for i in range(4)]
    states = list(ServiceState)[1:]  # not Unknown

    def work(i: int) -> None:
        for r in range(150):
            store.set_service_state(update(labels[(i + r) % 4], states[(i * 7 + r) % len(states)]))

    run_threads(8, work)
    evs = sub.drain()
    assert [e.sequence for e in evs] == list(range(len(evs)))
    last: dict[str, ServiceState] = {}
    for e in evs:
        assert e.old_state is last.get(e.label, S.UNKNOWN), e
        last[e.label] = e.new_state
    for label in labels:
        snap = store.get_service_state(label)
        assert snap is not None and snap.state is last[label]
    assert store.get_metrics()["subscription_drops"] == 0


def test_concurrent_subscribe_close_and_writes(store: StateStore) -> None:
    stop = threading.Event()

    def churn(i: int) -> None:
        while not stop.is_set():
            s = store.subscribe(buffer_size=2)
            s.drain()
            s.close()

    def write(i: int) -> None:
        for r in range(300):
            store.set_service_state(update(f"w{i}", [S.RUNNING, S.FAILED][r % 2]))

    churners = [threading.Thread(target=churn, args=(i,)) for i in range(2)]
    for t in churners:
        t.start()
    try:
        run_threads(4, write)
    finally:
        stop.set()
        for t in churners:
            t.join(WAIT)
    m = store.get_metrics()
    assert m["active_subscriptions"] == 0
    assert m["total_services"] == 4
    assert m["state_changes"] == 4 * 300


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "param"),
    [
        (lambda s: s.set_service_state("not an update"), TypeError, "update"),
        (lambda s: s.set_service_state(None), TypeError, "update"),
        (lambda s: s.transition({"state": "Running"}), TypeError, "update"),
        (lambda s: s.get_service_state(""), ValueError, "label"),
        (lambda s: s.get_service_state("a\x00"), ValueError, "label"),
        (lambda s: s.get_service_state(3), TypeError, "label"),
        (lambda s: s.clear(None), TypeError, "label"),
        (lambda s: s.clear(""), ValueError, "label"),
        (lambda s: s.get_services_by_state("Exploded"), ValueError, "state"),
        (lambda s: s.get_services_by_state(1), TypeError, "state"),
        (lambda s: s.get_services_by_type(""), ValueError, "service_type"),
        (lambda s: s.subscribe(""), ValueError, "label"),
        (lambda s: s.subscribe(5), TypeError, "label"),
        (lambda s: s.subscribe(buffer_size=0), ValueError, "buffer_size"),
        (lambda s: s.subscribe(buffer_size=-3), ValueError, "buffer_size"),
        (lambda s: s.subscribe(buffer_size=10**12), ValueError, "buffer_size"),
        (lambda s: s.subscribe(buffer_size="big"), TypeError, "buffer_size"),
        (lambda s: s.subscribe(strategy=42), TypeError, "strategy"),
        (lambda s: s.subscribe(strategy="sideways"), ValueError, "strategy"),
    ],
)
def test_bad_input_raises_and_leaves_store_unchanged(call: object, exc: type, param: str) -> None:
    store = StateStore()
    store.set_service_state(update("keep", S.RUNNING))
    before = store.get_metrics()
    snap = store.get_service_state("keep")
    with pytest.raises(exc, match=param):
        call(store)  # type: ignore[operator]
    assert store.get_metrics() == before
    assert store.get_service_state("keep") == snap


@pytest.mark.parametrize(
    ("size", "exc"), [(0, ValueError), (-1, ValueError), (2**40, ValueError), (1.0, TypeError)]
)
def test_bad_subscription_buffer(size: object, exc: type) -> None:
    with pytest.raises(exc, match="subscription_buffer"):
        StateStore(subscription_buffer=size)  # type: ignore[arg-type]


def test_default_subscription_buffer_is_100() -> None:
    assert StateStore().subscribe().capacity == 100
    assert StateStore(subscription_buffer=7).subscribe().capacity == 7


def test_invalid_update_never_reaches_the_store(store: StateStore) -> None:
    with pytest.raises(ValueError):
        store.set_service_state(ManagedServiceUpdate("PortForward", "", "Running"))
    with pytest.raises(ValueError):
        store.set_service_state(ManagedServiceUpdate("PortForward", "x", "Bogus"))
    assert len(store) == 0
    assert store.get_metrics()["operations"] == 0


def test_closing_a_full_block_subscription_wakes_the_writer(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=1, strategy=BufferAction.BLOCK)
    store.set_service_state(update("a", S.STARTING))
    done = threading.Event()

    def writer() -> None:
        store.set_service_state(update("a", S.RUNNING))  # waits for room, GIL released
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    assert wait_until(lambda: sub.stats()["blocked"] == 1)
    # Reads never wait for notifications, even while a writer is blocked.
    assert store.get_service_state("a").state is S.RUNNING  # type: ignore[union-attr]
    assert not done.is_set()
    sub.close()
    t.join(WAIT)
    assert done.is_set()
    assert [e.new_state for e in sub.drain()] == [S.STARTING]
    assert store.get_metrics()["subscription_drops"] == 1
    # The store keeps working for everyone else.
    assert store.set_service_state(update("a", S.STOPPED)) is True


def test_priority_store_subscription_keeps_sequence_order(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=4, strategy=PriorityBufferStrategy())
    states = [S.FAILED, S.RUNNING, S.STARTING, S.RETRYING, S.FAILED, S.RUNNING, S.STOPPING]
    for i, s in enumerate(states):
        store.set_service_state(update(f"s{i}", s))
    evs = sub.drain()
    seqs = [e.sequence for e in evs]
    assert seqs == sorted(seqs)  # consumers still see store order, with gaps for losses
    assert {e.label for e in evs} >= {"s0", "s4"}  # failures survive
    s = sub.stats()
    assert s["sent"] == 7 == s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"]


def test_async_for_over_store_subscription(store: StateStore) -> None:
    sub = store.subscribe()

    async def main() -> list[tuple[str, int]]:
        def feed() -> None:
            for i in range(10):
                store.set_service_state(update(f"s{i}"))
            sub.close()

        t = threading.Thread(target=feed)
        t.start()
        out = [(e.label, e.sequence) async for e in sub]
        t.join(WAIT)
        return out

    assert asyncio.run(main()) == [(f"s{i}", i) for i in range(10)]


def test_memory_metric_follows_contents(store: StateStore) -> None:
    assert store.get_metrics()["memory_bytes"] == 0
    store.set_service_state(update("a"))
    one = store.get_metrics()["memory_bytes"]
    for i in range(99):
        store.set_service_state(update(f"s{i}", error_detail="x" * 100))
    many = store.get_metrics()["memory_bytes"]
    assert 0 < one < many
    assert many >= 100 * 100  # at least the error texts themselves
    store.clear_all()
    assert store.get_metrics()["memory_bytes"] == 0


def test_block_subscriber_that_writes_back_does_not_deadlock(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=1, strategy=BufferAction.BLOCK)
    seen: list[str] = []

    def supervisor() -> None:
        for ev in sub:
            if ev.new_state is S.STARTING:
                seen.append(ev.label)
                store.set_service_state(update(ev.label, S.RUNNING))

    def writer() -> None:
        for label in "abcdef":
            store.set_service_state(update(label, S.STARTING))

    c = threading.Thread(target=supervisor, daemon=True)
    w = threading.Thread(target=writer, daemon=True)
    c.start()
    w.start()
    try:
        w.join(3.0)
        finished = not w.is_alive()
        assert finished, "writer still blocked after 3 s"
        # A notifier that cannot wait (the supervisor waits for its turn to write back)
        # drops, counted: bounded, never past capacity, and every change is accounted for.
        assert wait_until(lambda: sub.stats()["buffered"] == 0, timeout=3.0)
        running = {s.label for s in store.get_services_by_state(S.RUNNING)}
        assert running == set(seen)
        st = sub.stats()
        assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
        assert st["dropped"] == st["overflowed"]
        assert st["delivered"] + st["dropped"] == 6 + len(seen)
    finally:
        sub.close()  # closing wakes the blocked writer (its notification counts as dropped)
        w.join(WAIT)
        c.join(WAIT)


def test_subscriber_that_writes_back_with_default_strategy(store: StateStore) -> None:
    sub = store.subscribe(buffer_size=100)  # drop: writers never wait

    def supervisor() -> None:
        for ev in sub:
            if ev.new_state is S.STARTING:
                store.set_service_state(update(ev.label, S.RUNNING))

    c = threading.Thread(target=supervisor)
    c.start()
    for label in "abcdef":
        store.set_service_state(update(label, S.STARTING))
    assert wait_until(lambda: len(store.get_services_by_state(S.RUNNING)) == 6)
    sub.close()
    c.join(WAIT)
    assert sub.stats()["dropped"] == 0
