"""Cases that register custom event types, measured in a child process.

The event type registry is process-global and holds at most 1,024 types
(``register_event_type``); cases (c) and (c') register 100 and 800 of them. Measured in the
caller's process they would stay there for good, leaving a program that runs the bench
(``tracebus bench``, or ``measure_case`` from Python) little room. So ``measure_case`` runs
a case with ``Case.isolated`` set in a fresh interpreter (``multiprocessing``, *spawn*),
which runs the same measuring code (``measure._measure``) on the same case and size and
sends back the results (and the ``log`` lines as they come); the caller's registry is
never touched. Only the cases of ``CASES`` (possibly with another ``n``/``n_quick``) can
be looked up in the child; any other case is measured in the caller's process.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection

from .framework import Case, Result


def known_case(case: Case) -> bool:
    """Whether ``case`` is one of ``CASES`` (up to its sizes ``n`` and ``n_quick``), so that
    a child process can look it up by key."""
    from .cases import _BY_KEY

    ref = _BY_KEY.get(case.key)
    return ref is not None and dataclasses.replace(case, n=ref.n, n_quick=ref.n_quick) == ref


def measure_in_child(
    case: Case, n: int, repeats: int, log: Callable[[str], object] | None
) -> dict[str, Result]:
    """``measure._measure(case, n, repeats, log)`` run in a spawned child process."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child,
        args=(sender, case.key, n, repeats, log is not None),
        name=f"tracebus-bench-{case.key}",
        daemon=True,
    )
    proc.start()
    sender.close()  # the child holds the only sending end: its exit ends recv() with EOF
    done = False
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except EOFError:
                proc.join()
                raise ChildProcessError(
                    f"bench case {case.key}: the child process measuring it ended without "
                    f"results (exit code {proc.exitcode})"
                ) from None
            if kind == "log":
                if log is not None:
                    log(payload)
            elif kind == "done":
                results: dict[str, Result] = payload
                done = True
                return results
            else:
                raise payload
    finally:
        receiver.close()
        if not done and proc.is_alive():  # e.g. Ctrl-C in this process only
            proc.terminate()
        proc.join()
        proc.close()


def _child(conn: Connection, key: str, n: int, repeats: int, verbose: bool) -> None:
    """The child process: measures case ``key`` and sends ``("log", line)`` messages, then
    ``("done", results)`` or ``("error", exception)``."""
    from .cases import _BY_KEY
    from .measure import _measure

    def log(line: str) -> None:
        conn.send(("log", line))

    try:
        results = _measure(_BY_KEY[key], n, repeats, log if verbose else None)
        conn.send(("done", results))
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole process group: the parent reports it
    except BaseException as exc:
        try:
            conn.send(("error", exc))
        except OSError:
            pass  # the parent is gone
        except Exception:  # the exception does not pickle
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()
