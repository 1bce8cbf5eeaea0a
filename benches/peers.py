"""The peers tracebus is measured against, for the pytest-benchmark files.

The adapters themselves live in ``tracebus.bench`` so that ``tracebus bench`` runs exactly
the same code from an installed wheel (no source tree needed); this module is the benches'
index of them. Peers (``pip install pyee blinker aiopubsub reactivex pytest-benchmark``, or
``pip install .[bench]``):

- ``hand-written``: ``DictDispatcher``, the 10-line dict of handler lists; for the reporter
  and store cases ``PyAdapter``/``PyStore`` (a dict behind a lock, dataclass events);
- ``pyee`` (``EventEmitter.emit``, ``AsyncIOEventEmitter``), ``blinker`` (named signals,
  ``send``/``send_async``), ``aiopubsub`` (``Hub.publish`` with a prebuilt ``Key``,
  ``Subscriber.add_async_listener``), ``reactivex`` (``Subject``, one ``filter`` operator per
  subscriber where topics differ);
- stdlib baselines: ``asyncio.Queue`` to a consumer task, ``queue.SimpleQueue`` and
  ``queue.Queue`` between threads, ``dataclass`` events with ``uuid4``/counter ids, and floors
  (calling the handlers from a Python loop, a bare dict).

Every contender's run returns the deliveries it observed; ``Trial.check`` turns that into a
count that must equal ``Trial.expected``.
"""

from __future__ import annotations

import pytest

from tracebus.bench import CASES, Case, Contender, DictDispatcher, Trial
from tracebus.bench.peers import PyAdapter, PyStore

__all__ = [
    "CASES",
    "Case",
    "Contender",
    "DictDispatcher",
    "PyAdapter",
    "PyStore",
    "Trial",
    "case",
    "params",
]

_BY_KEY = {c.key: c for c in CASES}


def case(key: str) -> Case:
    """The case named ``key`` (``a`` ... ``h``, ``c'``, ``store``)."""
    return _BY_KEY[key]


def params(*keys: str) -> list[object]:
    """``pytest.param(case, contender)`` for every contender of the named cases, with ids
    like ``a-tracebus`` and ``c'-pyee``."""
    return [
        pytest.param(_BY_KEY[k], c, id=f"{k}-{c.name.replace(' ', '_')}")
        for k in keys
        for c in _BY_KEY[k].contenders
    ]
