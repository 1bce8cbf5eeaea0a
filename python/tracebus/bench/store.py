"""The store case: ``set_service_state`` + ``get_service_state``, tracebus and dicts."""

from __future__ import annotations

from collections.abc import Callable

from .._core import StateStore
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
