"""Plan test 5: handler errors are isolated, counted exactly and passed to the hook."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from reliability_util import Figures, run_threads, scaled, wait_until

from tracebus import Event, EventBus, EventType, Subscription, filter_by

N = scaled(100_000)  # the plan's 100k at CI size
SUBSCRIBERS = 10
PUBLISHERS = 4


def ev(n: int) -> Event:
    return Event(EventType.SYSTEM_STARTUP, "src", timestamp=float(n))


class Boom(ValueError):
    pass


def _run(mode: str, n_events: int, figures: Figures) -> None:
    hook_calls: list[tuple[BaseException, Event, Subscription]] = []
    lock = threading.Lock()

    def hook(exc: BaseException, event: Event, sub: Subscription) -> None:
        with lock:
            hook_calls.append((exc, event, sub))

    bus = EventBus(history_size=0, on_error=hook)
    counts = [0] * SUBSCRIBERS
    count_lock = threading.Lock()

    def good(i: int) -> Callable[[Event], None]:
        def h(e: Event) -> None:
            with count_lock:
                counts[i] += 1

        return h

    def bad(e: Event) -> None:
        n = int(e.timestamp)
        if n % 3 == 0:
            raise Boom(f"event {n}")
        with count_lock:
            counts[SUBSCRIBERS - 1] += 1

    kw: dict[str, Any] = {"mode": mode}
    subs = [bus.subscribe(None, good(i), **kw) for i in range(SUBSCRIBERS - 1)]
    bad_sub = bus.subscribe(None, bad, **kw)

    def publisher(p: int) -> Callable[[], None]:
        def run() -> None:
            for n in range(p, n_events, PUBLISHERS):
                bus.publish(ev(n))

        return run

    run_threads([publisher(p) for p in range(PUBLISHERS)])
    expected_errors = (n_events + 2) // 3
    if mode == "thread":
        assert wait_until(lambda: sum(counts) + len(hook_calls) == n_events * SUBSCRIBERS)
    bus.close()
    figures.events = n_events
    figures.threads = PUBLISHERS + (SUBSCRIBERS if mode == "thread" else 0)
    figures.faults = expected_errors
    figures.published = n_events * SUBSCRIBERS
    figures.delivered = sum(counts)
    figures.errors = len(hook_calls)
    figures.lost = n_events * SUBSCRIBERS - sum(counts) - len(hook_calls)
    figures.extra["mode"] = mode
    assert counts[: SUBSCRIBERS - 1] == [n_events] * (SUBSCRIBERS - 1)
    assert counts[-1] == n_events - expected_errors
    assert len(hook_calls) == expected_errors
    assert bad_sub.errors == expected_errors
    assert bad_sub.delivered == n_events - expected_errors
    assert all(s.errors == 0 and s.delivered == n_events for s in subs)
    m = bus.get_metrics()
    assert m["handler_errors"] == expected_errors
    assert m["events_published"] == n_events
    seen = set()
    for exc, event, sub in hook_calls:
        assert type(exc) is Boom
        n = int(event.timestamp)
        assert n % 3 == 0 and str(exc) == f"event {n}"
        assert sub.id == bad_sub.id
        seen.add(n)
    figures.duplicated = len(hook_calls) - len(seen)
    assert len(seen) == expected_errors


def test_one_raising_subscriber_sync(figures: Figures) -> None:
    _run("sync", N, figures)
    if N == 100_000:
        assert figures.errors == 33_334


def test_one_raising_subscriber_thread_mode(figures: Figures) -> None:
    _run("thread", scaled(30_000), figures)


def test_failing_hook_and_raising_filter_do_not_break_the_bus(
    figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def hook(exc: BaseException, event: Event, sub: Subscription) -> None:
        raise RuntimeError("the hook itself fails")

    bus = EventBus(history_size=0, on_error=hook)
    got: list[int] = []

    def pred(e: Event) -> bool:
        if int(e.timestamp) % 2:
            raise KeyError("predicate")
        return True

    filtered = bus.subscribe(filter_by(pred), lambda e: got.append(int(e.timestamp)))
    raising = bus.subscribe(None, lambda e: 1 / 0)
    ok: list[int] = []
    bus.subscribe(None, lambda e: ok.append(1))
    n = 1000
    for i in range(n):
        bus.publish(ev(i))
    assert got == list(range(0, n, 2))
    assert filtered.errors == n // 2
    assert raising.errors == n
    assert len(ok) == n
    assert bus.get_metrics()["handler_errors"] == n // 2 + n
    # Every hook failure went to sys.unraisablehook, with the hook's own exception.
    assert len(unraisable) == n // 2 + n
    assert all(isinstance(u.exc_value, RuntimeError) for u in unraisable)
    bus.close()
    figures.events = n
    figures.threads = 1
    figures.faults = n // 2 + n
    figures.published = 3 * n
    figures.delivered = len(got) + len(ok)
    figures.errors = n // 2 + n
    figures.lost = 3 * n - figures.delivered - figures.errors
