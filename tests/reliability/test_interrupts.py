"""Ctrl-C interrupts every wait that can block the caller (issue 12, item 2): a subprocess
blocks, gets SIGINT and must end with KeyboardInterrupt. The bound is generous (a hang
detector, not a timing assert)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

BOUND = 20.0

PRELUDE = """
import sys, threading, time
from tracebus import *
from tracebus import _core

def ev():
    return SystemEvent("t", "startup")

def ready():
    print("ready", flush=True)
    sys.stdout.flush()
"""

# A publish to a block-strategy subscriber nobody drains (another thread is its consumer).
BLOCK_PUBLISH = """
    bus = EventBus()
    ch = bus.subscribe_channel(buffer_size=1, strategy="block")
    t = threading.Thread(target=lambda: ch.try_recv()); t.start(); t.join()
    bus.publish(ev())
    ready()
    bus.publish(ev(), timeout={timeout})
"""

# Each scenario prints "ready" just before it blocks (a little sleep in a helper thread
# lets the main thread reach the wait first).
SCENARIOS = {
    "channel_recv": """
        ch = Channel(4)
        ready()
        ch.recv()
    """,
    "channel_iter": """
        bus = EventBus()
        ch = bus.subscribe_channel()
        ready()
        for _ in ch:
            pass
    """,
    "channel_block_send": """
        ch = Channel(1, "block")
        ch.send("a")
        # Another thread is the consumer (a consumer's own sends never wait).
        t = threading.Thread(target=lambda: ch.try_recv() and ch.send("a")); t.start(); t.join()
        ready()
        ch.send("b")
    """,
    "block_publish": BLOCK_PUBLISH.format(timeout="None"),
    "block_publish_with_timeout": BLOCK_PUBLISH.format(timeout="1e6"),
    "store_notify": """
        store = StateStore()
        box = []
        def watch():
            box.append(store.subscribe(buffer_size=1, strategy="block"))
        t = threading.Thread(target=watch); t.start(); t.join()
        t = threading.Thread(target=lambda: box[0].try_recv()); t.start(); t.join()
        def upd(state):
            return ManagedServiceUpdate(ServiceType.PORT_FORWARD, "svc", state)
        store.set_service_state(upd(ServiceState.RUNNING))
        ready()
        store.set_service_state(upd(ServiceState.FAILED))
    """,
    "bus_close": """
        bus = _core.EventBus()
        gate = threading.Event()
        bus._subscribe(None, lambda e: gate.wait(), "thread")
        bus.publish(ev())
        ready()
        bus.close(timeout=1e9)
    """,
    "batch_flush": """
        bus = EventBus()
        ch = bus.subscribe_channel(buffer_size=1, strategy="block")
        t = threading.Thread(target=lambda: ch.try_recv()); t.start(); t.join()
        b = EventBatchProcessor(bus, batch_size=1)
        b.start()
        b.queue_event(ev())
        b.queue_event(ev())
        ready()
        b.flush()
    """,
}


@pytest.mark.timeout(BOUND * 3)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sigint_interrupts_a_blocked_wait(name: str) -> None:
    # The interrupted wait must raise KeyboardInterrupt; the script then exits at once
    # (os._exit: no atexit hooks, which would wait for a stalled subscriber in some
    # scenarios; how the interpreter exits is not what this tests).
    body = textwrap.indent(textwrap.dedent(SCENARIOS[name]), "    ")
    script = (
        PRELUDE
        + "import os\ntry:\n"
        + body
        + "\nexcept KeyboardInterrupt:\n"
        + "    print('KeyboardInterrupt', file=sys.stderr, flush=True)\n"
        + "    os._exit(130)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "ready", (line, p.stderr.read() if p.stderr else "")
        time.sleep(0.3)  # let it reach the wait
        assert p.poll() is None, "the scenario did not block"
        os.kill(p.pid, signal.SIGINT)
        try:
            _, err = p.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}: still blocked {BOUND} s after SIGINT")
        assert "KeyboardInterrupt" in err, err
        assert p.returncode == 130, (p.returncode, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
