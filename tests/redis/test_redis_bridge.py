"""RedisStreamBridge against a real ``redis-server`` (started by the tests on a free loopback
port with a temporary directory; see ``redis_support.py``), with separate processes
(``redis_peer.py``) where the behaviour is between processes.

``redis-server`` missing fails these tests (CI installs it); ``TRACEBUS_NO_REDIS=1`` skips
them instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_support import RedisServer, require_redis_server

import tracebus as tb
from tracebus import BridgeError, RedisStreamBridge

PEER = str(Path(__file__).parents[1] / "redis_peer.py")
pytestmark = pytest.mark.timeout(60)


def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def _action(name: str, i: int) -> tb.UserActionEvent:
    return tb.UserActionEvent("restart", tb.ServiceType.MCP_SERVER, f"{name}-{i}", source=name)


def _fill_for_workers(url: str, stream: str, client: redis.Redis, n: int) -> list[tb.Event]:
    """Creates the group ``workers`` at the start of ``stream`` and appends ``n`` actions
    to it through a send-only bridge in this process; returns them."""
    bus = tb.EventBus()
    with RedisStreamBridge(bus, url, stream, node_id="producer", inbound=False) as producer:
        client.xgroup_create(stream, "workers", id="0", mkstream=True)
        events: list[tb.Event] = [_action("p", i) for i in range(n)]
        bus.publish_many(events)
        assert producer.flush(20)
    bus.close()
    assert client.xlen(stream) == n
    return events


class Peer:
    """A ``redis_peer.py`` process."""

    def __init__(self, url: str, stream: str, name: str, *args: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, PEER, url, stream, name, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def line(self) -> str:
        text = self.stdout.readline()
        assert text, f"peer {self.name} exited (status {self.proc.poll()})"
        return text.rstrip("\n")

    def ready(self) -> None:
        assert self.line() == "ready"

    def go(self) -> None:
        self.stdin.write("go\n")
        self.stdin.flush()

    def result(self) -> dict[str, Any]:
        while True:
            text = self.line()
            if text.startswith("result "):
                out: dict[str, Any] = json.loads(text[len("result ") :])
                assert self.proc.wait(30) == 0
                return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.stdin.close()
        self.stdout.close()


def _run_peers(peers: list[Peer]) -> list[dict[str, Any]]:
    try:
        for p in peers:
            p.ready()
        for p in peers:
            p.go()
        return [p.result() for p in peers]
    finally:
        for p in peers:
            p.kill()


# -- between processes --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["xread", "group"])
def test_two_processes_exchange_events_exactly_once(
    server: RedisServer, stream: str, client: redis.Redis, mode: str
) -> None:
    n = 300
    peers = [
        Peer(
            server.url,
            stream,
            name,
            "--publish",
            str(n),
            "--expect-remote",
            str(n),
            *(["--group", f"group-{name}"] if mode == "group" else []),
        )
        for name in ("a", "b")
    ]
    results = _run_peers(peers)
    for r in results:
        assert r["flushed"] and r["complete"]
        m = r["metrics"]
        assert m["sent"] == n
        assert m["received"] == n
        assert r["remote"] == n
        # Each process saw its own n events and the other's n, each exactly once.
        assert len(r["seen"]) == 2 * n
        assert len(set(r["seen"])) == 2 * n
        assert m["errors"] == 0 and m["deduplicated"] == 0
    # Both saw the same 2n events; the stream holds exactly those (nothing echoed back).
    assert set(results[0]["seen"]) == set(results[1]["seen"])
    assert client.xlen(stream) == 2 * n
    entries = client.xrange(stream)
    assert Counter(f["o"] for _, f in entries) == {"a": n, "b": n}
    assert {tb.decode_event(f["e"]).event_id for _, f in entries} == set(results[0]["seen"])
    if mode == "group":
        for r in results:
            # Own entries are acknowledged too: all 2n entries of each group.
            assert r["metrics"]["acknowledged"] == 2 * n
        for g in ("group-a", "group-b"):
            assert client.xpending(stream, g)["pending"] == 0


def test_three_processes_exchange_events_exactly_once(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n = 200
    names = ("a", "b", "c")
    peers = [
        Peer(server.url, stream, name, "--publish", str(n), "--expect-remote", str(2 * n))
        for name in names
    ]
    results = _run_peers(peers)
    everything = set(results[0]["seen"])
    assert len(everything) == 3 * n
    for r in results:
        assert r["flushed"] and r["complete"]
        assert len(r["seen"]) == 3 * n and set(r["seen"]) == everything
        assert r["remote"] == 2 * n
        m = r["metrics"]
        assert (m["sent"], m["received"], m["own_skipped"]) == (n, 2 * n, n)
        assert m["echo_skipped"] == 2 * n  # the 2n received events, not sent back
        assert m["errors"] == 0 and m["deduplicated"] == 0
    assert client.xlen(stream) == 3 * n


def test_state_converges_across_processes(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n = 60  # reports per process: 30 on labels of its own, 30 on labels all three update
    names = ("a", "b", "c")
    peers = [
        Peer(
            server.url,
            stream,
            name,
            "--states",
            "--publish",
            str(n),
            "--expect-remote",
            str(2 * n),
            "--pid-base",
            str(1000 * k),
        )
        for k, name in enumerate(names)
    ]
    results = _run_peers(peers)
    for r in results:
        assert r["flushed"] and r["complete"]
        assert r["metrics"]["received"] == 2 * n
        assert r["metrics"]["errors"] == 0
    views = [r["states"] for r in results]
    # 5 labels of each process + 3 shared labels, the same snapshots everywhere.
    assert sorted(views[0]) == sorted(
        [f"{x}-svc{i}" for x in names for i in range(5)] + ["shared-0", "shared-1", "shared-2"]
    )
    assert views[0] == views[1] == views[2]
    # The shared labels hold the newest update of all three processes.
    newest = {}
    for _, f in client.xrange(stream):
        e = tb.decode_event(f["e"])
        assert isinstance(e, tb.ServiceStateEvent)
        if e.source.startswith("shared"):
            best = newest.get(e.source)
            if best is None or (e.timestamp, e.event_id) > (best.timestamp, best.event_id):
                newest[e.source] = e
    for label, e in newest.items():
        assert views[0][label]["event_id"] == e.event_id


def _kill_worker_a_after(url: str, stream: str, n: int, batch: int, handled: int) -> list[str]:
    """Runs consumer ``a`` of group ``workers`` in a peer process (expecting ``n`` events,
    reading ``batch`` at a time, 50 ms a handler call) and kills it (SIGKILL) once it
    handled ``handled`` events; returns their ids."""
    a = Peer(
        url,
        stream,
        "a",
        *("--group", "workers", "--consumer", "a", "--batch-size", str(batch)),
        *("--handler-sleep", "0.05", "--print-handled", "--expect-remote", str(n)),
    )
    try:
        a.ready()
        a.go()
        ids: list[str] = []
        while len(ids) < handled:
            text = a.line()
            if text.startswith("handled "):
                ids.append(text.split()[1])
        os.kill(a.proc.pid, signal.SIGKILL)
        assert a.proc.wait(10) == -signal.SIGKILL
    finally:
        a.kill()
    return ids


def test_consumer_killed_mid_batch_is_reclaimed_by_another(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n, batch = 200, 50
    events = _fill_for_workers(server.url, stream, client, n)

    # Consumer "a" takes a batch of 50 and handles it slowly; killed after 10 of them.
    handled_by_a = _kill_worker_a_after(server.url, stream, n, batch, 10)
    pending = client.xpending(stream, "workers")
    # The whole batch is pending for the dead consumer: none of it was acknowledged.
    assert pending["pending"] == batch
    assert pending["consumers"] == [{"name": "a", "pending": batch}]

    # Consumer "b" reads the rest and reclaims a's pending entries once idle 200 ms.
    bus = tb.EventBus()
    seen: list[str] = []
    bus.subscribe(None, lambda e: seen.append(e.event_id))
    with RedisStreamBridge(
        bus, server.url, stream, group="workers", consumer="b", claim_min_idle_ms=200
    ) as b:
        assert _wait(lambda: len(seen) >= n)
        time.sleep(0.3)  # any extra copy would arrive now
        m = b.metrics()
    assert Counter(seen) == Counter(e.event_id for e in events)  # each exactly once
    assert set(handled_by_a) <= set(seen)  # at-least-once: those 10 were delivered twice
    assert m["reclaimed"] == batch
    assert m["received"] == n and m["acknowledged"] == n
    assert m["errors"] == 0 and m["deduplicated"] == 0
    assert client.xpending(stream, "workers")["pending"] == 0
    bus.close()


def test_restarted_consumer_gets_its_own_pending_entries_first(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n, batch = 100, 50
    events = _fill_for_workers(server.url, stream, client, n)
    _kill_worker_a_after(server.url, stream, n, batch, 1)
    assert client.xpending(stream, "workers")["pending"] == batch
    # The same consumer name again, reclaiming nothing from others (an idle time of a
    # minute): its own pending entries come back first, then the rest.
    bus = tb.EventBus()
    seen: list[str] = []
    bus.subscribe(None, lambda e: seen.append(e.event_id))
    with RedisStreamBridge(
        bus, server.url, stream, group="workers", consumer="a", claim_min_idle_ms=60_000
    ) as again:
        assert _wait(lambda: len(seen) >= n)
        time.sleep(0.2)
        m = again.metrics()
    assert seen == [e.event_id for e in events]  # in order, each once
    assert (m["received"], m["acknowledged"], m["reclaimed"]) == (n, n, 0)
    assert client.xpending(stream, "workers")["pending"] == 0
    bus.close()


def test_redis_restart_with_aof_loses_no_acknowledged_event() -> None:
    require_redis_server()
    n = 3000
    stream = "restart"
    with RedisServer(aof=True) as srv:
        receiver = Peer(
            srv.url,
            stream,
            "rx",
            "--group",
            "rx",
            "--expect-remote",
            str(n),
            "--settle",
            "0.5",
            "--timeout",
            "40",
        )
        try:
            receiver.ready()
            receiver.go()
            bus = tb.EventBus()
            bridge = RedisStreamBridge(bus, srv.url, stream, batch_size=50).start()
            events = [_action("tx", i) for i in range(n)]
            # "Acknowledged": XADD returned, i.e. flush() came back True after publishing.
            acknowledged: list[str] = []
            halfway = threading.Event()

            def send() -> None:
                for i in range(0, n, 50):
                    bus.publish_many(events[i : i + 50])
                    if i % 500 == 0 and bridge.flush(1.0):
                        acknowledged[:] = [e.event_id for e in events[: i + 50]]
                    if i >= n // 3:
                        halfway.set()
                    time.sleep(0.005)

            sender = threading.Thread(target=send)
            sender.start()
            assert halfway.wait(20)
            srv.restart(kill=True, down_for=0.3)  # SIGKILL: only fsynced writes survive
            sender.join(30)
            assert bridge.flush(30)
            m = bridge.metrics()
            bridge.stop()
            bus.close()
            result = receiver.result()
        finally:
            receiver.kill()
        c = redis.Redis.from_url(srv.url, decode_responses=True)
        stored = [tb.decode_event(f["e"]).event_id for _, f in c.xrange(stream)]
        pending = c.xpending(stream, "rx")["pending"]
        c.close()
    all_ids = [e.event_id for e in events]
    assert acknowledged  # the sender saw some of its events acknowledged before the restart
    assert set(acknowledged) <= set(stored)
    # Every event is in the stream (a batch sent again after an unconfirmed XADD may be
    # there twice); the receiver got each exactly once and acknowledged everything.
    assert set(stored) == set(all_ids)
    assert m["connection_errors"] >= 1 and m["reconnects"] >= 1  # the restart hit traffic
    assert m["sent"] == len(stored) and m["unsent"] == 0
    assert result["complete"] and result["remote"] == n
    assert Counter(result["seen"]) == Counter(all_ids)
    assert result["metrics"]["received"] == n
    # Copies in the stream and re-read pending entries were dropped by event id.
    assert result["metrics"]["deduplicated"] >= len(stored) - n
    assert pending == 0


def test_replayed_entries_are_deduplicated(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n = 100
    tx_bus, rx_bus = tb.EventBus(), tb.EventBus()
    seen: list[str] = []
    rx_bus.subscribe(None, lambda e: seen.append(e.event_id))
    with (
        RedisStreamBridge(tx_bus, server.url, stream) as tx,
        RedisStreamBridge(rx_bus, server.url, stream) as rx,
    ):
        tx_bus.publish_many([_action("tx", i) for i in range(n)])
        assert tx.flush(10)
        assert _wait(lambda: len(seen) == n)
        # Replay: the same entries appended again (as a tool re-feeding a stream would),
        # once with the original origin and once under another.
        for origin in (None, "replayer"):
            for _, fields in client.xrange(stream, count=n):
                client.xadd(stream, {"e": fields["e"], "o": origin or fields["o"]})
        assert _wait(lambda: rx.metrics()["deduplicated"] == 2 * n)
        time.sleep(0.2)
        m = rx.metrics()
    assert len(seen) == n and len(set(seen)) == n
    assert (m["received"], m["deduplicated"], m["errors"]) == (n, 2 * n, 0)
    assert client.xlen(stream) == 3 * n
    tx_bus.close()
    rx_bus.close()


def test_no_echo_loop_between_bridges_in_one_process(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    # Handlers that publish a reply to each remote event: replies cross once, and nothing
    # received is sent back, so the stream holds exactly the published events.
    n = 50
    buses = [tb.EventBus(), tb.EventBus()]
    seen: list[list[tb.Event]] = [[], []]
    bridges = [
        RedisStreamBridge(b, server.url, stream, node_id=f"node{k}") for k, b in enumerate(buses)
    ]

    def make_handler(k: int) -> Callable[[tb.Event], None]:
        def handler(e: tb.Event) -> None:
            seen[k].append(e)
            if bridges[k].origin(e) is not None and isinstance(e, tb.UserActionEvent):
                buses[k].publish(tb.SystemEvent(f"reply{k}", "config_change", e.event_id))

        return handler

    for k, b in enumerate(buses):
        b.subscribe(None, make_handler(k))
    with bridges[0], bridges[1]:
        actions = [[_action("a", i) for i in range(n)], [_action("b", i) for i in range(n)]]
        buses[0].publish_many(actions[0])
        buses[1].publish_many(actions[1])
        # Each side: n own + n remote actions, n own replies + n remote replies.
        assert _wait(lambda: len(seen[0]) == 4 * n and len(seen[1]) == 4 * n)
        assert bridges[0].flush(10) and bridges[1].flush(10)
        time.sleep(0.3)
        metrics = [b.metrics() for b in bridges]
    ids = [[e.event_id for e in s] for s in seen]
    assert len(ids[0]) == len(set(ids[0])) == 4 * n
    assert set(ids[0]) == set(ids[1])
    assert client.xlen(stream) == 4 * n
    for m in metrics:
        assert (m["sent"], m["received"], m["echo_skipped"]) == (2 * n, 2 * n, 2 * n)
    # A reply made in the other process joined its action's cascade: same correlation,
    # the action as parent.
    by_id = {a.event_id: a for a in actions[0]}
    replies = [e for e in seen[0] if e.source == "reply1"]
    assert len(replies) == n
    for r in replies:
        assert r.parent_id in by_id
        assert r.correlation_id == by_id[r.parent_id].correlation_id
    for b in buses:
        b.close()


# -- behaviour of one bridge --------------------------------------------------------------


def test_received_events_keep_ids_and_carry_their_origin(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    tx_bus, rx_bus = tb.EventBus(), tb.EventBus()
    got: list[tb.Event] = []
    rx_bus.subscribe(None, got.append)
    with (
        RedisStreamBridge(tx_bus, server.url, stream, node_id="sender") as tx,
        RedisStreamBridge(rx_bus, server.url, stream, filter=tb.filter_by_source("nobody")) as rx,
    ):
        with tb.correlation("user_restart"):
            sent = tb.SystemEvent("db", "error", "disk full", metadata={"disk": "/dev/sda"})
        local = _action("local", 0)
        tx_bus.publish(sent)
        rx_bus.publish(local)
        assert _wait(lambda: len(got) == 2)
        assert tx.flush(5) and rx.flush(5)
        received = got[1]
        assert received.event_id == sent.event_id
        assert received.correlation_id == sent.correlation_id
        assert received.caused_by == "user_restart"
        assert received.timestamp == sent.timestamp
        assert received.metadata == {"disk": "/dev/sda"}
        assert rx.origin(received) == "sender" and rx.origin(local) is None
        # rx's filter passes nothing: its local event was not sent.
        assert rx.metrics()["sent"] == 0
    assert client.xlen(stream) == 1
    tx_bus.close()
    rx_bus.close()


def _bridge_threads() -> Counter[str]:
    """The bridge threads running in this process, by name."""
    return Counter(t.name for t in threading.enumerate() if t.name.startswith("tracebus-redis"))


def test_send_only_bridge_sends_and_does_not_read(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n = 20
    tx_bus, other_bus = tb.EventBus(), tb.EventBus()
    got: list[tb.Event] = []
    tx_bus.subscribe(None, got.append)
    other_got: list[tb.Event] = []
    other_bus.subscribe(None, other_got.append)
    before = _bridge_threads()
    with RedisStreamBridge(other_bus, server.url, stream, node_id="other") as other:
        tx = RedisStreamBridge(tx_bus, server.url, stream, node_id="tx", inbound=False)
        with tx:
            # A writer and no reader.
            assert _bridge_threads() - before == Counter(
                {"tracebus-redis-writer": 2, "tracebus-redis-reader": 1}
            )
            own = [_action("tx", i) for i in range(n)]
            tx_bus.publish_many(own)
            assert tx.flush(10)
            # Another bridge and a plain XADD write to the stream too.
            other_bus.publish_many([_action("other", i) for i in range(n)])
            assert other.flush(10)
            client.xadd(stream, {"e": tb.encode_event(_action("raw", 0)), "o": "raw"})
            # The other bridge got its own, the send-only bridge's and the raw event (so all
            # are in the stream) ...
            assert _wait(lambda: len(other_got) == 2 * n + 1)
            time.sleep(0.3)  # (what the send-only bridge would read would arrive by now)
            m = tx.metrics()
    # ... the send-only bridge's bus only its own events, and it read nothing.
    assert [e.event_id for e in got] == [e.event_id for e in own]
    assert (m["sent"], m["received"], m["own_skipped"], m["errors"]) == (n, 0, 0, 0)
    assert client.xlen(stream) == 2 * n + 1
    tx_bus.close()
    other_bus.close()


def test_receive_only_bridge_receives_and_sends_nothing(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    n = 20
    tx_bus, rx_bus = tb.EventBus(), tb.EventBus()
    got: list[tb.Event] = []
    rx_bus.subscribe(None, got.append)
    before = _bridge_threads()
    with RedisStreamBridge(tx_bus, server.url, stream, node_id="tx", inbound=False) as tx:
        rx = RedisStreamBridge(rx_bus, server.url, stream, start_id="0", outbound=False)
        with rx:
            # A reader and no writer.
            assert _bridge_threads() - before == Counter(
                {"tracebus-redis-writer": 1, "tracebus-redis-reader": 1}
            )
            assert rx.flush(0)  # nothing to send
            sent = [_action("tx", i) for i in range(n)]
            tx_bus.publish_many(sent)
            assert tx.flush(10)
            local = [_action("local", i) for i in range(n)]
            rx_bus.publish_many(local)  # published on the receiving bus: not sent
            assert _wait(lambda: len(got) == 2 * n)
            time.sleep(0.3)  # (anything sent would be in the stream by now)
            m = rx.metrics()
            assert not rx._echo  # no writer to take received ids out again: none kept
    assert {e.event_id for e in got} == {e.event_id for e in sent + local}
    assert (m["sent"], m["batches"], m["echo_skipped"], m["buffered"]) == (0, 0, 0, 0)
    assert (m["received"], m["errors"]) == (n, 0)
    ids = [tb.decode_event(f["e"]).event_id for _, f in client.xrange(stream)]
    assert ids == [e.event_id for e in sent]
    tx_bus.close()
    rx_bus.close()


def test_dedupe_window_is_bounded_and_keeps_the_latest_ids() -> None:
    from tracebus.redis.window import _Window

    w = _Window(10)
    for i in range(1000):
        assert w.add(f"evt_{i}", "n")
        assert not w.add(f"evt_{i}", "n")  # a duplicate
        assert len(w.new) + len(w.old) <= 20
        # The latest 10 ids are always remembered, with their origin.
        assert all(w.get(f"evt_{j}") == "n" for j in range(max(0, i - 9), i + 1))
    assert w.get("evt_0") is None and w.add("evt_0", "n")  # long forgotten


def test_maxlen_trims_the_stream(server: RedisServer, stream: str, client: redis.Redis) -> None:
    bus = tb.EventBus()
    with RedisStreamBridge(bus, server.url, stream, maxlen=100, batch_size=100) as bridge:
        bus.publish_many([_action("x", i) for i in range(5000)])
        assert bridge.flush(10)
        assert bridge.metrics()["sent"] == 5000
    # Approximate trimming keeps at least maxlen and at most about a node more.
    assert 100 <= client.xlen(stream) < 1000
    bus.close()


def test_stop_while_redis_is_down_counts_unsent_events() -> None:
    require_redis_server()
    bus = tb.EventBus()
    with RedisServer() as srv:
        bridge = RedisStreamBridge(bus, srv.url, "s").start()
        srv.stop()
        bus.publish_many([_action("x", i) for i in range(10)])
        assert not bridge.flush(0.3)
        bridge.stop(timeout=0.5)
    m = bridge.metrics()
    assert m["unsent"] == 10 and m["sent"] == 0
    assert m["errors"] >= 10 + 1
    bridge.stop()  # idempotent
    bus.close()


def test_interpreter_exit_flushes_a_bridge_not_stopped(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    code = (
        "import sys, tracebus as tb\n"
        "bus = tb.EventBus()\n"
        "tb.RedisStreamBridge(bus, sys.argv[1], sys.argv[2]).start()\n"
        "bus.publish_many([tb.SystemEvent('c', 'startup', str(i)) for i in range(2000)])\n"
    )
    subprocess.run([sys.executable, "-c", code, server.url, stream], check=True, timeout=30)
    assert client.xlen(stream) == 2000


def test_bad_urls_and_unreachable_servers_give_clear_errors() -> None:
    bus = tb.EventBus()
    for url in ("http://127.0.0.1:6379", "", "redis://127.0.0.1:notaport/0", "redis:///0"):
        with pytest.raises(ValueError, match="not a Redis URL"):
            RedisStreamBridge(bus, url)
    with pytest.raises(ValueError, match="database 'abc' must be a number"):
        RedisStreamBridge(bus, "redis://127.0.0.1:6379/abc")
    with pytest.raises(TypeError, match="url must be a str"):
        RedisStreamBridge(bus, 6379)  # type: ignore[arg-type]
    # Nothing listens on port 1: refused at once, the error names the URL (no password).
    bridge = RedisStreamBridge(bus, "redis://:s3cret@127.0.0.1:1/0")
    with pytest.raises(BridgeError, match=r"redis://:\*\*\*@127.0.0.1:1/0") as info:
        bridge.start()
    assert "s3cret" not in str(info.value)
    assert not bridge.running
    bus.close()


def test_arguments_are_validated() -> None:
    bus = tb.EventBus()
    url = "redis://127.0.0.1:6379/0"
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"stream": ""}, ValueError, "stream must not be empty"),
        ({"stream": 1}, TypeError, "stream must be a str"),
        ({"filter": "x"}, TypeError, "filter must be a tracebus Filter"),
        ({"group": ""}, ValueError, "group must not be empty"),
        ({"consumer": "c"}, ValueError, "consumer needs a group"),
        ({"maxlen": 0}, ValueError, "maxlen must be at least 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
        ({"block_ms": True}, TypeError, "block_ms must be an int"),
        ({"state_store": {}}, TypeError, "state_store must be a StateStore"),
        ({"start_id": "latest"}, ValueError, "start_id must be"),
        ({"buffer_size": 0}, ValueError, "buffer_size must be at least 1"),
        ({"claim_min_idle_ms": 0}, ValueError, "claim_min_idle_ms must be at least 1"),
        ({"dedupe_window": 0}, ValueError, "dedupe_window must be at least 1"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be a positive number"),
        ({"node_id": ""}, ValueError, "node_id must not be empty"),
        ({"outbound": 1}, TypeError, "outbound must be a bool"),
        ({"inbound": None}, TypeError, "inbound must be a bool"),
        (
            {"outbound": False, "inbound": False},
            ValueError,
            "outbound and inbound are both False",
        ),
        (
            {"inbound": False, "group": "g"},
            ValueError,
            r"^group only concerns reading the stream: not allowed with inbound=False$",
        ),
        (
            {"inbound": False, "group": "g", "consumer": "c"},
            ValueError,
            "group, consumer only concern reading the stream",
        ),
        ({"inbound": False, "start_id": "0"}, ValueError, "start_id only concerns reading"),
        ({"inbound": False, "state_store": tb.StateStore()}, ValueError, "state_store only"),
        (
            {"outbound": False, "filter": tb.filter_by_source("x")},
            ValueError,
            r"^filter only concerns sending to the stream: not allowed with outbound=False$",
        ),
        ({"outbound": False, "maxlen": 10}, ValueError, "maxlen only concerns sending"),
    ]
    for kwargs, exc, message in cases:
        with pytest.raises(exc, match=message):
            RedisStreamBridge(bus, url, **kwargs)
    with pytest.raises(TypeError, match="bus must be a tracebus EventBus"):
        RedisStreamBridge(object(), url)  # type: ignore[arg-type]
    bridge = RedisStreamBridge(bus, url)
    with pytest.raises(ValueError, match="timeout must be a non-negative number"):
        bridge.flush(-1)
    with pytest.raises(ValueError, match="timeout must be a non-negative number"):
        bridge.stop(timeout=-1)
    bus.close()


def test_a_key_that_is_not_a_stream_fails_at_start(
    server: RedisServer, stream: str, client: redis.Redis
) -> None:
    client.set(stream, "a string")
    bus = tb.EventBus()
    for group in (None, "g"):
        bridge = RedisStreamBridge(bus, server.url, stream, group=group)
        with pytest.raises(BridgeError, match="WRONGTYPE"):
            bridge.start()
    bus.close()


def test_a_stopped_bridge_cannot_restart(server: RedisServer, stream: str) -> None:
    bus = tb.EventBus()
    bridge = RedisStreamBridge(bus, server.url, stream)
    with bridge:
        assert bridge.running and bridge.start() is bridge
    assert not bridge.running
    with pytest.raises(BridgeError, match="create a new RedisStreamBridge"):
        bridge.start()
    bus.close()


def test_import_tracebus_does_not_import_redis() -> None:
    code = "import sys, tracebus; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_redis_py_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import tracebus as tb\n"
        "try:\n"
        "    tb.RedisStreamBridge(tb.EventBus())\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'tracebus[redis]'" in out.stdout
