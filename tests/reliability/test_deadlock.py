"""Plan test 8: GIL deadlock hunt. A handler running in its own thread (A) calls the state
store while thread B publishes and thread C subscribes and unsubscribes, round after round,
with block-strategy buffers on both the bus and the store so threads really wait on each
other. A hang dumps every thread's traceback (conftest) and fails on the liveness bound."""

from __future__ import annotations

import threading
import time

from reliability_util import WAIT, Figures, run_child, run_threads, scaled, wait_until

from tracebus import (
    BufferAction,
    ChannelClosed,
    Event,
    EventBus,
    EventType,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
    filter_by_source,
)

BLOCK = SimpleBufferStrategy(BufferAction.BLOCK)
ROUNDS = scaled(200)
PER_ROUND = 50
STATES = [ServiceState.STARTING, ServiceState.RUNNING, ServiceState.STOPPING]


def test_gil_deadlock_hunt(figures: Figures) -> None:
    bus = EventBus(history_size=0)
    store = StateStore()
    # The store's watcher has a tiny block buffer: A's store calls wait for D to drain it.
    store_watch = store.subscribe(None, buffer_size=2, strategy=BLOCK)
    handled = [0]
    store_reads = [0]
    errors: list[BaseException] = []
    bus.set_error_handler(lambda exc, e, s: errors.append(exc))

    def handler_a(e: Event) -> None:
        # Runs in the subscription's worker thread (A), holding the GIL, and calls the store,
        # whose notification may block (GIL released) until D drains the watcher.
        n = int(e.timestamp)
        store.set_service_state(
            ManagedServiceUpdate(ServiceType.PORT_FORWARD, f"svc-{n % 7}", STATES[n % 3])
        )
        store_reads[0] += len(store.get_all_service_states())
        store.get_metrics()
        handled[0] += 1

    # B's publishes block on A's tiny buffer while A is inside the store.
    bus.subscribe(filter_by_source("b"), handler_a, mode="thread", buffer_size=2, strategy=BLOCK)
    # B also feeds a block-strategy channel drained by D.
    bus_watch = bus.subscribe_channel(filter_by_source("b"), 4, BLOCK)
    stop = threading.Event()
    store_seen = [0]
    bus_seen = [0]
    churn = [0]

    def thread_b() -> None:
        n = 0
        for r in range(ROUNDS):
            for _ in range(PER_ROUND):
                bus.publish(Event(EventType.SYSTEM_STARTUP, "b", timestamp=float(n)))
                n += 1
            # Each round ends when A has handled everything B published.
            assert wait_until(lambda n=n: handled[0] == n, timeout=WAIT), f"round {r} stuck"

    def thread_c() -> None:
        # Subscribes and unsubscribes on both the bus and the store while B and A run.
        i = 0
        while not stop.is_set():
            s = bus.subscribe(filter_by_source("b"), lambda e: store.get_service_state("svc-1"))
            ch = bus.subscribe_channel(None, 8, SimpleBufferStrategy(BufferAction.DROP))
            w = store.subscribe("svc-3", buffer_size=1, strategy=BLOCK if i % 2 else None)
            w.try_recv()
            s.close()
            bus.unsubscribe(ch)
            w.close()
            i += 1
            if i % 16 == 0:
                time.sleep(0)
        churn[0] = i

    def thread_d() -> None:
        # Drains the block-strategy watchers of the store and the bus until told to stop.
        while not stop.is_set() or len(store_watch) or len(bus_watch):
            got = store_watch.drain(64)
            got2 = bus_watch.drain(64)
            store_seen[0] += len(got)
            bus_seen[0] += len(got2)
            if not got and not got2:
                try:
                    store_watch.recv(timeout=0.002)
                    store_seen[0] += 1
                except (TimeoutError, ChannelClosed):
                    pass

    def b_then_stop() -> None:
        try:
            thread_b()
        finally:
            stop.set()

    run_threads([b_then_stop, thread_c, thread_d], timeout=WAIT * 6)
    total = ROUNDS * PER_ROUND
    m = bus.get_metrics()
    sm = store.get_metrics()
    bus.close()
    assert errors == []
    assert handled[0] == total
    assert bus_seen[0] == total  # block strategy: nothing lost on the bus watcher
    # Every notification the store owed its block watcher arrived (nothing dropped).
    assert store_seen[0] == store_watch.stats()["delivered"] == store_watch.stats()["sent"]
    figures.events = total
    figures.threads = 4 + 1
    figures.published = m["events_published"]
    figures.delivered = handled[0] + bus_seen[0]
    figures.dropped = m["events_dropped"]
    figures.errors = len(errors)
    figures.lost = total - handled[0]
    figures.extra["rounds"] = ROUNDS
    figures.extra["store_changes"] = sm["state_changes"]
    figures.extra["store_watch_delivered"] = store_seen[0]
    figures.extra["sub_unsub_cycles"] = churn[0]


def test_store_setter_is_not_deadlocked_by_its_own_block_watcher(figures: Figures) -> None:
    # In a child process: the hang must not take the test run with it.
    code = (
        "import tracebus as tb\n"
        "s = tb.StateStore()\n"
        "w = s.subscribe(None, buffer_size=1, strategy='block')\n"
        "for st in ('Starting', 'Running', 'Failed'):\n"
        "    s.set_service_state(tb.ManagedServiceUpdate('PortForward', 'a', st))\n"
        "print(len(w.drain()))\n"
    )
    r = run_child(code, timeout=10)
    finished = r is not None and r.returncode == 0
    figures.events = 3
    figures.threads = 1
    figures.faults = 0 if finished else 1
    assert finished, "set_service_state never returned (own block watcher full)"
