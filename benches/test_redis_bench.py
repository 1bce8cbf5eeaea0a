"""The Redis Streams bridge against raw redis-py, on one ``redis-server`` started for the run
(``tests/redis_support.RedisServer``: loopback, no persistence)::

    python -m pytest benches/test_redis_bench.py --benchmark-only

- ``raw XADD (redis-py pipeline)``: the entries the bridge writes — the events' JSON
  (``tracebus.codec``) under ``e`` and a node id under ``o`` — appended with one pipelined
  ``XADD`` per event through redis-py, ``BATCH`` per round trip (the bridge's batch size).
  Encoded before timing: the floor for getting those bytes into the stream.
- ``bridge end to end``: process A ``bus.publish``es N events with a ``RedisStreamBridge``
  attached; this process's bridge reads them and publishes them on its bus; timed from the
  moment A is told to start until this process's handler has seen all N.

Every round checks the count (the stream's length; the handler's count and the bridge's
``received``). ``extra_info`` has events/s; the end-to-end test also has the ratio to the
raw figure of the same run (goal of issue 7: >= 0.75), which it prints.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracebus import EventBus, RedisStreamBridge, encode_event

redis = pytest.importorskip("redis")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redis_support import RedisServer  # noqa: E402  (tests/ is not a package)
from test_eventstore_bench import tracebus_events  # noqa: E402

BATCH = 500  # the bridge's default batch_size
GOAL = 0.75
_MEDIANS: dict[str, float] = {}  # events/s of this run, by test


def n_events(quick: bool) -> int:
    return 10_000 if quick else 50_000


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


class Streams:
    """A fresh stream for every round; the previous round's is deleted."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.i = 0

    def next(self) -> str:
        if self.i:
            self.client.delete(f"{self.prefix}{self.i}")
        self.i += 1
        return f"{self.prefix}{self.i}"


def record(benchmark: Any, name: str, n: int) -> float:
    eps = n / benchmark.stats.stats.median
    _MEDIANS[name] = eps
    benchmark.extra_info.update(events=n, batch=BATCH, events_per_s=round(eps))
    return eps


def test_raw_xadd_pipeline(benchmark: Any, server: RedisServer, bench_quick: bool) -> None:
    n = n_events(bench_quick)
    benchmark.group = f"redis: {n} events into a stream (batches of {BATCH})"
    client = redis.Redis.from_url(server.url, decode_responses=True)
    fields = [{"e": encode_event(e), "o": "bench-raw"} for e in tracebus_events(n)]
    streams = Streams(client, "raw")
    state: dict[str, str] = {}

    def setup() -> None:
        state["stream"] = streams.next()

    def timed() -> None:
        stream = state["stream"]
        for i in range(0, n, BATCH):
            pipe = client.pipeline(transaction=False)
            for f in fields[i : i + BATCH]:
                pipe.xadd(stream, f)  # type: ignore[arg-type]
            pipe.execute()

    counts: list[int] = []

    def check() -> None:
        counts.append(int(client.xlen(state["stream"])))

    try:
        benchmark.pedantic(
            timed, setup=setup, teardown=check, rounds=3 if bench_quick else 9, warmup_rounds=1
        )
    finally:
        streams.next()
        client.close()
    assert counts and all(c == n for c in counts), counts
    record(benchmark, "raw", n)


# Process A of the end-to-end test: this file run as a script.
#   python benches/test_redis_bench.py URL N
# For every stream name read from stdin: builds N events, starts a bridge to that stream,
# prints "ready", waits for "go", publishes the events one by one, flushes, prints
# "done SENT", stops the bridge.


def publisher(url: str, n: int) -> None:
    for line in sys.stdin:
        stream = line.strip()
        bus = EventBus(history_size=0)
        events = tracebus_events(n)
        bridge = RedisStreamBridge(bus, url, stream, batch_size=BATCH).start()
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            break
        publish = bus.publish
        for e in events:
            publish(e)
        flushed = bridge.flush(timeout=120)
        bridge.stop()
        bus.close()
        print(f"done {bridge.metrics()['sent'] if flushed else -1}", flush=True)


def test_bridge_end_to_end(
    benchmark: Any, server: RedisServer, bench_quick: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    n = n_events(bench_quick)
    benchmark.group = f"redis: {n} events into a stream (batches of {BATCH})"
    client = redis.Redis.from_url(server.url)
    streams = Streams(client, "e2e")
    proc = subprocess.Popen(
        [sys.executable, __file__, server.url, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    state: dict[str, Any] = {}
    results: list[tuple[int, int, int, str]] = []

    def setup() -> None:
        stream = streams.next()
        stdin.write(stream + "\n")
        assert stdout.readline().strip() == "ready"
        bus = EventBus(history_size=0)
        done = threading.Event()
        seen = [0]

        def handler(event: Any) -> None:
            seen[0] += 1
            if seen[0] == n:
                done.set()

        bus.subscribe(None, handler)
        state.update(bus=bus, done=done, seen=seen)
        state["bridge"] = RedisStreamBridge(bus, server.url, stream, batch_size=BATCH).start()

    def timed() -> None:
        stdin.write("go\n")
        if not state["done"].wait(120):
            raise AssertionError(f"only {state['seen'][0]} of {n} events arrived in 120 s")

    def check() -> None:
        answer = stdout.readline().strip()
        bridge = state["bridge"]
        bridge.stop()
        state["bus"].close()
        results.append((state["seen"][0], bridge.metrics()["received"], n, answer))

    try:
        benchmark.pedantic(
            timed, setup=setup, teardown=check, rounds=3 if bench_quick else 9, warmup_rounds=1
        )
    finally:
        stdin.close()  # the publisher ends at end of input
        proc.wait(60)
        stdout.close()
        streams.next()
        client.close()
    assert results and all(r == (n, n, n, f"done {n}") for r in results), results
    eps = record(benchmark, "e2e", n)
    raw = _MEDIANS.get("raw")
    if raw is None:
        return  # the raw test did not run (e.g. -k): no ratio
    ratio = eps / raw
    benchmark.extra_info.update(raw_xadd_events_per_s=round(raw), ratio_to_raw_xadd=ratio)
    with capsys.disabled():
        print(
            f"\nredis, {n} events, medians: raw pipelined XADD {raw:,.0f} events/s; "
            f"bridge end to end (process A publish -> process B handler) {eps:,.0f} events/s; "
            f"ratio {ratio:.2f} (goal >= {GOAL})"
        )


if __name__ == "__main__":
    publisher(sys.argv[1], int(sys.argv[2]))
