"""The benchmark engine behind ``tracebus bench``: tracebus against the Python peers a user
would pick instead, all contenders of a case in one process, ratios measured side by side.
Cases (c) and (c'), which register custom event types, run in a child process of their own
(``isolation``), so the caller's event type registry is left as it was.

Each case prepares its input once (prebuilt events, updates), gives every contender the same
input, runs every contender ``repeats`` times round-robin (so machine noise hits them alike)
and keeps the median. Every run returns the number of deliveries it observed (handler calls,
drained events, distinct ids, store hits) and the engine checks it against the expected
number, so no contender can be fast by skipping work.

Modules: ``framework`` (cases, contenders, trials, results), ``inputs``, ``peers`` (the
hand-written ones), one per case family (``fanout`` a-c', ``asyncio_fanout`` d, ``reporter``
e, ``batches`` f, ``threads`` g, ``creation`` h, ``store``), ``cases`` (``CASES``),
``measure``, ``isolation``, ``report`` (table, JSON) and ``main`` (``run``).

Contenders (peers are imported only when installed; ``pip install tracebus[bench]``):

- ``hand-written``: the 10-line dict-of-handler-lists dispatcher (``DictDispatcher``) or, for
  the store and reporter cases, a dict store behind a lock with dataclass events;
- ``pyee``, ``blinker``, ``aiopubsub``, ``reactivex``: each used at its fastest (prebuilt
  keys, signals held by the publisher, handlers connected strongly);
- stdlib baselines: ``asyncio.Queue`` to a consumer task, ``queue.SimpleQueue``/``queue.Queue``
  between threads, and *floors* (what the interpreter alone costs, e.g. calling 10 handlers
  from a Python loop). Floors are shown and used by goals but never count as "best peer".

Usage::

    tracebus bench                      # every case, full size (about 2 minutes)
    tracebus bench --quick --cases a,c  # smaller inputs, fewer repeats
    tracebus bench --json               # machine-readable results

or from Python: ``tracebus.bench.run(["--quick"])``.
"""

from .cases import CASES
from .framework import Case, Contender, Goal, Result, Trial
from .main import run
from .measure import measure_case, ratio
from .peers import DictDispatcher

__all__ = [
    "CASES",
    "Case",
    "Contender",
    "DictDispatcher",
    "Goal",
    "Result",
    "Trial",
    "measure_case",
    "ratio",
    "run",
]
