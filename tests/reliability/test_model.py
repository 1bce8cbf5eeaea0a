"""Plan test 9: a hypothesis ``RuleBasedStateMachine`` drives the bus and the state store
against a plain-Python model: subscribe (channels of every strategy, sync handlers),
unsubscribe, publish, recv/drain, flush, set, clear, clear_all, close. After every step the
channels' counters, the bus metrics and the store equal the model, and each watcher sees
each change exactly once, in order."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)
from reliability_util import STRESS, Figures

from tracebus import (
    BufferAction,
    BusClosedError,
    Channel,
    Event,
    EventBus,
    EventType,
    ManagedServiceUpdate,
    PublishTimeoutError,
    ServiceState,
    ServiceType,
    SimpleBufferStrategy,
    StateStore,
    Subscription,
    filter_by_type,
)

TYPES = [EventType.SYSTEM_STARTUP, EventType.USER_ACTION, EventType.CONFIG_CHANGE]
LABELS = ["a", "b", "c"]
STATES = [ServiceState.STARTING, ServiceState.RUNNING, ServiceState.FAILED, ServiceState.STOPPED]
ACTIONS = [BufferAction.DROP, BufferAction.EVICT_OLDEST, BufferAction.BLOCK]

# Summed over every example, reported by test_model_figures (which runs after the machine).
TOTALS = {
    "examples": 0,
    "published": 0,
    "delivered": 0,
    "dropped": 0,
    "evicted": 0,
    "store_changes": 0,
    "watcher_deliveries": 0,
}

type_sets = st.one_of(st.none(), st.sets(st.sampled_from(TYPES), min_size=1, max_size=2))


@dataclass
class MChannel:
    ch: Channel
    capacity: int
    action: str
    types: set[str] | None
    buf: deque[float] = field(default_factory=deque)
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    evicted: int = 0
    overflowed: int = 0
    closed: bool = False
    # Receiving from a channel makes this (the only) thread its consumer: a block-action
    # publish from the consumer into a full buffer is dropped (counted in overflowed and
    # dropped) instead of waiting for room only it could make.
    consumer: bool = False


@dataclass
class MHandler:
    sub: Subscription
    types: set[str] | None
    got: list[float] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)
    active: bool = True


@dataclass
class MWatcher:
    ch: Channel
    label: str | None
    # Expected changes not yet received: (batch, label, old, new); ``batch`` groups the
    # changes of one clear_all, whose order among labels is unspecified.
    expected: list[tuple[int, str, str, str]] = field(default_factory=list)
    next_seq: int = 0
    closed: bool = False


class BusStoreMachine(RuleBasedStateMachine):
    channels = Bundle("channels")
    handlers = Bundle("handlers")
    watchers = Bundle("watchers")

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []
        self.bus = EventBus(history_size=0, on_error=lambda exc, e, s: self.errors.append(exc))
        self.store = StateStore()
        self.bus_closed = False
        self.chans: list[MChannel] = []
        self.hands: list[MHandler] = []
        self.watch: list[MWatcher] = []
        self.model_store: dict[str, str] = {}
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.evicted = 0
        self.clock = 0.0
        self.batch = 0

    # -- bus ------------------------------------------------------------------------------
    @rule(
        target=channels,
        capacity=st.integers(1, 4),
        action=st.sampled_from(ACTIONS),
        types=type_sets,
    )
    def subscribe_channel(self, capacity: int, action: str, types: set[str] | None) -> MChannel:
        f = filter_by_type(*sorted(types)) if types else None
        if self.bus_closed:
            with pytest.raises(BusClosedError):
                self.bus.subscribe_channel(f, capacity, SimpleBufferStrategy(action))
            return MChannel(Channel(1), capacity, action, types, closed=True)
        ch = self.bus.subscribe_channel(f, capacity, SimpleBufferStrategy(action))
        m = MChannel(ch, capacity, action, types)
        self.chans.append(m)
        return m

    @rule(target=handlers, types=type_sets)
    def subscribe_handler(self, types: set[str] | None) -> MHandler:
        f = filter_by_type(*sorted(types)) if types else None
        box: list[float] = []
        if self.bus_closed:
            with pytest.raises(BusClosedError):
                self.bus.subscribe(f, lambda e: box.append(e.timestamp))
            return MHandler(None, types, box, active=False)  # type: ignore[arg-type]
        sub = self.bus.subscribe(f, lambda e: box.append(e.timestamp))
        m = MHandler(sub, types, box)
        self.hands.append(m)
        return m

    @rule(m=consumes(channels))
    def unsubscribe_channel(self, m: MChannel) -> None:
        if m not in self.chans:
            return
        assert self.bus.unsubscribe(m.ch) is (not m.closed)
        m.closed = True

    @rule(m=consumes(handlers))
    def unsubscribe_handler(self, m: MHandler) -> None:
        if m not in self.hands:
            return
        assert self.bus.unsubscribe(m.sub) is m.active
        m.active = False

    @rule(m=channels)
    def close_channel(self, m: MChannel) -> None:
        m.ch.close()
        m.closed = True

    @rule(etype=st.sampled_from(TYPES))
    def publish(self, etype: str) -> None:
        self.clock += 1.0
        e = Event(etype, "src", timestamp=self.clock)
        if self.bus_closed:
            with pytest.raises(BusClosedError):
                self.bus.publish(e, timeout=0.0)
            return
        deliveries = 0
        timed_out = False
        self.published += 1
        for m in self.chans:
            if m.closed or (m.types is not None and etype not in m.types):
                continue
            m.sent += 1
            if len(m.buf) < m.capacity:
                m.buf.append(self.clock)
                deliveries += 1
            elif m.action == BufferAction.BLOCK and m.consumer:
                # Cannot wait for itself: the default on_self_block action, drop.
                m.overflowed += 1
                m.dropped += 1
                self.dropped += 1
            elif m.action == BufferAction.EVICT_OLDEST:
                m.buf.popleft()
                m.buf.append(self.clock)
                m.evicted += 1
                self.evicted += 1
                deliveries += 1
            else:
                m.dropped += 1
                self.dropped += 1
                timed_out |= m.action == BufferAction.BLOCK
        for h in self.hands:
            if h.active and (h.types is None or etype in h.types):
                h.expected.append(self.clock)
                deliveries += 1
        self.delivered += deliveries
        if timed_out:
            with pytest.raises(PublishTimeoutError):
                self.bus.publish(e, timeout=0.0)
        else:
            assert self.bus.publish(e, timeout=0.0) == deliveries

    @rule(m=channels)
    def recv_one(self, m: MChannel) -> None:
        got = m.ch.try_recv()
        m.consumer = True
        if m.buf:
            assert got is not None and got.timestamp == m.buf.popleft()
            m.delivered += 1
        else:
            assert got is None

    @rule(m=channels, n=st.integers(0, 5))
    def drain(self, m: MChannel, n: int) -> None:
        got = [e.timestamp for e in m.ch.drain(n)]
        m.consumer = True
        want = [m.buf.popleft() for _ in range(min(n, len(m.buf)))]
        assert got == want
        m.delivered += len(want)

    @rule()
    def flush(self) -> None:
        for m in self.chans:
            got = [e.timestamp for e in m.ch.drain()]
            m.consumer = True
            assert got == list(m.buf)
            m.delivered += len(m.buf)
            m.buf.clear()
        for w in self.watch:
            self._check_watcher(w)

    @precondition(lambda self: not self.bus_closed)
    @rule()
    def close_bus(self) -> None:
        self.bus.close()
        self.bus_closed = True
        for m in self.chans:
            m.closed = True
        for h in self.hands:
            h.active = False

    # -- store ----------------------------------------------------------------------------
    @rule(target=watchers, label=st.one_of(st.none(), st.sampled_from(LABELS)))
    def subscribe_store(self, label: str | None) -> MWatcher:
        w = MWatcher(self.store.subscribe(label, buffer_size=10_000), label)
        self.watch.append(w)
        return w

    @rule(w=consumes(watchers))
    def unsubscribe_store(self, w: MWatcher) -> None:
        self._check_watcher(w)
        w.ch.close()
        w.closed = True
        self.watch.remove(w)

    def _notify(self, label: str, old: str, new: str) -> None:
        for w in self.watch:
            if w.label is None or w.label == label:
                w.expected.append((self.batch, label, old, new))

    @rule(label=st.sampled_from(LABELS), state=st.sampled_from(STATES))
    def set_state(self, label: str, state: str) -> None:
        self.batch += 1
        old = self.model_store.get(label)
        changed = self.store.set_service_state(
            ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, state)
        )
        assert changed is (old != state)
        if old != state:
            self._notify(label, old or ServiceState.UNKNOWN, state)
        self.model_store[label] = state

    @rule(label=st.sampled_from(LABELS))
    def clear(self, label: str) -> None:
        self.batch += 1
        old = self.model_store.pop(label, None)
        assert self.store.clear(label) is (old is not None)
        if old is not None:
            self._notify(label, old, ServiceState.UNKNOWN)

    @rule()
    def clear_all(self) -> None:
        self.batch += 1
        assert self.store.clear_all() == len(self.model_store)
        for label, old in sorted(self.model_store.items()):
            self._notify(label, old, ServiceState.UNKNOWN)
        self.model_store.clear()

    def _check_watcher(self, w: MWatcher) -> None:
        got = w.ch.drain()
        TOTALS["watcher_deliveries"] += len(got)
        assert len(got) == len(w.expected)
        for c in got:
            assert c.sequence == w.next_seq  # no gap, no repeat
            w.next_seq += 1
        # Compare batch by batch; inside a clear_all batch the label order is unspecified.
        i = 0
        while i < len(got):
            b = w.expected[i][0]
            j = i
            while j < len(got) and w.expected[j][0] == b:
                j += 1
            want = sorted(x[1:] for x in w.expected[i:j])
            have = sorted((c.label, c.old_state, c.new_state) for c in got[i:j])
            assert have == want
            for c in got[i:j]:
                assert c.cleared is (c.new_state == ServiceState.UNKNOWN)
            i = j
        w.expected.clear()

    # -- invariants -----------------------------------------------------------------------
    @invariant()
    def channels_match_model(self) -> None:
        for m in self.chans:
            s = m.ch.stats()
            assert (s["sent"], s["delivered"], s["dropped"], s["evicted"], s["buffered"]) == (
                m.sent,
                m.delivered,
                m.dropped,
                m.evicted,
                len(m.buf),
            )
            assert s["overflowed"] == m.overflowed
            assert s["sent"] == s["delivered"] + s["dropped"] + s["evicted"] + s["buffered"]
            assert s["closed"] is m.closed

    @invariant()
    def handlers_match_model(self) -> None:
        for h in self.hands:
            assert h.got == h.expected  # each event once, in publish order

    @invariant()
    def bus_metrics_match_model(self) -> None:
        m = self.bus.get_metrics()
        assert m["events_published"] == self.published
        assert m["events_delivered"] == self.delivered
        assert m["events_dropped"] == self.dropped
        assert m["events_evicted"] == self.evicted
        assert m["handler_errors"] == 0 and self.errors == []
        active = sum(not c.closed for c in self.chans) + sum(h.active for h in self.hands)
        assert m["active_subscriptions"] == active == self.bus.subscription_count

    @invariant()
    def store_matches_model(self) -> None:
        states = {k: v.state for k, v in self.store.get_all_service_states().items()}
        assert states == self.model_store
        assert len(self.store) == len(self.model_store)
        m = self.store.get_metrics()
        assert m["total_services"] == len(self.model_store)
        assert m["active_subscriptions"] == len(self.watch)

    def teardown(self) -> None:
        for w in self.watch:
            self._check_watcher(w)
        self.bus.close()
        TOTALS["examples"] += 1
        TOTALS["published"] += self.published
        TOTALS["delivered"] += self.delivered
        TOTALS["dropped"] += self.dropped
        TOTALS["evicted"] += self.evicted
        TOTALS["store_changes"] += self.store.get_metrics()["state_changes"]


BusStoreMachine.TestCase.settings = settings(
    max_examples=150 * STRESS,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestBusStoreModel(BusStoreMachine.TestCase):  # type: ignore[name-defined,misc]
    pass


def test_model_figures(figures: Figures) -> None:
    """Reports what the state machine above did (summed over its examples)."""
    if TOTALS["examples"] == 0:
        pytest.skip("the state machine did not run in this session")
    figures.events = TOTALS["published"]
    figures.threads = 1
    figures.published = TOTALS["published"]
    figures.delivered = TOTALS["delivered"]
    figures.dropped = TOTALS["dropped"]
    figures.evicted = TOTALS["evicted"]
    figures.extra["examples"] = TOTALS["examples"]
    figures.extra["store_changes"] = TOTALS["store_changes"]
    figures.extra["watcher_deliveries"] = TOTALS["watcher_deliveries"]
