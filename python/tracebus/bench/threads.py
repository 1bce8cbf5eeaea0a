"""Case (g): a publisher thread, a channel (or queue) and a consumer thread."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..bus import EventBus
from .framework import Trial
from .inputs import _Topics

_STAMP = 64  # one latency sample every 64 events


def _percentiles(samples: list[int]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)

    def at(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0

    return {
        "p50_latency_us": at(0.50),
        "p99_latency_us": at(0.99),
        "latency_samples": float(len(s)),
    }


def _threaded(
    n: int,
    events: list[Any],
    publish: Callable[[Any], object],
    consume: Callable[[int, list[int], list[int]], int],
    close: Callable[[], object] = lambda: None,
) -> Trial:
    """A publisher thread publishing `events` one by one and a consumer thread; the
    publisher stamps every 64th event's publish time, the consumer its arrival time."""
    latencies: list[int] = []

    def run() -> int:
        stamps = [0] * (n // _STAMP + 1)
        got = [0]
        pc = time.perf_counter_ns

        def publisher() -> None:
            for k in range(0, n, _STAMP):
                stamps[k // _STAMP] = pc()
                for e in events[k : k + _STAMP]:
                    publish(e)

        def consumer() -> None:
            got[0] = consume(n, stamps, latencies)

        threads = [threading.Thread(target=consumer), threading.Thread(target=publisher)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return got[0]

    return Trial(n, n, run, close=close, extra=lambda: _percentiles(latencies))


def _tb_thread(shared: _Topics, n: int) -> Trial:
    bus = EventBus()
    ch = bus.subscribe_channel(None, buffer_size=8192, strategy="block")
    recv, drain = ch.recv, ch.drain

    def consume(total: int, stamps: list[int], lat: list[int]) -> int:
        got = 0
        pc = time.perf_counter_ns
        while got < total:
            try:
                recv(timeout=10.0)
            except TimeoutError:
                break
            m = 1 + len(drain())
            t = pc()
            i = -(-got // _STAMP) * _STAMP
            while i < got + m:
                lat.append(t - stamps[i // _STAMP])
                i += _STAMP
            got += m
        return got

    return _threaded(n, shared.events[:n], bus.publish, consume, close=bus.close)


def _queue_thread(make: Callable[[], Any]) -> Callable[[_Topics, int], Trial]:
    def setup(shared: _Topics, n: int) -> Trial:
        q = make()
        get = q.get

        def consume(total: int, stamps: list[int], lat: list[int]) -> int:
            got = 0
            pc = time.perf_counter_ns
            while got < total:
                try:
                    get(timeout=10.0)
                except queue.Empty:
                    break
                if got % _STAMP == 0:
                    lat.append(pc() - stamps[got // _STAMP])
                got += 1
            return got

        return _threaded(n, shared.events[:n], q.put, consume)

    return setup
