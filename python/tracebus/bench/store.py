"""The store case: ``set_service_state`` + ``get_service_state``, tracebus and dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import StateStore
from .._enums import ServiceState, ServiceType
from .framework import Trial
from .peers import PyStore, PyUpdate
from .reporter import _round_updates, _Updates


def _tb_store(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    store = StateStore()
    pairs = list(zip(shared.tb[:n], shared.labels[:n], strict=True))
    set_state, get_state = store.set_service_state, store.get_service_state

    def applied() -> int:
        return int(store.get_metrics()["operations"])

    def run() -> tuple[int, int]:
        before, misses = applied(), 0
        for u, label in pairs:
            set_state(u)
            if get_state(label) is None:
                misses += 1
        return misses, applied() - before

    def check(out: tuple[int, int]) -> int:
        misses, sets = out
        return 2 * (n - misses) if sets == n else 0

    return Trial(2 * n, 2 * n, run, check=check)


def _py_store(locked: bool) -> Callable[[_Updates, int], Trial]:
    def setup(shared: _Updates, n: int) -> Trial:
        n = _round_updates(n)
        pairs = list(zip(shared.py[:n], shared.labels[:n], strict=True))
        if locked:
            store = PyStore()
            set_state, get_state = store.set_service_state, store.get_service_state

            def run() -> int:
                misses = 0
                for u, label in pairs:
                    set_state(u)
                    if get_state(label) is None:
                        misses += 1
                return misses

        else:
            d: dict[str, PyUpdate] = {}
            get = d.get

            def run() -> int:
                misses = 0
                for u, label in pairs:
                    d[u.label] = u
                    if get(label) is None:
                        misses += 1
                return misses

        return Trial(2 * n, 2 * n, run, check=lambda misses: 2 * (n - misses))

    return setup


_WATCHERS = 10_000


def _prepare_one_label(n: int) -> list[Any]:
    """``n`` updates (rounded up to even) of one label alternating Running/Stopped, so every
    update changes its state and notifies the label's watcher."""
    from .._core import ManagedServiceUpdate

    states = (ServiceState.RUNNING, ServiceState.STOPPED)
    pair = [ManagedServiceUpdate(ServiceType.PORT_FORWARD, "svc-0", s) for s in states]
    return pair * max((n + 1) // 2, 1)


def _tb_watched(watchers: int) -> Callable[[list[Any], int], Trial]:
    """The store with ``watchers`` label watchers (one on the written label, the others on
    other labels), writing one label: a write's cost must not depend on the others."""

    def setup(updates: list[Any], n: int) -> Trial:
        n = len(updates[:n]) // 2 * 2
        store = StateStore()
        watched = store.subscribe("svc-0", buffer_size=n)
        others = [store.subscribe(f"other-{i}", buffer_size=1) for i in range(watchers - 1)]
        batch, set_state = updates[:n], store.set_service_state

        def run() -> int:
            watched.drain()
            for u in batch:
                set_state(u)
            return len(watched)

        def close() -> None:
            for ch in [watched, *others]:
                ch.close()

        return Trial(n, n, run, close=close)

    return setup
