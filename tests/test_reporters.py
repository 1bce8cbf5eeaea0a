"""Integration: EventBusAdapter, TUIReporter, ConsoleReporter, the ServiceReporter protocol,
and the reference's integration scenarios."""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
from collections import Counter
from typing import Any

import pytest
from tb_support import WAIT, run_threads, update, wait_until

from tracebus import (
    BufferAction,
    Channel,
    ConsoleReporter,
    Event,
    EventBus,
    EventBusAdapter,
    EventType,
    HealthEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    PriorityBufferStrategy,
    ServiceReporter,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    Severity,
    StateStore,
    TUIReporter,
    TUIReporterConfig,
    UserActionEvent,
    combine_filters,
    correlation,
    filter_by_correlation,
    filter_by_severity,
    filter_by_source,
    filter_by_type,
)

S = ServiceState
T = EventType


def health(healthy: bool, cluster: str = "golem", error: str | None = None) -> HealthStatusUpdate:
    return HealthStatusUpdate(
        "teleport-" + cluster,
        cluster,
        True,
        healthy,
        ready_nodes=3 if healthy else 1,
        total_nodes=3,
        error=error,
    )


def test_everything_implements_the_protocol() -> None:
    for r in (EventBusAdapter(), TUIReporter(), ConsoleReporter()):
        assert isinstance(r, ServiceReporter)
        assert isinstance(r.get_state_store(), StateStore)


# --- EventBusAdapter -----------------------------------------------------------------------


def test_adapter_publishes_state_events_only_when_the_snapshot_changes() -> None:
    bus, store = EventBus(), StateStore()
    adapter = EventBusAdapter(bus, store)
    assert adapter.get_event_bus() is bus and adapter.get_state_store() is store
    got: list[Event] = []
    bus.subscribe(None, got.append)
    u1 = update("pf", S.STARTING, timestamp=100.0, caused_by="user_restart")
    adapter.report(u1)
    adapter.report(update("pf", S.STARTING, pid=5))  # same state, new pid: an event
    adapter.report(update("pf", S.STARTING, pid=5))  # identical re-report: no event
    u3 = update("pf", S.RUNNING)
    adapter.report(u3)
    assert [(e.old_state, e.new_state, e.pid) for e in got] == [
        (S.UNKNOWN, S.STARTING, 0),
        (S.STARTING, S.STARTING, 5),
        (S.STARTING, S.RUNNING, 0),
    ]
    e = got[0]
    assert isinstance(e, ServiceStateEvent)
    assert e.timestamp == 100.0  # the update's own timestamp
    assert (e.event_id, e.correlation_id, e.caused_by) == (
        u1.event_id,
        u1.correlation_id,
        "user_restart",
    )
    assert store.get_service_state("pf").state is S.RUNNING  # type: ignore[union-attr]
    bus.close()


def test_adapter_health_events_with_recovery_edge() -> None:
    adapter = EventBusAdapter()
    got: list[Event] = []
    adapter.bus.subscribe(None, got.append)
    adapter.report_health(health(True))
    adapter.report_health(health(False, error="api down"))
    adapter.report_health(health(False))
    adapter.report_health(health(True))  # unhealthy -> healthy: recovery
    adapter.report_health(health(True))
    adapter.report_health(health(True, cluster="other"))  # first sighting is not a recovery
    assert [str(e.type) for e in got] == [
        "health.check",
        "health.failure",
        "health.failure",
        "health.recovery",
        "health.check",
        "health.check",
    ]
    assert all(isinstance(e, HealthEvent) for e in got)
    assert str(got[3]) == "MC golem recovered (3/3 nodes)"
    with pytest.raises(TypeError, match="update"):
        adapter.report_health(update())  # type: ignore[arg-type]
    adapter.bus.close()


def test_adapter_bad_input_leaves_store_and_bus_unchanged() -> None:
    adapter = EventBusAdapter()
    got: list[Event] = []
    adapter.bus.subscribe(None, got.append)
    for bad in ("pf", None, health(True)):
        with pytest.raises(TypeError, match="update"):
            adapter.report(bad)  # type: ignore[arg-type]
    assert len(adapter.store) == 0 and got == []
    with pytest.raises(TypeError, match="bus"):
        EventBusAdapter(bus="bus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store"):
        EventBusAdapter(store={})  # type: ignore[arg-type]
    adapter.bus.close()


def test_adapter_transitions_are_atomic_under_concurrency() -> None:
    """8 threads report random states for 3 shared labels. Every published event's
    old_state is the new_state of the transition before it for that label."""
    bus, store = EventBus(history_size=0), StateStore()
    adapter = EventBusAdapter(bus, store)
    lock = threading.Lock()
    published: list[ServiceStateEvent] = []

    def collect(e: ServiceStateEvent) -> None:
        with lock:
            published.append(e)

    bus.subscribe(None, collect)
    changes = store.subscribe(buffer_size=100_000)  # store notifications come in transition order
    labels = ["a", "b", "c"]
    states = [s for s in ServiceState if s is not S.UNKNOWN]

    def work(i: int) -> None:
        rng = random.Random(i)
        for _ in range(300):
            adapter.report(update(rng.choice(labels), rng.choice(states)))

    run_threads(8, work)
    ordered = [c for c in changes.drain() if c.old_state is not c.new_state]
    # In transition order, each change starts where the previous one for its label ended.
    last: dict[str, ServiceState] = {}
    for c in ordered:
        assert c.old_state is last.get(c.label, S.UNKNOWN)
        last[c.label] = c.new_state
    # The adapter published exactly those transitions, with the same old states.
    by_id = {c.snapshot.event_id: (c.label, c.old_state, c.new_state) for c in ordered}
    assert len(published) == len(ordered)
    for e in published:
        assert by_id[e.event_id] == (e.source, e.old_state, e.new_state)
    # Per label the published edges form one path from Unknown to the final state.
    for label in labels:
        edges = [(e.old_state, e.new_state) for e in published if e.source == label]
        balance = Counter()
        for old, new in edges:
            balance[old] += 1
            balance[new] -= 1
        final = store.get_service_state(label).state  # type: ignore[union-attr]
        expected = Counter({S.UNKNOWN: 1, final: -1}) if final is not S.UNKNOWN else Counter()
        assert +balance == +expected and -balance == -expected
    bus.close()


# --- TUIReporter ---------------------------------------------------------------------------


def check_counts(stats: dict[str, int]) -> None:
    assert (
        stats["sent"]
        == stats["delivered"] + stats["dropped"] + stats["evicted"] + stats["buffered"]
    )


def test_tui_reporter_defaults() -> None:
    cfg = TUIReporterConfig()
    assert cfg.buffer_size == 1000
    assert isinstance(cfg.buffer_strategy, PriorityBufferStrategy)
    assert cfg.buffer_strategy.default_action is BufferAction.EVICT_OLDEST
    assert cfg.state_store is None
    r = TUIReporter()
    assert r.channel.capacity == 1000
    r.report(update("pf"))
    assert r.get_state_store().get_service_state("pf") is not None
    assert r.channel.try_recv().source_label == "pf"


def test_tui_reporter_with_a_channel_consumer() -> None:
    ch = Channel(5, PriorityBufferStrategy())
    store = StateStore()
    r = TUIReporter(ch, TUIReporterConfig(state_store=store))
    assert r.get_state_store() is store
    r.report(update("pf", S.FAILED))
    r.report_health(health(False))
    items = ch.drain()
    assert isinstance(items[0], ManagedServiceUpdate) and isinstance(items[1], HealthStatusUpdate)
    assert store.get_service_state("pf").state is S.FAILED  # type: ignore[union-attr]
    r.close()
    r.report(update("pf2"))  # after close: counted as dropped, not raised
    st = r.stats()
    check_counts(st)
    assert st["dropped"] == 1


def test_tui_reporter_with_queue_queue_counts_every_loss() -> None:
    q: queue.Queue[object] = queue.Queue(maxsize=2)
    r = TUIReporter(q, TUIReporterConfig(buffer_size=4))
    labels = [f"s{i}" for i in range(30)]
    for label in labels:
        r.report(update(label, S.RUNNING))
    received: list[Any] = []
    while len(received) < 30:
        try:
            received.append(q.get(timeout=0.2))
        except queue.Empty:
            if r.stats()["buffered"] == 0 and r.channel.closed is False and q.empty():
                break
    r.close()
    while not q.empty():
        received.append(q.get_nowait())
    st = r.stats()
    check_counts(st)
    lost = st["dropped"] + st["evicted"]
    assert st["sent"] == 30
    assert len(received) + lost == 30  # every update either arrived or was counted as lost
    assert len({u.source_label for u in received}) == len(received)
    # Received in report order.
    order = [labels.index(u.source_label) for u in received]
    assert order == sorted(order)


def test_tui_reporter_with_asyncio_queue() -> None:
    async def main() -> None:
        q: asyncio.Queue[object] = asyncio.Queue()
        r = TUIReporter(q)
        for i in range(20):
            r.report(update(f"s{i}", S.STARTING))
        r.report_health(health(True))
        got = [await asyncio.wait_for(q.get(), WAIT) for _ in range(21)]
        assert [u.source_label for u in got[:20]] == [f"s{i}" for i in range(20)]
        assert isinstance(got[20], HealthStatusUpdate)
        r.close()
        st = r.stats()
        check_counts(st)
        assert st["dropped"] == st["evicted"] == st["forward_dropped"] == 0

    asyncio.run(main())


def test_tui_reporter_with_full_asyncio_queue_counts_forward_drops() -> None:
    async def main() -> None:
        q: asyncio.Queue[object] = asyncio.Queue(maxsize=3)
        r = TUIReporter(q)
        for i in range(10):
            r.report(update(f"s{i}"))
        for _ in range(2000):
            st = r.stats()
            if st["buffered"] == 0 and q.qsize() + st["forward_dropped"] == 10:
                break
            await asyncio.sleep(0.005)
        st = r.stats()
        check_counts(st)
        assert q.qsize() == 3
        assert st["forward_dropped"] == 7
        assert st["delivered"] == 10
        r.close()

    asyncio.run(main())


def test_tui_reporter_never_evicts_failed_while_less_severe_buffered() -> None:
    r = TUIReporter(config=TUIReporterConfig(buffer_size=3))
    r.report(update("f1", S.FAILED))
    r.report(update("r1", S.RUNNING))
    r.report(update("r2", S.RUNNING))
    r.report(update("f2", S.FAILED))  # evicts r1, not f1
    r.report(update("s1", S.STARTING))  # debug: dropped, everything buffered is more severe
    r.report(update("f3", S.FAILED))  # evicts r2
    assert [u.source_label for u in r.channel.drain()] == ["f1", "f2", "f3"]
    st = r.stats()
    check_counts(st)
    assert (st["evicted"], st["dropped"]) == (2, 1)


SEVERITY_OF_STATE = {
    S.FAILED: 4,
    S.RETRYING: 3,
    S.RUNNING: 2,
    S.STOPPED: 2,
    S.UNKNOWN: 2,
    S.STARTING: 1,
    S.STOPPING: 1,
}


@pytest.mark.parametrize("seed", range(5))
def test_tui_priority_matches_model_and_never_loses_failed_first(seed: int) -> None:
    """Random reports and partial reads against a model of the priority buffer. Every time
    the model loses a Failed update, nothing less severe is buffered; the real buffer hands
    out exactly what the model does."""
    rng = random.Random(seed)
    cap = 5
    r = TUIReporter(config=TUIReporterConfig(buffer_size=cap))
    model: list[tuple[int, int, str]] = []  # (seq, severity, label)
    lost_failed = 0
    received: list[str] = []
    expected: list[str] = []
    for i in range(300):
        state = rng.choice(list(ServiceState))
        sev = SEVERITY_OF_STATE[state]
        label = f"s{i}"
        if len(model) == cap:
            lowest = min(x[1] for x in model)
            if lowest > sev:
                if state is S.FAILED:
                    lost_failed += 1
                label = ""  # the newcomer is dropped
            else:
                victim = min((x for x in model if x[1] == lowest), key=lambda x: x[0])
                if victim[1] == SEVERITY_OF_STATE[S.FAILED]:
                    assert all(x[1] >= victim[1] for x in model)  # nothing less severe buffered
                    lost_failed += 1
                model.remove(victim)
        if label:
            model.append((i, sev, label))
        r.report(update(f"s{i}", state))
        if rng.random() < 0.15:
            n = rng.randint(1, 3)
            received += [u.source_label for u in r.channel.drain(max_items=n)]
            model.sort()
            expected += [x[2] for x in model[:n]]
            del model[:n]
    received += [u.source_label for u in r.channel.drain()]
    expected += [x[2] for x in sorted(model)]
    assert received == expected
    st = r.stats()
    check_counts(st)
    assert st["sent"] == 300
    assert st["dropped"] + st["evicted"] == 300 - len(received)


def test_tui_reporter_bad_input() -> None:
    with pytest.raises(TypeError, match="update_queue"):
        TUIReporter([])
    with pytest.raises(TypeError, match="config"):
        TUIReporter(config={"buffer_size": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        TUIReporter(config=TUIReporterConfig(buffer_size=0))
    r = TUIReporter()
    with pytest.raises(TypeError, match="update"):
        r.report("pf")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="update"):
        r.report_health(update())  # type: ignore[arg-type]
    assert r.stats()["sent"] == 0 and len(r.store) == 0


# --- ConsoleReporter -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "level"),
    [
        (S.FAILED, logging.ERROR),
        (S.RETRYING, logging.DEBUG),  # the reference's level rules
        (S.STARTING, logging.DEBUG),
        (S.STOPPING, logging.DEBUG),
        (S.RUNNING, logging.INFO),
        (S.STOPPED, logging.INFO),
        (S.UNKNOWN, logging.WARNING),
    ],
)
def test_console_reporter_levels(
    caplog: pytest.LogCaptureFixture, state: ServiceState, level: int
) -> None:
    logger = logging.getLogger("tracebus.test.console")
    r = ConsoleReporter(logger)
    with caplog.at_level(logging.DEBUG, logger="tracebus.test.console"):
        r.report(update("pf", state, error_detail="boom" if state is S.FAILED else None))
    recs = [x for x in caplog.records if x.name == "tracebus.test.console"]
    assert len(recs) == 1
    assert recs[0].levelno == level
    assert recs[0].getMessage().startswith(f"pf (PortForward) {state.value}")
    assert r.get_state_store().get_service_state("pf").state is state  # type: ignore[union-attr]


def test_console_reporter_health_levels(caplog: pytest.LogCaptureFixture) -> None:
    r = ConsoleReporter()
    with caplog.at_level(logging.DEBUG, logger="tracebus.console"):
        r.report_health(health(True))
        r.report_health(health(False))
        r.report_health(health(False, error="api down"))
    recs = [x for x in caplog.records if x.name == "tracebus.console"]
    assert [x.levelno for x in recs] == [logging.INFO, logging.WARNING, logging.ERROR]
    assert recs[0].getMessage() == "MC golem healthy (3/3 nodes)"
    with pytest.raises(TypeError, match="logger"):
        ConsoleReporter("root")  # type: ignore[arg-type]


# --- the reference's integration scenarios -------------------------------------------------


def test_complete_event_flow() -> None:
    bus, store = EventBus(), StateStore()
    adapter = EventBusAdapter(bus, store)
    events: list[Event] = []
    bus.subscribe(None, events.append)
    changes = store.subscribe("test-pf")
    with correlation("user_start") as ctx:
        adapter.report(update("test-pf", S.STARTING))
        adapter.report(update("test-pf", S.RUNNING, proxy_port=8080, pid=100))
        adapter.report(
            update("test-pf", S.RUNNING, proxy_port=8080, pid=100).with_error("connection failed")
        )
        adapter.report(update("test-pf", S.STOPPED))
        adapter.report_health(health(True))
        adapter.report_health(health(False, error="api down"))
        adapter.report_health(health(True))
    assert [str(e.type) for e in events] == [
        "service.starting",
        "service.running",
        "service.failed",
        "service.stopped",
        "health.check",
        "health.failure",
        "health.recovery",
    ]
    assert all(e.correlation_id == ctx.correlation_id for e in events)
    assert str(events[2]) == "test-pf (PortForward) Running → Failed (error: connection failed)"
    assert events[2].severity is Severity.ERROR and events[2].is_ready is False
    snap = store.get_service_state("test-pf")
    assert snap is not None and snap.state is S.STOPPED
    assert [(c.old_state, c.new_state) for c in changes.drain()] == [
        (S.UNKNOWN, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.RUNNING, S.FAILED),
        (S.FAILED, S.STOPPED),
    ]
    m = bus.get_metrics()
    assert m["events_published"] == 7 and m["events_delivered"] == 7
    assert store.get_metrics()["state_changes"] == 4
    bus.close()


def test_event_filtering_scenarios() -> None:
    bus = EventBus()
    adapter = EventBusAdapter(bus)
    severe = bus.subscribe_channel(filter_by_severity(Severity.ERROR))
    pf_running = bus.subscribe_channel(
        combine_filters(filter_by_type(T.SERVICE_RUNNING), filter_by_source("pf-1"))
    )
    with correlation("op-a") as a:
        adapter.report(update("pf-1", S.STARTING))
        adapter.report(update("pf-1", S.RUNNING))
    by_corr = bus.subscribe_channel(filter_by_correlation(a.correlation_id))
    with correlation("op-b"):
        adapter.report(update("pf-2", S.RUNNING))
        adapter.report(update("pf-2", S.FAILED))
        adapter.report_health(health(False))
    with correlation(correlation_id=a.correlation_id):
        adapter.report(update("pf-1", S.FAILED))
    assert [(e.source, str(e.type)) for e in severe.drain()] == [
        ("pf-2", "service.failed"),
        ("health-monitor", "health.failure"),
        ("pf-1", "service.failed"),
    ]
    assert [(e.source, str(e.type)) for e in pf_running.drain()] == [("pf-1", "service.running")]
    assert [(e.source, str(e.type)) for e in by_corr.drain()] == [("pf-1", "service.failed")]
    bus.close()


def test_error_recovery_with_a_raising_handler() -> None:
    errors: list[BaseException] = []
    bus = EventBus(on_error=lambda e, ev, s: errors.append(e))
    adapter = EventBusAdapter(bus)
    good: list[Event] = []
    calls = [0]

    def flaky(e: Event) -> None:
        calls[0] += 1
        if calls[0] % 2:
            raise RuntimeError("handler failure")

    bad = bus.subscribe(None, flaky)
    bus.subscribe(None, good.append)
    for i in range(10):
        adapter.report(update(f"svc{i}", S.RUNNING))
    assert len(good) == 10
    assert bad.errors == 5 and bad.delivered == 5
    assert len(errors) == 5
    m = bus.get_metrics()
    assert m["handler_errors"] == 5 and m["events_delivered"] == 15
    assert len(adapter.store) == 10  # the store was updated regardless
    bus.close()


def test_hundred_subscriptions_half_closed() -> None:
    bus = EventBus()
    counts = [0] * 100
    subs: list[Any] = []
    for i in range(100):
        if i % 2:
            subs.append(bus.subscribe_channel())
        else:

            def h(e: Event, i: int = i) -> None:
                counts[i] += 1

            subs.append(bus.subscribe(None, h))
    assert bus.get_metrics()["active_subscriptions"] == 100
    for s in subs[::2][:25] + subs[1::2][:25]:
        s.close()
    assert bus.get_metrics()["active_subscriptions"] == 50
    for i in range(10):
        assert (
            bus.publish(ServiceStateEvent(ServiceType.PORT_FORWARD, f"s{i}", S.STARTING, S.RUNNING))
            == 50
        )
    for i, s in enumerate(subs):
        closed = (i % 2 == 0 and i // 2 < 25) or (i % 2 == 1 and i // 2 < 25)
        n = counts[i] if i % 2 == 0 else len(s.drain())
        assert n == (0 if closed else 10), i
    m = bus.get_metrics()
    assert m["events_delivered"] == 500
    assert m["events_dropped"] == 0
    bus.close()


def test_thousand_services_cleared() -> None:
    adapter = EventBusAdapter()
    store = adapter.get_state_store()
    watcher = store.subscribe(buffer_size=5000)
    types = list(ServiceType)
    for i in range(1000):
        adapter.report(update(f"svc-{i:04d}", S.RUNNING, types[i % len(types)]))
    m = store.get_metrics()
    assert m["total_services"] == 1000
    assert sum(m["services_by_type"].values()) == 1000
    assert m["services_by_state"] == {S.RUNNING: 1000}
    assert store.clear_all() == 1000
    assert len(store) == 0
    assert store.get_all_service_states() == {}
    evs = watcher.drain()
    cleared = [e for e in evs if e.cleared]
    assert len(cleared) == 1000
    assert {e.label for e in cleared} == {f"svc-{i:04d}" for i in range(1000)}
    assert all(e.old_state is S.RUNNING and e.new_state is S.UNKNOWN for e in cleared)
    assert [e.sequence for e in evs] == list(range(2000))
    m = store.get_metrics()
    assert m["total_services"] == 0
    assert m["services_by_type"] == {} and m["services_by_state"] == {}
    assert m["subscription_drops"] == 0
    adapter.bus.close()


def test_shared_store_between_reporters() -> None:
    store = StateStore()
    tui = TUIReporter(config=TUIReporterConfig(state_store=store))
    adapter = EventBusAdapter(store=store)
    tui.report(update("a", S.RUNNING))
    adapter.report(update("b", S.FAILED))
    assert set(store.get_all_service_states()) == {"a", "b"}
    assert adapter.get_state_store() is tui.get_state_store() is store
    adapter.bus.close()


def test_updates_reported_from_a_handler_join_the_cascade() -> None:
    """A handler reacting to a user action reports service updates through the adapter;
    the resulting events carry the action's correlation and name it as their parent."""
    adapter = EventBusAdapter()
    bus = adapter.get_event_bus()

    @bus.on(filter_by_type(T.USER_ACTION))
    def restart(e: UserActionEvent) -> None:
        adapter.report(update(e.target_name, S.STOPPING))
        adapter.report(update(e.target_name, S.STARTING))

    root = UserActionEvent("restart", ServiceType.PORT_FORWARD, "pf")
    bus.publish(root)
    trace = bus.trace(root.correlation_id)
    assert len(trace) == 3
    children = trace.roots[0].children
    assert [(c.event.source, c.event.new_state) for c in children] == [
        ("pf", S.STOPPING),
        ("pf", S.STARTING),
    ]
    assert all(c.event.parent_id == root.event_id for c in children)
    assert all(c.event.caused_by == "user.action" for c in children)
    snap = adapter.store.get_service_state("pf")
    assert snap is not None and snap.correlation_id == root.correlation_id
    bus.close()


def test_tui_reporter_counts_updates_after_its_asyncio_loop_closed() -> None:
    holder: dict[str, Any] = {}

    async def main() -> None:
        q: asyncio.Queue[object] = asyncio.Queue()
        holder["r"] = r = TUIReporter(q)
        r.report(update("a"))
        await asyncio.wait_for(q.get(), WAIT)

    asyncio.run(main())
    r: TUIReporter = holder["r"]
    r.report(update("b"))
    r.report(update("c"))
    # Nobody can receive them any more: each is counted, none is left hanging.
    assert wait_until(lambda: r.stats()["forward_dropped"] == 2)
    st = r.stats()
    check_counts(st)
    assert st["buffered"] == 0 and st["delivered"] == 3
    r.close()


def test_tui_close_counts_updates_a_full_queue_never_took() -> None:
    q: queue.Queue[object] = queue.Queue(maxsize=1)
    reporter = TUIReporter(q)
    for i in range(3):
        reporter.report(update(f"svc{i}", S.RUNNING))
    reporter.close(timeout=0.2)  # nobody reads q: 1 handed over, 2 could not be
    stats = reporter.stats()
    assert q.qsize() == 1
    assert stats["forward_dropped"] == 2
    assert stats["sent"] == 3 and stats["delivered"] == 3


def test_event_bus_adapter_close_closes_its_bus() -> None:
    adapter = EventBusAdapter()
    ch = adapter.bus.subscribe_channel()
    adapter.report(ManagedServiceUpdate("PortForward", "pf", "Running"))
    adapter.close()
    assert adapter.bus.closed and ch.closed
    assert len(ch.drain()) == 1
    adapter.close()  # idempotent


def test_event_bus_adapter_is_a_context_manager() -> None:
    with EventBusAdapter() as adapter:
        sub = adapter.bus.subscribe(None, lambda e: None)
    assert adapter.bus.closed and not sub.active
