"""One process of the Redis bridge tests (``test_redis_bridge.py`` runs several).

    python tests/redis_peer.py URL STREAM NAME [options]

Starts an ``EventBus`` (with a ``StateStore`` and an ``EventBusAdapter``) bridged to STREAM,
prints ``ready``, waits for ``go`` on stdin, publishes ``--publish`` events (or reports
``--publish`` service states with ``--states``), flushes, waits until its handler saw
``--expect-remote`` events from other processes (then ``--settle`` seconds more, so that
extra copies would be seen too), prints one JSON line (``result ...``) and stops.
With ``--print-handled`` it prints ``handled EVENT_ID`` for each event its handler got.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import tracebus as tb


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("stream")
    p.add_argument("name")
    p.add_argument("--publish", type=int, default=0)
    p.add_argument("--states", action="store_true", help="report service states")
    p.add_argument("--expect-remote", type=int, default=0)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--group")
    p.add_argument("--consumer")
    p.add_argument("--start-id", default="$")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--claim-min-idle-ms", type=int, default=30_000)
    p.add_argument("--handler-sleep", type=float, default=0.0)
    p.add_argument("--print-handled", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--pid-base", type=int, default=0, help="pids reported start here")
    a = p.parse_args()

    bus = tb.EventBus()
    store = tb.StateStore()
    adapter = tb.EventBusAdapter(bus, store)
    seen: list[str] = []
    remote = 0
    lock = threading.Lock()
    enough = threading.Event()
    bridge = tb.RedisStreamBridge(
        bus,
        a.url,
        a.stream,
        group=a.group,
        consumer=a.consumer,
        start_id=a.start_id,
        batch_size=a.batch_size,
        claim_min_idle_ms=a.claim_min_idle_ms,
        state_store=store,
        node_id=a.name,
    )

    def handler(event: tb.Event) -> None:
        nonlocal remote
        if a.handler_sleep:
            time.sleep(a.handler_sleep)
        with lock:
            seen.append(event.event_id)
            if bridge.origin(event) is not None:
                remote += 1
                if remote >= a.expect_remote:
                    enough.set()
        if a.print_handled:
            print("handled", event.event_id, flush=True)

    bus.subscribe(None, handler)
    bridge.start()
    if a.expect_remote == 0:
        enough.set()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")

    cycle = [tb.ServiceState.STARTING, tb.ServiceState.RUNNING, tb.ServiceState.STOPPED]
    for i in range(a.publish):
        if a.states:
            # Labels of its own, plus labels every process updates. Each update has a pid
            # no other update has, so every report changes the state and is published.
            label = f"shared-{i % 3}" if i % 2 else f"{a.name}-svc{i % 5}"
            adapter.report(
                tb.ManagedServiceUpdate(
                    tb.ServiceType.PORT_FORWARD, label, cycle[i % 3], pid=a.pid_base + i + 1
                )
            )
        else:
            bus.publish(
                tb.UserActionEvent(
                    "restart", tb.ServiceType.MCP_SERVER, f"{a.name}-{i}", source=a.name
                )
            )
    flushed = bridge.flush(a.timeout)
    complete = enough.wait(a.timeout)
    time.sleep(a.settle)
    with lock:
        result = {
            "name": a.name,
            "flushed": flushed,
            "complete": complete,
            "seen": list(seen),
            "remote": remote,
            "metrics": bridge.metrics(),
            "states": {
                label: snap.to_dict() for label, snap in store.get_all_service_states().items()
            },
        }
    print("result", json.dumps(result, default=str), flush=True)
    bridge.stop()
    bus.close()


if __name__ == "__main__":
    main()
