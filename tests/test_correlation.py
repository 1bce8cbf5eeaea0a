"""Correlation scopes (contextvars), inheritance by updates and events, W3C traceparent."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tb_support import state_event, update

from tracebus import (
    CorrelationContext,
    Event,
    EventBus,
    EventType,
    HealthStatusUpdate,
    ServiceStateEvent,
    SystemEvent,
    UserActionEvent,
    correlation,
    current_correlation,
    filter_by_correlation,
    filter_by_type,
    from_traceparent,
    new_correlation_id,
    to_traceparent,
)


def test_no_scope_outside() -> None:
    assert current_correlation() is None


def test_scope_is_inherited_by_updates_and_events() -> None:
    with correlation("user_restart") as ctx:
        assert re.fullmatch(r"corr_[0-9a-f]{16}", ctx.correlation_id)
        assert ctx.caused_by == "user_restart"
        assert ctx.parent_id is None
        assert current_correlation() is ctx
        u = update()
        e = state_event()
        h = HealthStatusUpdate("ctx", "golem", True, True)
        ua = UserActionEvent("restart", "PortForward", "pf")
    for x in (u, e, h, ua):
        assert x.correlation_id == ctx.correlation_id
        assert x.caused_by == "user_restart"
        assert x.parent_id is None
    assert current_correlation() is None
    # After the scope closes, new things get fresh correlations again.
    assert update().correlation_id != ctx.correlation_id


def test_explicit_arguments_win_over_the_scope() -> None:
    with correlation("user_restart"):
        u = update(correlation_id="corr_00000000000000aa", caused_by="manual")
        e = SystemEvent("core", "startup", caused_by="boot")
    assert u.correlation_id == "corr_00000000000000aa"
    assert u.caused_by == "manual"
    assert e.caused_by == "boot"


def test_nested_scope_joins_the_outer_correlation() -> None:
    with correlation("outer") as outer:
        with correlation("inner") as inner:
            assert inner.correlation_id == outer.correlation_id
            assert inner.caused_by == "inner"
            assert update().caused_by == "inner"
        assert current_correlation() is outer
        assert update().caused_by == "outer"


def test_nested_scope_without_cause_inherits_the_cause() -> None:
    with correlation("outer"):
        with correlation() as inner:
            assert inner.caused_by == "outer"


def test_explicit_correlation_id_and_parent() -> None:
    with correlation(
        "remote", correlation_id="corr_00000000000000bb", parent_id="evt_00000000000000cc"
    ) as c:
        u = update()
    assert c.correlation_id == "corr_00000000000000bb"
    assert u.correlation_id == "corr_00000000000000bb"
    assert u.parent_id == "evt_00000000000000cc"
    assert u.caused_by == "remote"


def test_scope_is_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError):
        with correlation("x"):
            raise RuntimeError("boom")
    assert current_correlation() is None


def test_thread_with_copied_context_inherits() -> None:
    seen: list[tuple[str, str]] = []

    def work() -> None:
        u = update()
        seen.append((u.correlation_id, u.caused_by))

    with correlation("user_restart") as ctx:
        ctxcopy = contextvars.copy_context()
        t = threading.Thread(target=ctxcopy.run, args=(work,))
        t.start()
        t.join()
    assert seen == [(ctx.correlation_id, "user_restart")]


def test_thread_without_copied_context_does_not_inherit() -> None:
    seen: list[str] = []
    with correlation("user_restart") as ctx:
        t = threading.Thread(target=lambda: seen.append(update().correlation_id))
        t.start()
        t.join()
    assert seen and seen[0] != ctx.correlation_id


def test_many_threads_with_their_own_scopes_do_not_mix() -> None:
    def work(i: int) -> list[tuple[str, str]]:
        out = []
        with correlation(f"op{i}") as ctx:
            for _ in range(200):
                u = update()
                out.append((ctx.correlation_id, u.correlation_id))
                assert u.caused_by == f"op{i}"
        return out

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(work, range(8)))
    corrs = set()
    for r in results:
        assert all(a == b for a, b in r)
        corrs.add(r[0][0])
    assert len(corrs) == 8


def test_asyncio_tasks_inherit_and_stay_isolated() -> None:
    async def child(tag: str) -> tuple[str, str]:
        await asyncio.sleep(0)
        u = update()
        return u.correlation_id, u.caused_by

    async def op(tag: str) -> tuple[str, list[tuple[str, str]]]:
        with correlation(tag) as ctx:
            # Tasks copy the context when created.
            results = await asyncio.gather(*(asyncio.create_task(child(tag)) for _ in range(5)))
        return ctx.correlation_id, list(results)

    async def main() -> list[tuple[str, list[tuple[str, str]]]]:
        return list(await asyncio.gather(op("a"), op("b"), op("c")))

    out = asyncio.run(main())
    assert len({c for c, _ in out}) == 3
    for (corr, results), tag in zip(out, "abc", strict=True):
        assert results == [(corr, tag)] * 5


def test_correlation_context_bad_input() -> None:
    with pytest.raises(ValueError, match="correlation_id"):
        with correlation("x", correlation_id=""):
            pass
    with pytest.raises(TypeError, match="caused_by"):
        with correlation(5):  # type: ignore[arg-type]
            pass
    assert current_correlation() is None


def test_correlation_context_repr_is_python_like() -> None:
    c = CorrelationContext("x", "corr_00000000000000aa", "evt_00000000000000bb")
    r = repr(c)
    assert "corr_00000000000000aa" in r
    assert "Some(" not in r
    assert "parent_id='evt_00000000000000bb'" in r or 'parent_id="evt_00000000000000bb"' in r
    assert "parent_id=None" in repr(CorrelationContext("x", "corr_00000000000000aa"))


# --- traceparent -------------------------------------------------------------------------


def test_traceparent_round_trip() -> None:
    corr = new_correlation_id()
    e = state_event()
    tp = to_traceparent(corr, e.event_id)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", tp)
    ctx = from_traceparent(tp)
    assert ctx.correlation_id == corr
    assert ctx.parent_id == e.event_id
    assert ctx.caused_by == "remote"
    with correlation(correlation_id=ctx.correlation_id, parent_id=ctx.parent_id):
        u = update()
    assert (u.correlation_id, u.parent_id) == (corr, e.event_id)


def test_traceparent_of_a_foreign_trace_id_round_trips() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = from_traceparent(tp, caused_by="http")
    assert ctx.caused_by == "http"
    assert to_traceparent(ctx.correlation_id, ctx.parent_id) == tp


def test_traceparent_not_sampled_and_uppercase_input() -> None:
    corr = "corr_00000000000000ab"
    tp = to_traceparent(corr, sampled=False)
    assert tp.endswith("-00")
    assert from_traceparent(tp.upper()).correlation_id == corr


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
    ],
)
def test_from_traceparent_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match="traceparent"):
        from_traceparent(bad)


def test_from_traceparent_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="traceparent"):
        from_traceparent(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("corr", "parent"),
    [
        ("", None),
        ("corr_xyz", None),
        ("corr_" + "0" * 16, None),
        ("corr_00000000000000ab", "evt_123"),
        ("corr_00000000000000ab", "nope"),
    ],
)
def test_to_traceparent_rejects_bad_input(corr: str, parent: str | None) -> None:
    with pytest.raises(ValueError, match=r"correlation_id|parent_id"):
        to_traceparent(corr, parent)


def test_events_created_in_scope_route_by_correlation(bus: EventBus) -> None:
    with correlation("op") as ctx:
        got: list[Event] = []
        bus.subscribe(filter_by_correlation(ctx.correlation_id), got.append)
        bus.publish(SystemEvent("core", "config_change"))
    bus.publish(SystemEvent("core", "config_change"))
    assert len(got) == 1
    assert got[0].type is EventType.CONFIG_CHANGE


def test_handled_event_wins_over_an_older_enclosing_scope() -> None:
    bus = EventBus()
    try:
        created: list[object] = []
        bus.subscribe(None, lambda e: created.append(update()))
        with correlation("scope") as scope:
            handled = Event(
                EventType.USER_ACTION,
                "ui",
                correlation_id="corr_00000000000000a7",
                caused_by="click",
            )
            bus.publish(handled)
        (u,) = created
        assert u.correlation_id == "corr_00000000000000a7" != scope.correlation_id  # type: ignore[attr-defined]
        assert u.parent_id == handled.event_id  # type: ignore[attr-defined]
        assert u.caused_by == "user.action"  # type: ignore[attr-defined]
    finally:
        bus.close()


def test_scope_without_cause_keeps_each_kinds_default_cause() -> None:
    with correlation() as ctx:
        e = SystemEvent("api", "startup")
        u = update("pf", "Running")
        h = HealthStatusUpdate("ctx", "golem", True, True)
    assert ctx.caused_by == "unknown"
    assert e.correlation_id == u.correlation_id == h.correlation_id == ctx.correlation_id
    assert (e.caused_by, u.caused_by, h.caused_by) == (
        "system_operation",
        "unknown",
        "health_check",
    )
    with correlation("user_restart"):
        assert SystemEvent("api", "startup").caused_by == "user_restart"


# --- starting a new operation explicitly ---------------------------------------------------


def test_correlation_new_starts_a_root_inside_another_scope() -> None:
    with correlation("startup") as outer:
        with correlation.new("crash") as inner:
            u = update()
        with correlation("crash", new=True) as inner2:
            pass
    assert inner.correlation_id != outer.correlation_id
    assert inner2.correlation_id not in (outer.correlation_id, inner.correlation_id)
    assert inner.parent_id is None and inner.caused_by == "crash"
    assert u.correlation_id == inner.correlation_id and u.parent_id is None


@pytest.mark.timeout(30)
def test_correlation_new_in_a_task_created_during_a_cascade() -> None:
    # A watcher task created inside the startup scope copies its context: a plain
    # correlation("process_exit") joins startup, correlation.new does not.
    async def main() -> tuple[str, str, str]:
        async def watcher() -> tuple[str, str]:
            with correlation("process_exit") as joined:
                pass
            with correlation.new("process_exit") as fresh:
                pass
            return joined.correlation_id, fresh.correlation_id

        with correlation("startup") as start:
            task = asyncio.create_task(watcher())
        joined, fresh = await task
        return start.correlation_id, joined, fresh

    start, joined, fresh = asyncio.run(main())
    assert joined == start
    assert fresh != start


def test_correlation_new_inside_a_handler_is_a_root_and_its_trace_complete() -> None:
    bus = EventBus()
    seen: list[Event] = []

    @bus.on(filter_by_type(EventType.SERVICE_FAILED))
    def on_failed(event: Event) -> None:
        with correlation.new("incident"):
            bus.publish(SystemEvent("alerting", "error", "pf down"))

    bus.on(SystemEvent)(seen.append)
    with correlation("startup") as ctx:
        bus.publish(ServiceStateEvent("PortForward", "pf", "Running", "Failed"))
    (alert,) = seen
    assert alert.correlation_id != ctx.correlation_id and alert.parent_id is None
    assert alert.caused_by == "incident"
    t = bus.trace(alert.correlation_id)
    assert len(t) == 1 and t.complete
    bus.close()


def test_correlation_new_bad_input() -> None:
    with pytest.raises(ValueError, match="new=True starts a fresh correlation"):
        correlation("x", correlation_id="corr_00000000000000a1", new=True)
    with pytest.raises(TypeError, match="new must be a bool"):
        correlation("x", new="yes")  # type: ignore[arg-type]


def test_from_traceparent_is_usable_in_with() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    remote = from_traceparent(tp, "http")
    with correlation("local"):
        with remote as ctx:
            u = update()
            with remote:  # re-entrant
                v = update()
        w = update()
    assert isinstance(ctx, CorrelationContext)
    assert ctx.correlation_id == remote.correlation_id
    assert (u.correlation_id, u.parent_id, u.caused_by) == (
        remote.correlation_id,
        "evt_00f067aa0ba902b7",
        "http",
    )
    assert v.correlation_id == remote.correlation_id
    assert w.correlation_id != remote.correlation_id  # the scope ended
    with pytest.raises(ValueError, match="caused_by"):
        from_traceparent(tp, "")
