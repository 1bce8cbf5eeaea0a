"""No Rust lock is held while Python runs (issue 12, item 2): each scenario runs in a
subprocess, so a deadlock fails the test (by its timeout) instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A hang detector, not a speed assert: each scenario finishes in well under a second.
BOUND = 60.0


def run_script(body: str) -> subprocess.CompletedProcess[str]:
    """Runs ``body`` in a fresh interpreter; fails if it hangs or exits non-zero."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(body)],
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"deadlock: the script did not finish within {BOUND} s ({e.stderr!r})")
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.timeout(BOUND + 30)
def test_closing_a_channel_from_two_threads_while_a_predicate_finalizer_runs() -> None:
    # Closing runs the on-close hook, which unsubscribes and drops the filter's predicate;
    # its __del__ releases the GIL (sleep). A second thread closing the same channel then
    # must not wait on a Rust mutex while holding the GIL.
    r = run_script(
        """
        import threading, time
        from tracebus import EventBus, filter_by

        class Pred:
            def __call__(self, e):
                return True
            def __del__(self):
                time.sleep(0.05)

        bus = EventBus()
        for _ in range(20):
            ch = bus.subscribe_channel(filter_by(Pred()))
            go = threading.Barrier(2)
            def close():
                go.wait()
                ch.close()
            ts = [threading.Thread(target=close) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        assert bus.subscription_count == 0, bus.subscription_count
        print("ok")
        """
    )
    assert "ok" in r.stdout


@pytest.mark.timeout(BOUND + 30)
def test_bind_enums_calls_no_constructor_under_the_event_type_lock() -> None:
    # A constructor that reads the event-type registry (or anything that does) must not
    # find the registry's lock taken by its caller.
    r = run_script(
        """
        from tracebus import _core
        from tracebus._enums import BufferAction, EventType, ServiceState, ServiceType, Severity

        def event_type(name):
            _core.registered_event_types()
            return EventType(name)

        _core._bind_enums(ServiceState, Severity, event_type, ServiceType, BufferAction)
        assert _core.registered_event_types()[0] is EventType(_core.registered_event_types()[0])
        print("ok")
        """
    )
    assert "ok" in r.stdout


@pytest.mark.timeout(BOUND + 30)
def test_replacing_the_error_handler_drops_the_old_one_outside_the_lock() -> None:
    # The old hook's finalizer runs Python (here: it reads the bus's hook again).
    r = run_script(
        """
        from tracebus import EventBus
        from tracebus import _core

        bus = _core.EventBus()

        class Hook:
            def __call__(self, exc, event, sub):
                pass
            def __del__(self):
                bus.set_error_handler(None)

        bus.set_error_handler(Hook())
        bus.set_error_handler(lambda exc, event, sub: None)
        print("ok")
        """
    )
    assert "ok" in r.stdout
