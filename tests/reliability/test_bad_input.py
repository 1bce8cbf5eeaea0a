"""Plan test 13: bad input to every public constructor and method raises a clear
TypeError / ValueError / tracebus error naming the parameter, and leaves the bus, the store
and their channels exactly as they were (checked before and after every case)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from reliability_util import Figures

import tracebus as tb
from tracebus import (
    BufferAction,
    Channel,
    Event,
    EventBus,
    EventType,
    ServiceState,
    ServiceType,
    StateStore,
    TracebusError,
)

CLEAR = (TypeError, ValueError, TracebusError)
HUGE = "x" * 1_000_001
NUL = "a\0b"
LONG_LABEL = "x" * 1001  # labels and sources are limited to 1000 characters


@dataclass
class World:
    bus: EventBus
    store: StateStore
    channel: Channel
    watcher: Channel
    got: list[Event]

    def snapshot(self) -> dict[str, Any]:
        m = dict(self.bus.get_metrics())
        for k in list(m):
            if "latency" in k or k == "memory_bytes":
                del m[k]
        sm = dict(self.store.get_metrics())
        sm.pop("memory_bytes", None)
        return {
            "bus": m,
            "subscriptions": self.bus.subscription_count,
            "history": [e.event_id for e in self.bus.history()],
            "closed": self.bus.closed,
            "store": {
                k: (v.state, v.is_ready) for k, v in self.store.get_all_service_states().items()
            },
            "store_metrics": sm,
            "channel": self.channel.stats(),
            "watcher": self.watcher.stats(),
            "handled": len(self.got),
            "types": list(tb.registered_event_types()),
        }


@pytest.fixture
def world() -> World:
    bus = EventBus(history_size=100)
    got: list[Event] = []
    bus.subscribe(None, got.append)
    ch = bus.subscribe_channel(None, 10)
    store = StateStore()
    watcher = store.subscribe(None, buffer_size=10)
    for label, st in [("a", ServiceState.RUNNING), ("b", ServiceState.FAILED)]:
        store.set_service_state(tb.ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, st))
    bus.publish(Event(EventType.SYSTEM_STARTUP, "setup"))
    return World(bus, store, ch, watcher, got)


def ev() -> Event:
    return Event(EventType.SYSTEM_STARTUP, "src")


def upd(label: str = "c", state: str = ServiceState.RUNNING) -> tb.ManagedServiceUpdate:
    return tb.ManagedServiceUpdate(ServiceType.PORT_FORWARD, label, state)


ST = ServiceType.PORT_FORWARD
Case = tuple[str, str, Callable[[World], object]]

# (case id, the parameter the error must name, the call)
CASES: list[Case] = [
    # --- EventBus ---------------------------------------------------------------------
    ("bus-history-neg", "history_size", lambda w: EventBus(history_size=-1)),
    ("bus-history-huge", "history_size", lambda w: EventBus(history_size=2**80)),
    ("bus-history-str", "history_size", lambda w: EventBus(history_size="10")),
    ("bus-history-float", "history_size", lambda w: EventBus(history_size=1.5)),
    ("bus-depth-zero", "max_depth", lambda w: EventBus(max_depth=0)),
    ("bus-depth-neg", "max_depth", lambda w: EventBus(max_depth=-5)),
    ("bus-on-error", "on_error", lambda w: EventBus(on_error=42)),
    ("sub-handler-int", "handler", lambda w: w.bus.subscribe(None, 5)),
    ("sub-handler-none", "handler", lambda w: w.bus.subscribe(None, None)),
    ("sub-handler-str", "handler", lambda w: w.bus.subscribe(None, "print")),
    ("sub-filter-str", "filter", lambda w: w.bus.subscribe("system.startup", print)),
    ("sub-filter-type", "filter", lambda w: w.bus.subscribe(EventType.USER_ACTION, print)),
    ("sub-mode", "mode", lambda w: w.bus.subscribe(None, print, mode="fast")),
    ("sub-async-sync-fn", "async", lambda w: w.bus.subscribe(None, print, mode="async")),
    ("sub-sync-buffer", "buffer_size", lambda w: w.bus.subscribe(None, print, buffer_size=5)),
    (
        "sub-cap-zero",
        "buffer_size",
        lambda w: w.bus.subscribe(None, print, mode="thread", buffer_size=0),
    ),
    (
        "sub-cap-neg",
        "buffer_size",
        lambda w: w.bus.subscribe(None, print, mode="thread", buffer_size=-1),
    ),
    (
        "sub-cap-huge",
        "buffer_size",
        lambda w: w.bus.subscribe(None, print, mode="thread", buffer_size=2**64),
    ),
    (
        "sub-cap-enormous",
        "buffer_size",
        lambda w: w.bus.subscribe(None, print, mode="thread", buffer_size=(1 << 24) + 1),
    ),
    (
        "sub-cap-float",
        "buffer_size",
        lambda w: w.bus.subscribe(None, print, mode="thread", buffer_size=8.0),
    ),
    (
        "sub-strategy-name",
        "strategy",
        lambda w: w.bus.subscribe(None, print, mode="thread", strategy="sideways"),
    ),
    (
        "sub-strategy-obj",
        "strategy",
        lambda w: w.bus.subscribe(None, print, mode="thread", strategy=object()),
    ),
    ("on-handler", "handler", lambda w: w.bus.on()(5)),
    ("chan-cap-zero", "buffer_size", lambda w: w.bus.subscribe_channel(None, 0)),
    ("chan-cap-bool", "buffer_size", lambda w: w.bus.subscribe_channel(None, True)),
    ("chan-cap-str", "buffer_size", lambda w: w.bus.subscribe_channel(None, "8")),
    ("chan-strategy", "strategy", lambda w: w.bus.subscribe_channel(None, 8, "newest")),
    ("chan-filter", "filter", lambda w: w.bus.subscribe_channel(5)),
    ("pub-none", "event", lambda w: w.bus.publish(None)),
    ("pub-str", "event", lambda w: w.bus.publish("system.startup")),
    ("pub-update", "event", lambda w: w.bus.publish(upd())),
    ("pub-timeout-neg", "timeout", lambda w: w.bus.publish(ev(), timeout=-1)),
    ("pub-timeout-nan", "timeout", lambda w: w.bus.publish(ev(), timeout=math.nan)),
    ("pub-timeout-str", "timeout", lambda w: w.bus.publish(ev(), timeout="1")),
    ("pubmany-int", "events", lambda w: w.bus.publish_many(5)),
    ("pubmany-mixed", "events[1]", lambda w: w.bus.publish_many([ev(), None, ev()])),
    ("pubmany-timeout", "timeout", lambda w: w.bus.publish_many([ev()], timeout=-0.5)),
    ("unsub-int", "subscription", lambda w: w.bus.unsubscribe(5)),
    ("unsub-none", "subscription", lambda w: w.bus.unsubscribe(None)),
    ("close-timeout-neg", "timeout", lambda w: EventBus().close(timeout=-1)),
    ("close-timeout-str", "timeout", lambda w: EventBus().close(timeout="soon")),
    ("hook", "hook", lambda w: w.bus.set_error_handler("log")),
    ("history-limit-neg", "limit", lambda w: w.bus.history(limit=-1)),
    ("history-limit-str", "limit", lambda w: w.bus.history(limit="3")),
    ("history-corr-int", "correlation_id", lambda w: w.bus.history(correlation_id=5)),
    ("trace-int", "correlation_id", lambda w: w.bus.trace(5)),
    # --- StateStore -------------------------------------------------------------------
    ("store-buf-zero", "subscription_buffer", lambda w: StateStore(subscription_buffer=0)),
    ("store-buf-neg", "subscription_buffer", lambda w: StateStore(subscription_buffer=-1)),
    ("store-buf-huge", "subscription_buffer", lambda w: StateStore(subscription_buffer=2**70)),
    ("set-none", "update", lambda w: w.store.set_service_state(None)),
    ("set-dict", "update", lambda w: w.store.set_service_state({"label": "c"})),
    ("set-event", "update", lambda w: w.store.set_service_state(ev())),
    ("transition-str", "update", lambda w: w.store.transition("c")),
    ("get-int", "label", lambda w: w.store.get_service_state(5)),
    ("get-empty", "label", lambda w: w.store.get_service_state("")),
    ("get-blank", "label", lambda w: w.store.get_service_state("   ")),
    ("get-nul", "label", lambda w: w.store.get_service_state(NUL)),
    ("get-long", "label", lambda w: w.store.get_service_state(LONG_LABEL)),
    ("get-huge", "label", lambda w: w.store.get_service_state(HUGE)),
    ("get-bytes", "label", lambda w: w.store.get_service_state(b"a")),
    ("get-surrogate", "label", lambda w: w.store.get_service_state("a\ud800")),
    ("event-source-surrogate", "source", lambda w: Event(EventType.USER_ACTION, "\udc00")),
    (
        "event-id-surrogate",
        "event_id",
        lambda w: Event(EventType.USER_ACTION, "s", event_id="evt_\ud800"),
    ),
    ("ftype-surrogate", "types", lambda w: tb.filter_by_type("\ud800")),
    ("history-corr-surrogate", "correlation_id", lambda w: w.bus.history(correlation_id="\ud800")),
    ("by-type-int", "service_type", lambda w: w.store.get_services_by_type(1)),
    ("by-type-empty", "service_type", lambda w: w.store.get_services_by_type("")),
    ("by-state-bogus", "state", lambda w: w.store.get_services_by_state("Exploded")),
    ("by-state-case", "state", lambda w: w.store.get_services_by_state("running")),
    ("by-state-int", "state", lambda w: w.store.get_services_by_state(2)),
    ("clear-int", "label", lambda w: w.store.clear(1)),
    ("clear-none", "label", lambda w: w.store.clear(None)),
    ("clear-nul", "label", lambda w: w.store.clear(NUL)),
    ("ssub-label-int", "label", lambda w: w.store.subscribe(7)),
    ("ssub-label-empty", "label", lambda w: w.store.subscribe("")),
    ("ssub-cap-zero", "buffer_size", lambda w: w.store.subscribe("a", buffer_size=0)),
    ("ssub-cap-neg", "buffer_size", lambda w: w.store.subscribe("a", buffer_size=-2)),
    ("ssub-strategy", "strategy", lambda w: w.store.subscribe("a", strategy="maybe")),
    # --- updates ----------------------------------------------------------------------
    ("msu-label-empty", "source_label", lambda w: tb.ManagedServiceUpdate(ST, "", "Running")),
    ("msu-label-nul", "source_label", lambda w: tb.ManagedServiceUpdate(ST, NUL, "Running")),
    (
        "msu-label-long",
        "source_label",
        lambda w: tb.ManagedServiceUpdate(ST, LONG_LABEL, "Running"),
    ),
    ("msu-label-int", "source_label", lambda w: tb.ManagedServiceUpdate(ST, 5, "Running")),
    ("msu-type-none", "source_type", lambda w: tb.ManagedServiceUpdate(None, "a", "Running")),
    ("msu-type-empty", "source_type", lambda w: tb.ManagedServiceUpdate("", "a", "Running")),
    ("msu-state-none", "state", lambda w: tb.ManagedServiceUpdate(ST, "a", None)),
    ("msu-state-bogus", "state", lambda w: tb.ManagedServiceUpdate(ST, "a", "Exploded")),
    ("msu-ready", "is_ready", lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", is_ready=1)),
    (
        "msu-port-neg",
        "proxy_port",
        lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", proxy_port=-1),
    ),
    (
        "msu-port-big",
        "proxy_port",
        lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", proxy_port=65536),
    ),
    ("msu-pid-str", "pid", lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", pid="1")),
    (
        "msu-error-int",
        "error_detail",
        lambda w: tb.ManagedServiceUpdate(ST, "a", "Failed", error_detail=3),
    ),
    (
        "msu-ts-neg",
        "timestamp",
        lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", timestamp=-1),
    ),
    (
        "msu-ts-nan",
        "timestamp",
        lambda w: tb.ManagedServiceUpdate(ST, "a", "Running", timestamp=math.nan),
    ),
    ("hsu-ctx-empty", "context_name", lambda w: tb.HealthStatusUpdate("", "c", False, True)),
    ("hsu-mc-str", "is_mc", lambda w: tb.HealthStatusUpdate("ctx", "c", "no", True)),
    (
        "hsu-nodes-neg",
        "ready_nodes",
        lambda w: tb.HealthStatusUpdate("ctx", "c", False, True, ready_nodes=-1),
    ),
    # --- events -----------------------------------------------------------------------
    ("event-type-bogus", "type", lambda w: Event("no.such.type", "s")),
    ("event-type-int", "type", lambda w: Event(3, "s")),
    ("event-type-empty", "type", lambda w: Event("", "s")),
    ("event-source-empty", "source", lambda w: Event(EventType.USER_ACTION, "")),
    ("event-source-nul", "source", lambda w: Event(EventType.USER_ACTION, NUL)),
    ("event-source-huge", "source", lambda w: Event(EventType.USER_ACTION, HUGE)),
    ("event-source-int", "source", lambda w: Event(EventType.USER_ACTION, 12)),
    ("event-severity", "severity", lambda w: Event(EventType.USER_ACTION, "s", severity="loud")),
    ("event-metadata-list", "metadata", lambda w: Event(EventType.USER_ACTION, "s", metadata=[1])),
    (
        "event-metadata-key",
        "metadata",
        lambda w: Event(EventType.USER_ACTION, "s", metadata={1: "x"}),
    ),
    (
        "event-corr-nul",
        "correlation_id",
        lambda w: Event(EventType.USER_ACTION, "s", correlation_id=NUL),
    ),
    (
        "event-corr-int",
        "correlation_id",
        lambda w: Event(EventType.USER_ACTION, "s", correlation_id=1),
    ),
    ("event-caused-int", "caused_by", lambda w: Event(EventType.USER_ACTION, "s", caused_by=1)),
    ("event-parent-int", "parent_id", lambda w: Event(EventType.USER_ACTION, "s", parent_id=1)),
    ("event-ts-inf", "timestamp", lambda w: Event(EventType.USER_ACTION, "s", timestamp=math.inf)),
    ("event-ts-bool", "timestamp", lambda w: Event(EventType.USER_ACTION, "s", timestamp=True)),
    ("event-id-bad", "event_id", lambda w: Event(EventType.USER_ACTION, "s", event_id="evt_zz")),
    ("event-id-int", "event_id", lambda w: Event(EventType.USER_ACTION, "s", event_id=7)),
    ("sse-old", "old_state", lambda w: tb.ServiceStateEvent(ST, "a", "Exploded", "Running")),
    ("sse-new", "new_state", lambda w: tb.ServiceStateEvent(ST, "a", "Running", None)),
    ("sse-type", "service_type", lambda w: tb.ServiceStateEvent(5, "a", "Running", "Running")),
    (
        "sse-port",
        "proxy_port",
        lambda w: tb.ServiceStateEvent(ST, "a", "Running", "Running", proxy_port=10**6),
    ),
    ("sse-error", "error", lambda w: tb.ServiceStateEvent(ST, "a", "Failed", "Failed", error=[1])),
    ("he-nodes", "ready_nodes", lambda w: tb.HealthEvent("ctx", "c", False, True, ready_nodes="3")),
    ("he-ctx", "context_name", lambda w: tb.HealthEvent(NUL, "c", False, True)),
    ("de-affected", "affected", lambda w: tb.DependencyEvent("s", ST, "abc", "start")),
    ("de-action", "action", lambda w: tb.DependencyEvent("s", ST, ["a"], "explode")),
    ("de-cascade", "cascade", lambda w: tb.DependencyEvent("s", ST, ["a"], "stop", cascade="y")),
    ("uae-target", "target_type", lambda w: tb.UserActionEvent("restart", "", "x")),
    ("uae-action", "action", lambda w: tb.UserActionEvent(None, ST, "x")),
    ("se-action", "action", lambda w: tb.SystemEvent("core", "explode")),
    ("se-component", "component", lambda w: tb.SystemEvent("", "startup")),
    # --- channels and strategies -------------------------------------------------------
    ("channel-cap-zero", "capacity", lambda w: Channel(0)),
    ("channel-cap-neg", "capacity", lambda w: Channel(-1)),
    ("channel-cap-huge", "capacity", lambda w: Channel(10**30)),
    ("channel-strategy", "strategy", lambda w: Channel(4, "lifo")),
    ("send-none", "item", lambda w: Channel(4).send(None)),
    ("send-severity", "severity", lambda w: Channel(4).send(1, severity="loud")),
    ("send-timeout", "timeout", lambda w: Channel(4).send(1, timeout=-1)),
    ("send-to-store-channel", "StateStore", lambda w: w.watcher.send(1)),
    ("recv-timeout", "timeout", lambda w: w.channel.recv(timeout=math.nan)),
    ("recv-timeout-str", "timeout", lambda w: w.channel.recv(timeout="1s")),
    ("drain-neg", "max_items", lambda w: w.channel.drain(-1)),
    ("drain-str", "max_items", lambda w: w.channel.drain("all")),
    ("simple-action", "action", lambda w: tb.SimpleBufferStrategy("sometimes")),
    ("simple-action-int", "action", lambda w: tb.SimpleBufferStrategy(0)),
    ("priority-default", "default_action", lambda w: tb.PriorityBufferStrategy("x")),
    ("priority-rules-list", "rules", lambda w: tb.PriorityBufferStrategy(rules=[1])),
    (
        "priority-rules-key",
        "rules key",
        lambda w: tb.PriorityBufferStrategy(rules={"no.such": BufferAction.DROP}),
    ),
    (
        "priority-rules-value",
        "rules value",
        lambda w: tb.PriorityBufferStrategy(rules={EventType.USER_ACTION: "x"}),
    ),
    # --- filters, registry, correlation -------------------------------------------------
    ("ftype-bogus", "types", lambda w: tb.filter_by_type("no.such")),
    ("ftype-int", "types", lambda w: tb.filter_by_type(1)),
    ("fsource-empty", "sources", lambda w: tb.filter_by_source("")),
    ("fsource-nul", "sources", lambda w: tb.filter_by_source(NUL)),
    ("fseverity", "minimum", lambda w: tb.filter_by_severity("loud")),
    ("fcorr", "correlation_id", lambda w: tb.filter_by_correlation("")),
    ("fby", "predicate", lambda w: tb.filter_by(5)),
    ("fcombine", "filters", lambda w: tb.combine_filters(5)),
    ("fany", "filters", lambda w: tb.any_filter("x")),
    ("fnot-none", "filter", lambda w: tb.not_filter(None)),
    ("fnot-int", "filter", lambda w: tb.not_filter(5)),
    ("fand", "other", lambda w: tb.filter_by_type(EventType.USER_ACTION) & 5),
    ("for", "other", lambda w: tb.filter_by_type(EventType.USER_ACTION) | "x"),
    ("fmatches", "event", lambda w: tb.filter_by_type(EventType.USER_ACTION).matches(5)),
    ("register-empty", "name", lambda w: tb.register_event_type("")),
    ("register-int", "name", lambda w: tb.register_event_type(5)),
    ("register-nul", "name", lambda w: tb.register_event_type(NUL)),
    ("register-space", "name", lambda w: tb.register_event_type("has space")),
    ("traceparent", "traceparent", lambda w: tb.from_traceparent("00-zz")),
    ("traceparent-int", "traceparent", lambda w: tb.from_traceparent(5)),
    ("correlation-cause", "caused_by", lambda w: tb.correlation(5).__enter__()),
    # --- integration --------------------------------------------------------------------
    ("adapter-bus", "bus", lambda w: tb.EventBusAdapter(bus=5)),
    ("adapter-store", "store", lambda w: tb.EventBusAdapter(store=w.bus)),
    ("adapter-report", "update", lambda w: tb.EventBusAdapter(w.bus, w.store).report(5)),
    ("adapter-health", "update", lambda w: tb.EventBusAdapter(w.bus, w.store).report_health(upd())),
    ("tui-config", "config", lambda w: tb.TUIReporter(config={})),
    # --- payloads that cannot be serialised --------------------------------------------
    (
        "encode-object",
        "metadata",
        lambda w: tb.encode_event(Event(EventType.USER_ACTION, "s", metadata={"when": object()})),
    ),
    (
        "encode-nan",
        "metadata",
        lambda w: tb.encode_event(Event(EventType.USER_ACTION, "s", metadata={"x": math.nan})),
    ),
    ("decode-garbage", "JSON", lambda w: tb.decode_event(b"\xff\x00garbage")),
    ("decode-int", "data", lambda w: tb.decode_event(5)),
]


@pytest.mark.parametrize(("param", "call"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(
    world: World, param: str, call: Callable[[World], object]
) -> None:
    before = world.snapshot()
    with pytest.raises(CLEAR) as info:
        call(world)
    # PyO3's own argument errors name the parameter in a note ("while processing 'x'"),
    # which tracebacks show; tracebus's own errors name it in the message.
    text = " ".join([str(info.value), *getattr(info.value, "__notes__", [])])
    assert param.lower() in text.lower(), f"{info.value!r} does not name {param!r}"
    assert world.snapshot() == before
    # The objects still work normally afterwards.
    assert world.bus.publish(ev()) == 2
    assert world.store.set_service_state(upd("z"))


def test_closed_bus_refuses_clearly_and_changes_nothing(world: World) -> None:
    world.bus.close()
    before = world.snapshot()
    for call in (
        lambda: world.bus.publish(ev()),
        lambda: world.bus.publish_many([ev()]),
        lambda: world.bus.subscribe(None, print),
        lambda: world.bus.subscribe_channel(None),
    ):
        with pytest.raises(tb.BusClosedError, match="closed"):
            call()
        assert world.snapshot() == before


def test_raising_filter_is_counted_and_isolated(world: World) -> None:
    errors: list[BaseException] = []
    world.bus.set_error_handler(lambda exc, e, s: errors.append(exc))

    def pred(e: Event) -> bool:
        raise LookupError("bad predicate")

    sub = world.bus.subscribe(tb.filter_by(pred), print)
    before_handled = len(world.got)
    assert world.bus.publish(ev()) == 2  # the others still get it
    assert len(world.got) == before_handled + 1
    assert sub.errors == 1 and sub.delivered == 0
    assert len(errors) == 1 and isinstance(errors[0], LookupError)
    # Filter.matches lets the predicate's error through to the caller.
    with pytest.raises(LookupError):
        tb.filter_by(pred).matches(ev())


def test_sweep_figures(figures: Figures) -> None:
    """Reports the size of the sweep above."""
    figures.events = len(CASES)
    figures.faults = len(CASES)
    figures.errors = len(CASES)
    figures.extra["cases"] = len(CASES)
    figures.extra["params"] = len({c[1] for c in CASES})
