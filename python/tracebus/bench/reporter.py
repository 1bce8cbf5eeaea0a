"""Case (e): ``adapter.report`` (store + event + handler), tracebus and a hand-written one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._core import StateStore
from .._enums import ServiceState, ServiceType
from ..bus import EventBus
from ..reporters import EventBusAdapter
from .framework import Trial, _Count, _handler
from .peers import DictDispatcher, PyAdapter, PyUpdate


@dataclass
class _Updates:
    tb: list[Any]  # ManagedServiceUpdate
    py: list[PyUpdate]
    labels: list[str]


_LABELS = 100


def _prepare_updates(n: int) -> _Updates:
    """Updates of 100 labels, each label alternating Running/Stopped, so every update
    changes its label's state. `n` is rounded to a multiple of 200 so that consecutive runs
    keep alternating."""
    from .._core import ManagedServiceUpdate

    labels = [f"svc-{i:02d}" for i in range(_LABELS)]
    states = (ServiceState.RUNNING, ServiceState.STOPPED)
    tb = [
        ManagedServiceUpdate(ServiceType.PORT_FORWARD, labels[i], states[b])
        for b in range(2)
        for i in range(_LABELS)
    ]
    py = [
        PyUpdate(str(u.source_type), u.source_label, str(u.state), u.timestamp, k, u.correlation_id)
        for k, u in enumerate(tb)
    ]
    m = max(n // (2 * _LABELS), 1)
    return _Updates(tb * m, py * m, labels * (2 * m))


def _round_updates(n: int) -> int:
    return max(n // (2 * _LABELS), 1) * 2 * _LABELS


def _tb_report(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    adapter = EventBusAdapter(EventBus(), StateStore())
    c = _Count()
    adapter.bus.subscribe(None, _handler(c))
    updates, report = shared.tb[:n], adapter.report

    def run() -> int:
        c.n = 0
        for u in updates:
            report(u)
        return c.n

    return Trial(n, n, run, close=adapter.bus.close)


def _py_report(shared: _Updates, n: int) -> Trial:
    n = _round_updates(n)
    d = DictDispatcher()
    c = _Count()
    d.subscribe("service.state", _handler(c))
    adapter = PyAdapter(d)
    updates, report = shared.py[:n], adapter.report

    def run() -> int:
        c.n = 0
        for u in updates:
            report(u)
        return c.n

    return Trial(n, n, run)
