"""``os.fork()`` in a process with a bus, batch processor, attached store or bridge (issue
14): the child gets fresh threads (attached event stores, Redis bridges) or a clear
``TracebusError`` on first use (a bus's thread-mode subscriptions, a started
``EventBatchProcessor``), never a silent hang or loss. Each scenario runs in a child
process that forks (never the test process), under a timeout; the forked grandchild has an
alarm so a hang fails instead of stalling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
from redis_support import RedisServer, require_redis_server

import tracebus as tb
from tracebus.eventstore import SqliteEventStore

PRELUDE = """
import os, signal, sys, time
import tracebus as tb

def in_child(body):
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a hang in the child fails the test
        code = 0
        try:
            body()
        except BaseException as e:
            print("child:", type(e).__name__, e, flush=True)
            code = 1
        sys.stdout.flush()
        sys.exit(code)  # atexit handlers run (they must not hang either)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
"""


def _run(body: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.timeout(90)
def test_an_attached_store_gets_a_fresh_writer_in_the_child(tmp_path: Path) -> None:
    db = tmp_path / "fork.db"
    r = _run(
        """
        from tracebus.eventstore import SqliteEventStore
        bus = tb.EventBus()
        store = SqliteEventStore(sys.argv[1])
        store.attach(bus, buffer_size=16)  # a dead writer would block the child at once
        bus.publish_many([tb.SystemEvent("p", "startup", str(i)) for i in range(100)])
        def child():
            bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(500)])
            assert store.flush(10), "not flushed"
            # exits without detach: the exit flush stores the rest
        print("child exit", in_child(child))
        bus.publish_many([tb.SystemEvent("p", "startup", str(i)) for i in range(100, 200)])
        bus.close()
        print("parent stored", len(store))
        """,
        str(db),
    )
    assert "child exit 0" in r.stdout, r.stdout + r.stderr
    with SqliteEventStore(db) as s:
        sources = [e.source for e in s.replay()]
    assert sources.count("c") == 500
    assert sources.count("p") == 200


@pytest.mark.timeout(90)
@pytest.mark.timeout(120)
def test_a_child_forked_while_the_batch_thread_holds_its_lock_does_not_hang() -> None:
    """Forks while another thread of the parent keeps taking the batch processor's lock
    (queueing in a loop): the child's first use must raise, not wait for a lock that its
    parent's thread held at the fork (it hung once in 1,331 tests of a loaded run)."""
    r = _run(
        """
        import threading
        bus = tb.EventBus()
        bp = tb.EventBatchProcessor(bus, batch_size=10)
        bp.start()
        stop = threading.Event()
        def hammer():
            while not stop.is_set():
                bp.queue_event(tb.SystemEvent("p", "startup", "x"))
        t = threading.Thread(target=hammer)
        t.start()
        codes = []
        for _ in range(40):
            pid = os.fork()
            if pid == 0:
                signal.alarm(3)  # a hang in the child: killed, counted below
                try:
                    bp.queue_event(tb.SystemEvent("c", "startup", "y"))
                except tb.TracebusError:
                    os._exit(1)
                os._exit(0)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        stop.set()
        t.join()
        bp.stop()
        bus.close()
        print("hung", codes.count(-signal.SIGALRM), "raised", codes.count(1), "of", len(codes))
        """
    )
    assert "hung 0 raised 40 of 40" in r.stdout, r.stdout + r.stderr


def test_thread_subscriptions_and_batch_processors_fail_clearly_in_the_child() -> None:
    r = _run(
        """
        bus = tb.EventBus()
        got = []
        bus.subscribe(None, got.append)  # sync: works in the child
        bus.subscribe(None, lambda e: None, mode="thread", buffer_size=4)
        bus.publish(tb.SystemEvent("p", "startup", "x"))
        def child_publish():
            bus.publish(tb.SystemEvent("c", "startup", "x"))
        print("publish", in_child(child_publish))
        bus2 = tb.EventBus()
        bp = tb.EventBatchProcessor(bus2, batch_size=10)
        bp.start()
        def child_queue():
            bp.queue_event(tb.SystemEvent("c", "startup", "y"))
        print("queue", in_child(child_queue))
        def child_plain():
            plain = tb.EventBus()
            seen = []
            plain.subscribe(None, seen.append)
            plain.subscribe(None, seen.append, mode="thread")  # made in the child: fine
            plain.publish(tb.SystemEvent("c", "startup", "z"))
            plain.close()
            assert len(seen) == 2, seen
        print("fresh", in_child(child_plain))
        bp.stop()
        bus.close()
        """
    )
    out = r.stdout
    assert "publish 1" in out and "queue 1" in out and "fresh 0" in out, out + r.stderr
    assert out.count("child: TracebusError") == 2
    assert "thread-mode subscription" in out and "EventBatchProcessor" in out
    assert "os.fork()" in out


@pytest.mark.timeout(90)
def test_a_bridge_sends_from_the_child_with_its_own_node_id() -> None:
    require_redis_server()
    with RedisServer() as server:
        stream = f"fork:{time.monotonic_ns()}"
        r = _run(
            """
            bus = tb.EventBus()
            bridge = tb.RedisStreamBridge(bus, sys.argv[1], sys.argv[2], buffer_size=8).start()
            parent_node = bridge.node_id
            def child():
                assert bridge.node_id != parent_node
                bus.publish_many([tb.SystemEvent("c", "startup", str(i)) for i in range(200)])
                assert bridge.flush(10), "not flushed"
            print("child exit", in_child(child))
            deadline = time.monotonic() + 20
            while bridge.metrics()["received"] < 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            print("parent received", bridge.metrics()["received"])
            bridge.stop()
            """,
            server.url,
            stream,
        )
        assert "child exit 0" in r.stdout, r.stdout + r.stderr
        assert "parent received 200" in r.stdout, r.stdout + r.stderr
        c = redis.Redis.from_url(server.url, decode_responses=True)
        assert c.xlen(stream) == 200
        c.close()


def test_the_fork_hook_is_registered() -> None:
    assert callable(tb._core._after_fork_in_child)
    assert SqliteEventStore is tb.SqliteEventStore
