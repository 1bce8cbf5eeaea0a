"""Issue 12 items 1 and 6: one slow store watcher must not freeze every writer, BLOCK
timeouts, and ``EventBusAdapter.report`` publishing in the store's order per label.

Every wait that could hang runs in a daemon thread joined with a liveness bound (closing
the watcher afterwards wakes it), or in a child process with a timeout, under
pytest-timeout."""

from __future__ import annotations

import itertools
import random
import sys
import threading
import time

import pytest
from reliability_util import WAIT, Figures, run_child, run_threads, scaled, wait_until

from tracebus import (
    BufferAction,
    BusClosedError,
    EventBus,
    EventBusAdapter,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
    StateTransition,
)
from tracebus.eventstore.rebuild import update_from_event

S = ServiceState
BLOCK = SimpleBufferStrategy(BufferAction.BLOCK)


def upd(label: str, state: ServiceState) -> ManagedServiceUpdate:
    return ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, state)


def busy_consumer(ch: object) -> threading.Thread:
    """Makes another thread the channel's consumer (it received once), then leaves it busy:
    the test thread's own writes are then not taken for the consumer's."""
    t = threading.Thread(target=ch.try_recv, daemon=True)  # type: ignore[attr-defined]
    t.start()
    t.join(WAIT)
    return t


def in_thread(fn: object) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        fn()  # type: ignore[operator]
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, done


@pytest.mark.timeout(120)
def test_busy_block_watcher_does_not_freeze_writers_of_other_labels(figures: Figures) -> None:
    store = StateStore()
    watch = store.subscribe("a", buffer_size=1, strategy=BLOCK)
    busy_consumer(watch)
    store.set_service_state(upd("a", S.STARTING))  # fills the watcher
    blocked, blocked_done = in_thread(lambda: store.set_service_state(upd("a", S.RUNNING)))
    try:
        assert wait_until(lambda: watch.stats()["blocked"] == 1)
        n = scaled(200)

        def other_labels() -> None:
            for i in range(n):
                store.set_service_state(upd(f"b{i % 7}", S.RUNNING if i % 2 else S.STOPPED))

        writers = [in_thread(other_labels) for _ in range(3)]
        finished = all(done.wait(WAIT) for _, done in writers)
        assert finished, "a write to a label nobody blocks on waited for the full watcher"
        # Reads go on too, and the data write of the blocked writer is already visible.
        assert store.get_service_state("a").state is S.RUNNING  # type: ignore[union-attr]
        assert not blocked_done.is_set()
        # The consumer makes room: the owed change arrives, in order, gap-free.
        got = [watch.recv(timeout=WAIT)]
        assert blocked_done.wait(WAIT)
        got.append(watch.recv(timeout=WAIT))
        assert [(e.sequence, e.new_state) for e in got] == [(0, S.STARTING), (1, S.RUNNING)]
    finally:
        watch.close()
        blocked.join(WAIT)
    figures.events = 2 + 3 * n
    figures.threads = 5
    figures.delivered = 2


@pytest.mark.timeout(120)
def test_block_timeout_drops_the_change_and_the_writer_returns(figures: Figures) -> None:
    store = StateStore()
    strategy = SimpleBufferStrategy("block", timeout=0.05)
    assert strategy.timeout == 0.05
    watch = store.subscribe(None, buffer_size=1, strategy=strategy)
    busy_consumer(watch)

    def three_writes() -> None:
        for s in (S.STARTING, S.RUNNING, S.FAILED):
            store.set_service_state(upd("a", s))

    t, done = in_thread(three_writes)
    try:
        assert done.wait(WAIT), "a writer never returned from a BLOCK watcher with a timeout"
    finally:
        if not done.is_set():
            watch.close()
        t.join(WAIT)
    st = watch.stats()
    assert (st["sent"], st["dropped"], st["timed_out"], st["buffered"]) == (3, 2, 2, 1)
    assert st["sent"] == st["delivered"] + st["dropped"] + st["evicted"] + st["buffered"]
    assert store.get_metrics()["subscription_drops"] == 2
    assert [e.sequence for e in watch.drain()] == [0]
    store.set_service_state(upd("a", S.STOPPED))
    assert [e.sequence for e in watch.drain()] == [3]  # the gap shows the two drops
    figures.events = 4
    figures.threads = 2
    figures.delivered = 2
    figures.dropped = 2


def test_block_timeout_argument_is_checked() -> None:
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            SimpleBufferStrategy("block", timeout=bad)
    with pytest.raises(TypeError, match="timeout"):
        SimpleBufferStrategy("block", timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout"):
        SimpleBufferStrategy("block", timeout=True)
    # Larger than the clock can represent: no timeout.
    assert SimpleBufferStrategy("block", timeout=1e300).timeout is None
    assert SimpleBufferStrategy("block").timeout is None


@pytest.mark.timeout(60)
def test_block_timeout_applies_to_bus_subscriptions_too() -> None:
    bus = EventBus(history_size=0)
    ch = bus.subscribe_channel(None, 1, SimpleBufferStrategy("block", timeout=0.05))
    busy_consumer(ch)
    ev = ServiceStateEvent(ServiceType.PORT_FORWARD, "a", S.UNKNOWN, S.RUNNING)
    t, done = in_thread(lambda: [bus.publish(ev) for _ in range(3)])
    try:
        assert done.wait(WAIT), "publish never returned from a BLOCK channel with a timeout"
    finally:
        ch.close()
        t.join(WAIT)
        bus.close()
    st = ch.stats()
    assert (st["dropped"], st["timed_out"]) == (2, 2)


@pytest.mark.timeout(60)
def test_writer_waiting_on_a_full_watcher_is_interruptible() -> None:
    # In a child process: Ctrl-C (SIGINT) must interrupt the waiting writer.
    code = (
        "import os, signal, threading, time, tracebus as tb\n"
        "s = tb.StateStore()\n"
        "w = s.subscribe('a', buffer_size=1, strategy='block')\n"
        "t = threading.Thread(target=w.try_recv); t.start(); t.join()\n"
        "s.set_service_state(tb.ManagedServiceUpdate('PortForward', 'a', 'Starting'))\n"
        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    s.set_service_state(tb.ManagedServiceUpdate('PortForward', 'a', 'Running'))\n"
        "except KeyboardInterrupt:\n"
        "    st, m = w.stats(), s.get_metrics()\n"
        "    print('interrupted', st['sent'], st['dropped'], m['subscription_drops'])\n"
    )
    r = run_child(code, timeout=20)
    out = "hung" if r is None else r.stdout.strip()
    # The data write happened; the owed change was given up and counted as dropped.
    assert out == "interrupted 2 1 1", out


@pytest.mark.timeout(240)
def test_each_watcher_sees_its_changes_in_store_order(figures: Figures) -> None:
    store = StateStore()
    labels = [f"svc-{i}" for i in range(4)]
    everything = store.subscribe(None, buffer_size=2, strategy=BLOCK)
    per_label = {lb: store.subscribe(lb, buffer_size=1, strategy=BLOCK) for lb in labels}
    n = scaled(1_500)
    seen: dict[str, list[tuple[int, ServiceState, ServiceState]]] = {}
    stop = threading.Event()

    def consume(key: str, ch: object) -> None:
        out = seen.setdefault(key, [])
        while True:
            items = ch.drain(8)  # type: ignore[attr-defined]
            if not items:
                if stop.is_set() and len(ch) == 0:  # type: ignore[arg-type]
                    return
                time.sleep(0.0005)
            out += [(e.sequence, e.old_state, e.new_state) for e in items]
            if key == "all":
                for e in items:
                    seen.setdefault(f"all:{e.label}", []).append(
                        (e.sequence, e.old_state, e.new_state)
                    )

    states = [S.STARTING, S.RUNNING, S.STOPPED, S.FAILED]

    def writer(w: int) -> None:
        rnd = random.Random(w)
        for _ in range(n):
            store.set_service_state(upd(rnd.choice(labels), rnd.choice(states)))

    consumers = [threading.Thread(target=consume, args=("all", everything), daemon=True)]
    consumers += [
        threading.Thread(target=consume, args=(lb, ch), daemon=True) for lb, ch in per_label.items()
    ]
    for c in consumers:
        c.start()
    try:
        run_threads([lambda w=w: writer(w) for w in range(4)], timeout=WAIT * 6)
    finally:
        stop.set()
        for c in consumers:
            c.join(WAIT)
    # Nothing dropped (BLOCK, no timeout): every watcher's sequence numbers are gap-free and
    # each label's changes chain (old state = the previous change's new state).
    assert [q for q, _, _ in seen["all"]] == list(range(len(seen["all"])))
    for lb in labels:
        own = seen[lb]
        assert [q for q, _, _ in own] == list(range(len(own)))
        for chain in (own, seen.get(f"all:{lb}", [])):
            for (_, _, prev), (_, old, _) in itertools.pairwise(chain):
                assert old is prev
        assert [x[1:] for x in own] == [x[1:] for x in seen.get(f"all:{lb}", [])]
    figures.events = 4 * n
    figures.threads = 4 + len(consumers)
    figures.delivered = sum(len(seen[k]) for k in ["all", *labels])


@pytest.mark.timeout(240)
def test_report_events_chain_per_label_across_threads(figures: Figures) -> None:
    adapter = EventBusAdapter(EventBus(history_size=0), StateStore())
    events: list[ServiceStateEvent] = []
    adapter.bus.subscribe(None, events.append)
    threads, per_thread = 8, scaled(10_000)
    states = [S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible

    def reporter(w: int) -> None:
        rnd = random.Random(w)
        for _ in range(per_thread):
            adapter.report(upd("svc", rnd.choice(states)))

    try:
        run_threads([lambda w=w: reporter(w) for w in range(threads)], timeout=WAIT * 6)
    finally:
        sys.setswitchinterval(old_interval)
    broken = sum(1 for a, b in itertools.pairwise(events) if b.old_state is not a.new_state)
    assert broken == 0, f"{broken} of {len(events)} events do not chain"
    rebuilt = StateStore()
    for e in events:
        rebuilt.set_service_state(update_from_event(e))
    live = adapter.store.get_service_state("svc")
    again = rebuilt.get_service_state("svc")
    assert live is not None and again is not None
    assert (again.state, again.event_id, again.is_ready) == (
        live.state,
        live.event_id,
        live.is_ready,
    )
    figures.events = threads * per_thread
    figures.threads = threads
    figures.published = len(events)
    figures.errors = broken


def test_report_on_a_closed_bus_raises_before_touching_the_store() -> None:
    adapter = EventBusAdapter()
    t = adapter.report(upd("a", S.STARTING))
    assert isinstance(t, StateTransition)
    assert (t.old_state, t.new_state, t.updated) == (S.UNKNOWN, S.STARTING, True)
    adapter.bus.close()
    with pytest.raises(BusClosedError):
        adapter.report(upd("a", S.RUNNING))
    assert adapter.store.get_service_state("a").state is S.STARTING  # type: ignore[union-attr]
    assert adapter.store.get_metrics()["operations"] == 1


def test_thread_handler_reporting_the_label_being_reported_does_not_deadlock() -> None:
    # The reporter holds the label's report turn while its publish waits for room in a
    # thread handler's full BLOCK buffer; the handler reports the same label, so it waits
    # for that turn. The turn wait joins the waits-for graph: the publish finds the cycle
    # and takes on_self_block ("drop", counted) instead of both waiting for ever.
    code = (
        "import threading, tracebus as tb\n"
        "bus = tb.EventBus(); store = tb.StateStore()\n"
        "adapter = tb.EventBusAdapter(bus, store)\n"
        "states = ['Starting', 'Running']\n"
        "def handler(e):\n"
        "    adapter.report(tb.ManagedServiceUpdate('PortForward', 'a', 'Stopped'))\n"
        "bus.subscribe(tb.filter_by_source('a'), handler, mode='thread', buffer_size=1,\n"
        "              strategy=tb.SimpleBufferStrategy('block'))\n"
        "for i in range(300):\n"
        "    adapter.report(tb.ManagedServiceUpdate('PortForward', 'a', states[i % 2]))\n"
        "bus.close()\n"
        "print('done', bus.get_metrics()['events_dropped'] >= 0)\n"
    )
    r = run_child(code, timeout=60)
    out = "hung" if r is None else (r.stdout.strip() or r.stderr[-500:])
    assert out == "done True", out
