"""The bridge at its edges (issue 14), against a real ``redis-server``: hostile entries are
skipped one by one (counted, logged with their id, acknowledged, optionally dead-lettered)
and never stop the reader; one unencodable event is skipped and the rest of its batch is
sent; entries trimmed before a slow reader read them are counted; ``connect_timeout``
bounds ``start`` against a server that never answers."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis_support import RedisServer, require_redis_server
from tb_support import wait_until

import tracebus as tb
from tracebus import BridgeError, RedisStreamBridge

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    """A client that writes bytes as they are (no decoding)."""
    c = redis.Redis.from_url(server.url)
    yield c
    c.close()


def _good(i: int) -> bytes:
    return tb.encode_event(tb.SystemEvent("peer", "startup", str(i))).encode()


HOSTILE: list[bytes] = [
    b'{"class": "tracebus:Event", "args": ["config.change", "s\xff"], "kwargs": {}}',  # not UTF-8
    b"[" * 1000 + b"]" * 1000,  # RecursionError before
    json.dumps(
        {
            "class": "tracebus:SystemEvent",
            "args": ["c", "config_change", "d"],
            "kwargs": {},
            "state": {"x": 1},  # AttributeError before
        }
    ).encode(),
]
IMPORTS = json.dumps(
    {"class": "unittest.__main__:X", "args": ["config.change", "evil"], "kwargs": {}}
).encode()


def _fill(raw: redis.Redis, stream: str, n: int) -> None:
    """Hostile entries first, then ``n`` good ones, one batch worth."""
    for text in [*HOSTILE, IMPORTS]:
        raw.xadd(stream, {"e": text, "o": b"peer"})
    for i in range(n):
        raw.xadd(stream, {"e": _good(i), "o": b"peer"})


@pytest.mark.parametrize("group", [None, "g"])
def test_hostile_entries_are_skipped_and_the_rest_of_the_batch_delivered(
    server: RedisServer,
    stream: str,
    raw: redis.Redis,
    group: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = set(sys.modules)
    _fill(raw, stream, 100)
    bus = tb.EventBus()
    got: list[tb.Event] = []
    bus.subscribe(None, got.append)
    bridge = RedisStreamBridge(
        bus, server.url, stream, group=group, start_id="0", dead_letter=True, outbound=False
    )
    with bridge:
        assert wait_until(lambda: len(got) >= 101)
        time.sleep(0.3)  # a reader stuck on the batch would re-read it meanwhile
        m = bridge.metrics()
    assert m["decode_errors"] == len(HOSTILE)
    assert m["received"] == 101 and len(got) == 101
    assert sum(isinstance(e, tb.UnknownEvent) for e in got) == 1
    assert {e.details for e in got if isinstance(e, tb.SystemEvent)} == {str(i) for i in range(100)}
    assert "unittest.__main__" not in set(sys.modules) - before
    # Each bad entry logged once, with its id.
    ids = [eid.decode() for eid, _ in raw.xrange(stream, count=len(HOSTILE))]
    for eid in ids:
        assert sum(eid in r.getMessage() for r in caplog.records) == 1
    # Copied to the dead-letter stream with the reason.
    dead = raw.xrange(f"{stream}:dead")
    assert [f[b"id"].decode() for _, f in dead] == ids
    assert all(f[b"reason"] and b"e" in f for _, f in dead)
    assert m["dead_lettered"] == len(HOSTILE)
    if group is not None:
        assert raw.xpending(stream, group)["pending"] == 0  # all acknowledged
    bus.close()


def test_one_unencodable_event_is_skipped_and_the_rest_sent(
    server: RedisServer, stream: str, raw: redis.Redis
) -> None:
    class_ = tb.UserActionEvent
    bus = tb.EventBus()
    with RedisStreamBridge(bus, server.url, stream, inbound=False, batch_size=500) as bridge:
        events: list[tb.Event] = [
            class_("restart", "MCPServer", f"m-{i}", source="x") for i in range(300)
        ]
        bad = Loop("config.change", "x")
        bad.__dict__["me"] = bad.__dict__  # self-referencing: RecursionError when encoded
        events.insert(150, bad)
        bus.publish_many(events)
        assert bridge.flush(10)
        m = bridge.metrics()
    assert m["sent"] == 300 and m["encode_errors"] == 1 and m["unsent"] == 0
    assert raw.xlen(stream) == 300
    bus.close()


class Loop(tb.Event):
    """An event subclass whose state can be made unencodable."""


def test_entries_trimmed_before_a_slow_reader_read_them_are_counted(
    server: RedisServer, stream: str, raw: redis.Redis
) -> None:
    bus = tb.EventBus()
    release = threading.Event()
    got: list[tb.Event] = []

    def slow(e: tb.Event) -> None:
        release.wait(30)
        got.append(e)

    bus.subscribe(None, slow)
    n = 2000
    with RedisStreamBridge(bus, server.url, stream, outbound=False, batch_size=50) as bridge:
        raw.xadd(stream, {"e": _good(-1), "o": b"peer"})
        assert wait_until(lambda: bridge.metrics()["buffered"] == 0 and raw.xlen(stream) == 1)
        time.sleep(0.2)  # the reader is now inside the handler
        for i in range(n):
            raw.xadd(stream, {"e": _good(i), "o": b"peer"}, maxlen=100, approximate=False)
        release.set()
        assert wait_until(
            lambda: bridge.metrics()["received"] + bridge.metrics()["trimmed"] >= n + 1
        )
        time.sleep(0.2)
        m = bridge.metrics()
    assert m["trimmed"] > 0
    assert m["received"] + m["trimmed"] == n + 1
    assert m["received"] == len(got)
    bus.close()


def test_start_honours_connect_timeout_against_a_server_that_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (the kernel does), never answers
        port = listener.getsockname()[1]
        bus = tb.EventBus()
        bridge = RedisStreamBridge(bus, f"redis://127.0.0.1:{port}/0", connect_timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(BridgeError, match="Timeout"):
            bridge.start()
        assert time.monotonic() - t0 < 5.0  # not the 10 s reading timeout
        bus.close()


def test_dead_letter_is_validated() -> None:
    with pytest.raises(TypeError, match="dead_letter must be a bool"):
        RedisStreamBridge(tb.EventBus(), dead_letter="yes")  # type: ignore[arg-type]


def test_stop_counts_the_event_a_blocked_publisher_had_in_flight() -> None:
    require_redis_server()
    bus = tb.EventBus()
    with RedisServer() as srv:
        bridge = RedisStreamBridge(bus, srv.url, "s", buffer_size=2, batch_size=1).start()
        srv.stop()
        published: list[int] = []

        def publish() -> None:
            for i in range(5):
                bus.publish(tb.SystemEvent("c", "startup", str(i)))
                published.append(i)
                if not bridge.running:
                    return

        t = threading.Thread(target=publish)
        t.start()
        assert wait_until(lambda: bridge.metrics()["buffered"] == 2)
        time.sleep(0.2)  # the publisher is blocked on the full channel
        bridge.stop(timeout=0.3)
        t.join(10)
        assert not t.is_alive()
    m = bridge.metrics()
    # Every event published while the bridge ran is sent or counted unsent, the one the
    # blocked publisher had in flight included.
    assert m["sent"] == 0 and m["unsent"] == len(published)
    bus.close()
