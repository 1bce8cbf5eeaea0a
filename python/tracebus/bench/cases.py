"""``CASES``: every case of ``tracebus bench``, its input, contenders and goals."""

from __future__ import annotations

import queue

from .asyncio_fanout import (
    _aiopubsub_async,
    _blinker_async,
    _dict_async,
    _pyee_async,
    _queue_async,
    _tb_async,
)
from .batches import (
    _aiopubsub_batches,
    _blinker_batches,
    _dict_batches,
    _prepare_batches,
    _pyee_batches,
    _rx_batches,
    _tb_batches,
)
from .creation import _dc_create, _tb_create
from .fanout import _C_REF, _sync_peers, _tb_filtered
from .framework import Case, Contender, Goal
from .inputs import _prepare_fanout, _prepare_filtered
from .otel import _tb_traced
from .reporter import _prepare_updates, _py_report, _tb_report
from .routing import (
    _CATCH_REF,
    _CHURN_REF,
    _CORR_REF,
    _SOURCES_REF,
    _churn_contenders,
    _correlation,
    _keyed_peers,
    _no_subscribers,
    _prepare_correlations,
    _prepare_severity,
    _prepare_sources,
    _severity_error,
    _source_and_type,
    _with_catch_all,
)
from .store import _WATCHERS, _prepare_one_label, _py_store, _tb_store, _tb_watched
from .threads import _queue_thread, _tb_thread


def _none(n: int) -> None:
    return None


CASES: tuple[Case, ...] = (
    Case(
        "a",
        "(a) prebuilt event -> 1 sync handler",
        "events/s",
        300_000,
        _prepare_fanout(1),
        _sync_peers(),
        (Goal(1.0, "hand-written"),),
        note="tracebus: default EventBus() (ids, counters, history on), filter_by_type",
    ),
    Case(
        "b",
        "(b) 10 sync handlers all receive",
        "events/s",
        100_000,
        _prepare_fanout(10),
        _sync_peers(floor=True),
        (Goal(0.85, "floor: Python loop"),),
    ),
    Case(
        "c",
        "(c) 100 filtered subscribers, 1 matches",
        "events/s",
        300_000,
        _prepare_filtered(100, 100, "bench.c"),
        _sync_peers(slow=20),
        (Goal(1.0, "hand-written"),),
        note="each subscriber filter_by_type of its own registered custom type",
        isolated=True,
    ),
    Case(
        "c'",
        "(c') 10,000 filtered subscribers, 1 matches",
        "events/s",
        300_000,
        _prepare_filtered(10_000, 800, "bench.cx"),
        _sync_peers(slow=1000, reference=True),
        (Goal(0.8, _C_REF),),
        note="9,999 non-matching subscribers over 799 other custom types (registry max 1024); "
        f"'{_C_REF}' is case (c) re-run here, side by side",
        isolated=True,
    ),
    Case(
        "d",
        "(d) asyncio: 1 async handler",
        "events/s",
        100_000,
        _prepare_fanout(1),
        (
            Contender("tracebus", _tb_async, kind="tracebus"),
            Contender("asyncio.Queue", _queue_async),
            Contender("blinker", _blinker_async, requires="blinker", n_div=2),
            Contender("hand-written", _dict_async),
            Contender("pyee", _pyee_async, requires="pyee", n_div=10),
            Contender("aiopubsub", _aiopubsub_async, requires="aiopubsub", n_div=10),
        ),
        (Goal(1.0, "asyncio.Queue"), Goal(2.0, "blinker")),
        note="hand-written awaits handlers inline (publisher waits for them); tracebus, Queue, "
        "pyee and aiopubsub hand events to the loop",
    ),
    Case(
        "e",
        "(e) adapter.report: store + event + 1 handler",
        "updates/s",
        200_000,
        _prepare_updates,
        (
            Contender("tracebus", _tb_report, kind="tracebus"),
            Contender("hand-written", _py_report),
        ),
        (Goal(1_000_000),),
        note="100 labels alternating Running/Stopped: every update changes state",
    ),
    Case(
        "f",
        "(f) publish_many(1,000) -> channel, drain()",
        "events/s",
        1_000_000,
        _prepare_batches,
        (
            Contender("tracebus", _tb_batches, kind="tracebus"),
            Contender("hand-written", _dict_batches),
            Contender("pyee", _pyee_batches, requires="pyee", n_div=4),
            Contender("blinker", _blinker_batches, requires="blinker", n_div=8),
            Contender("aiopubsub", _aiopubsub_batches, requires="aiopubsub", n_div=2),
            Contender("reactivex", _rx_batches, requires="reactivex", n_div=4),
        ),
        (Goal(10_000_000),),
        note="peers: handler appends to a list, drained by copy+clear",
    ),
    Case(
        "g",
        "(g) publisher thread -> channel -> consumer",
        "events/s",
        300_000,
        _prepare_fanout(1),
        (
            Contender("tracebus", _tb_thread, kind="tracebus"),
            Contender("queue.SimpleQueue", _queue_thread(queue.SimpleQueue)),
            Contender("queue.Queue(8192)", _queue_thread(lambda: queue.Queue(8192)), n_div=2),
        ),
        (Goal(2_000_000),),
        note="tracebus: publish() per event into a block-strategy channel (8192); "
        "the consumer recv()s then drain()s",
    ),
    Case(
        "h",
        "(h) ServiceStateEvent(...) with fresh ids",
        "events/s",
        300_000,
        _none,
        (
            Contender("tracebus", _tb_create, kind="tracebus"),
            Contender("dataclass+uuid4", _dc_create("uuid4"), n_div=4),
            Contender("dataclass+counter", _dc_create("counter")),
        ),
        (Goal(2_000_000),),
        note="ServiceStateEvent(type, source, old, new): new event id and correlation id each; "
        "made in blocks of 10,000 kept until the next block",
    ),
    Case(
        "i",
        "(i) 100 subscribers source & type, 1 matches",
        "events/s",
        300_000,
        _prepare_sources(100),
        _keyed_peers(_source_and_type, None),
        (Goal(1.0, "hand-written"),),
        note="each subscriber filter_by_source(pf-i) & filter_by_type(SERVICE_RUNNING); "
        "hand-written: a dict keyed by the (type, source) topic",
    ),
    Case(
        "i'",
        "(i') 10,000 subscribers source & type, 1 matches",
        "events/s",
        300_000,
        _prepare_sources(10_000),
        _keyed_peers(_source_and_type, (100, _SOURCES_REF)),
        (Goal(1.0, "hand-written"), Goal(0.8, _SOURCES_REF)),
        note=f"'{_SOURCES_REF}' is case (i) re-run here, side by side",
    ),
    Case(
        "j",
        "(j) 1,000 correlation waiters, 1 matches",
        "events/s",
        300_000,
        _prepare_correlations(1_000),
        _keyed_peers(_correlation, None),
        (Goal(1.0, "hand-written"),),
        note="one filter_by_correlation(c_i) subscriber per in-flight operation; "
        "hand-written: a dict keyed by correlation id",
    ),
    Case(
        "j'",
        "(j') 10,000 correlation waiters, 1 matches",
        "events/s",
        300_000,
        _prepare_correlations(10_000),
        _keyed_peers(_correlation, (1_000, _CORR_REF)),
        (Goal(1.0, "hand-written"), Goal(0.8, _CORR_REF)),
        note=f"'{_CORR_REF}' is case (j) re-run here, side by side",
    ),
    Case(
        "k",
        "(k) 1,000 severity-ERROR subscribers, INFO event",
        "events/s",
        300_000,
        _prepare_severity(1_000),
        (
            Contender("tracebus", _tb_filtered(_severity_error), kind="tracebus"),
            Contender("tracebus, no subscribers", _no_subscribers, kind="reference"),
        ),
        (Goal(0.8, "tracebus, no subscribers"),),
        note="none matches: the publish rate should be that of a bus without subscribers",
    ),
    Case(
        "l",
        "(l) 1 catch-all + 100 type subscribers",
        "events/s",
        300_000,
        _prepare_filtered(100, 100, "bench.l"),
        (
            Contender("tracebus", _with_catch_all(True), kind="tracebus"),
            Contender(_CATCH_REF, _with_catch_all(False), kind="reference"),
        ),
        (Goal(0.9, _CATCH_REF),),
        note="event of one type, 1 type subscriber matches; reference: the same 100 plus a "
        "second subscriber of that type instead of the catch-all (the same handler calls)",
        isolated=True,
    ),
    Case(
        "m",
        "(m) subscribe + unsubscribe 10,000 filtered",
        "ops/s",
        20_000,
        _none,
        _churn_contenders(inside=False),
        (Goal(0.8, _CHURN_REF),),
        note="source & type filters; one op = one subscribe or one unsubscribe; "
        f"'{_CHURN_REF}': 1,000 at a time, repeated to the same number of ops",
    ),
    Case(
        "m'",
        "(m') subscribe + unsubscribe 10,000 from a handler",
        "ops/s",
        20_000,
        _none,
        _churn_contenders(inside=True),
        (Goal(0.8, _CHURN_REF),),
        note="as (m), all from inside a handler while a publish is in flight",
    ),
    Case(
        "store",
        "store: set_service_state + get_service_state",
        "ops/s",
        200_000,
        _prepare_updates,
        (
            Contender("tracebus", _tb_store, kind="tracebus"),
            Contender("hand-written", _py_store(locked=True)),
            Contender("floor: bare dict", _py_store(locked=False), kind="floor"),
        ),
        (Goal(2_000_000),),
        note="one set + one get = 2 ops; hand-written: dict behind a threading.Lock",
    ),
    Case(
        "store-watchers",
        "store: 10,000 label watchers, one label written",
        "updates/s",
        200_000,
        _prepare_one_label,
        (
            Contender("tracebus", _tb_watched(_WATCHERS), kind="tracebus"),
            Contender("1 watcher", _tb_watched(1), kind="reference"),
        ),
        (Goal(0.8, "1 watcher"),),
        note="set_service_state on a label with one watcher; the 9,999 other watchers watch "
        "other labels and must not cost the write anything",
    ),
    Case(
        "otel",
        "otel: 1 sync handler, bus instrumented with tracebus.otel",
        "events/s",
        50_000,
        _prepare_fanout(1),
        (
            Contender("tracebus", _tb_traced(True), kind="tracebus", requires="opentelemetry.sdk"),
            Contender("not instrumented", _tb_traced(False), kind="reference"),
        ),
        (),
        note="the cost of a span per handled event (SDK TracerProvider, SimpleSpanProcessor, "
        "an exporter that discards): report the ratio, no goal",
    ),
)

_BY_KEY = {c.key: c for c in CASES}
