"""Case (h): making events with fresh ids, tracebus and dataclasses."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

from .._core import ServiceStateEvent
from .._enums import ServiceState, ServiceType
from .framework import Trial
from .peers import PyStateEvent

_WINDOW = 10_000  # events kept alive at a time, like a bus history of 10,000


def _creation_trial(n: int, make_block: Callable[[range], list[Any]]) -> Trial:
    """Creates ``n`` events in blocks of 10,000 (``make_block(range(10_000))``, a list
    comprehension calling the constructor directly); each block is kept until the next one
    is made (retaining all ``n`` would mostly measure the cyclic GC walking a growing heap).
    The check: every block had 10,000 events, the first events of all blocks and all events
    of the last block have distinct event ids, and the last block distinct correlation ids."""
    blocks = max(n // _WINDOW, 1)
    rb, rw = range(blocks), range(_WINDOW)

    def run() -> tuple[list[Any], list[Any], int]:
        firsts: list[Any] = []
        block: list[Any] = []
        made = 0
        for _ in rb:
            block = make_block(rw)
            firsts.append(block[0])
            made += len(block)
        return firsts, block, made

    def check(out: tuple[list[Any], list[Any], int]) -> int:
        firsts, block, made = out
        ids = {e.event_id for e in firsts[:-1]} | {e.event_id for e in block}
        fresh = len(ids) == blocks - 1 + _WINDOW
        fresh &= len({e.correlation_id for e in block}) == _WINDOW
        return made if fresh else 0

    return Trial(blocks * _WINDOW, blocks * _WINDOW, run, check=check)


def _tb_create(shared: None, n: int) -> Trial:
    cls = ServiceStateEvent
    st, src, old, new = ServiceType.PORT_FORWARD, "svc", ServiceState.STARTING, ServiceState.RUNNING

    def make_block(r: range) -> list[Any]:
        return [cls(st, src, old, new) for _ in r]

    return _creation_trial(n, make_block)


def _dc_create(ids: str) -> Callable[[None, int], Trial]:
    def setup(shared: None, n: int) -> Trial:
        cls = PyStateEvent
        st, src, old, new = "PortForward", "svc", "Starting", "Running"
        now, u4, counter = time.time, uuid.uuid4, itertools.count()

        def uuid_block(r: range) -> list[Any]:
            return [cls(st, src, old, new, u4().hex, u4().hex, now()) for _ in r]

        def counter_block(r: range) -> list[Any]:
            return [cls(st, src, old, new, next(counter), next(counter), now()) for _ in r]

        return _creation_trial(n, uuid_block if ids == "uuid4" else counter_block)

    return setup
