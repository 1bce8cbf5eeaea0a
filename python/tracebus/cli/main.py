"""The ``tracebus`` command line (also ``python -m tracebus``).

Commands: ``demo``, ``bench``, ``trace``, ``replay``, ``stats``, ``watch``; ``--help`` on each.
Bad arguments, missing or foreign files, a missing redis-py and an unreachable or bad Redis
URL print one line on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

from .. import __version__

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class CliError(Exception):
    """An error to report as one line (exit status 1)."""


def _positive_int(name: str, minimum: int = 1) -> Any:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum}, got {v}")
        return v

    return parse


def _number(name: str, minimum: float = 0.0) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (v == v and abs(v) != float("inf")) or v < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be a finite number >= {minimum:g}, got {text!r}"
            )
        return v

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``tracebus`` argument parser."""
    p = _Parser(
        prog="tracebus",
        description="Correlated events, a state store and a fast event bus for service "
        "orchestrators.",
        epilog="Start with: tracebus demo",
    )
    p.add_argument("--version", action="version", version=f"tracebus {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser(
        "demo",
        help="run a simulated service environment (live view on a terminal)",
        description="Simulates Kubernetes connections, port-forwards, MCP servers and cluster "
        "health checks through tracebus: a startup cascade, a cluster failure with retries and "
        "a stop cascade, recovery, and a user restart. Shows a live view on a terminal (else "
        "one line per event), then each cascade as a tree, the final states and the metrics. "
        "Events are persisted to SQLite.",
    )
    d.add_argument(
        "--services",
        type=_positive_int("--services", 3),
        default=12,
        help="number of services (default 12; thousands work)",
    )
    d.add_argument(
        "--duration",
        type=_number("--duration", 8),
        default=30.0,
        help="simulated seconds (default 30)",
    )
    d.add_argument(
        "--speed",
        type=_number("--speed"),
        default=10.0,
        help="simulated seconds per real second (default 10; 0 = no waiting)",
    )
    d.add_argument("--seed", type=int, default=None, help="random seed for a reproducible run")
    d.add_argument(
        "--db", default="tracebus-demo.db", help="SQLite event store (default ./tracebus-demo.db)"
    )
    d.add_argument("--plain", action="store_true", help="one line per event even on a terminal")
    d.add_argument(
        "--redis",
        metavar="URL",
        help="also publish every event to a Redis stream at this URL, e.g. "
        "redis://127.0.0.1:6379/0 (needs redis-py); tracebus watch --redis URL shows it",
    )
    d.add_argument(
        "--stream",
        metavar="NAME",
        help="the Redis stream's key with --redis (default tracebus:events)",
    )

    sub.add_parser(
        "bench",
        help="run the benchmark suite (arguments are passed on; see tracebus bench --help)",
        add_help=False,
    )

    t = sub.add_parser(
        "trace",
        help="show one correlation's cascade as a tree",
        description="Shows the events of one correlation id from an event store, cause → effects.",
    )
    t.add_argument("correlation_id", metavar="CORRELATION_ID")
    t.add_argument("--db", required=True, help="SQLite event store")
    t.add_argument(
        "--json",
        action="store_true",
        help="JSON lines (one event a line, depth-first) instead of a tree",
    )

    r = sub.add_parser(
        "replay",
        help="print stored events in order",
        description="Prints stored events in order, optionally filtered.",
    )
    r.add_argument("--db", required=True, help="SQLite event store")
    r.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        help="only this event type (repeatable)",
    )
    r.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="SOURCE",
        help="only this source (repeatable)",
    )
    r.add_argument(
        "--severity",
        metavar="MIN",
        help="only events at least this severe (trace, debug, info, warn, error, fatal)",
    )
    r.add_argument(
        "--since",
        type=_positive_int("--since", 0),
        default=0,
        metavar="SEQ",
        help="only events after this sequence number",
    )
    r.add_argument(
        "--limit",
        type=_positive_int("--limit", 0),
        default=None,
        metavar="N",
        help="at most N events",
    )
    r.add_argument("--json", action="store_true", help="JSON lines (seq, stream, version, event)")

    s = sub.add_parser(
        "stats", help="figures of an event store", description="Prints an event store's figures."
    )
    s.add_argument("--db", required=True, help="SQLite event store")
    s.add_argument("--json", action="store_true", help="as JSON")

    w = sub.add_parser(
        "watch",
        help="follow an event store or Redis stream another process writes",
        description="Follows what another process publishes — an event store it writes "
        "(--db) or a Redis stream its RedisStreamBridge sends to (--redis) — as the live view "
        "on a terminal, else one line per event (number, severity, type, text, correlation). "
        "With --redis the stream is read from its start (what the stream keeps), so the table "
        "shows the current state at once; lines are numbered in arrival order. Ctrl-C stops.",
    )
    src = w.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="SQLite event store")
    src.add_argument(
        "--redis",
        metavar="URL",
        help="Redis server whose stream to follow, e.g. redis://127.0.0.1:6379/0 (needs redis-py)",
    )
    w.add_argument(
        "--stream",
        metavar="NAME",
        help="the stream's key with --redis (default tracebus:events)",
    )
    w.add_argument(
        "--duration", type=_number("--duration"), default=None, help="stop after this many seconds"
    )
    w.add_argument(
        "--count",
        type=_positive_int("--count"),
        default=None,
        metavar="N",
        help="stop after N events",
    )
    w.add_argument(
        "--since",
        type=_positive_int("--since", 0),
        default=None,
        metavar="SEQ",
        help="with --db: start after this sequence number (default: the current end)",
    )
    w.add_argument("--plain", action="store_true", help="one line per event even on a terminal")
    return p


def _open_store(path: str) -> Any:
    from ..eventstore import SqliteEventStore

    if not os.path.exists(path):
        raise CliError(f"no such event store: {path}")
    return SqliteEventStore(path, create=False)


def _filter(args: argparse.Namespace) -> Any:
    from .. import combine_filters, filter_by_severity, filter_by_source, filter_by_type
    from .._enums import Severity

    parts = []
    try:
        if args.types:
            parts.append(filter_by_type(*args.types))
        if args.sources:
            parts.append(filter_by_source(*args.sources))
        if args.severity:
            parts.append(filter_by_severity(Severity(args.severity.lower())))
    except ValueError as e:
        raise CliError(str(e)) from None
    return combine_filters(*parts) if parts else None


def _line(seq: int, e: Any) -> str:
    import time

    ts = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.timestamp))
        + f".{int(e.timestamp * 1000) % 1000:03d}"
    )
    sev = str(e.severity).upper()
    return f"{seq:>8} {ts} {sev:5} {e.type!s:17} {e}  [{e.correlation_id}]"


def _event_json(e: Any, **extra: Any) -> str:
    from ..codec import encode_event

    return json.dumps(
        {**extra, "type": str(e.type), "event": json.loads(encode_event(e))}, ensure_ascii=False
    )


@contextmanager
def _redis_errors(url: str | None) -> Iterator[None]:
    """With a Redis ``url``: a missing redis-py and Redis errors (unreachable server, bad
    URL) become one-line ``CliError``s."""
    if url is None:
        yield
        return
    try:
        import redis
    except ImportError:
        raise CliError("--redis needs redis-py: pip install redis") from None
    try:
        yield
    except redis.RedisError as e:  # (the bridge reports an unreachable server itself)
        raise CliError(f"redis {url}: {e}") from None
    except ValueError as e:  # e.g. not a Redis URL
        raise CliError(f"--redis: {e}") from None


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .demo import DemoConfig, run_demo

    if args.stream is not None and args.redis is None:
        raise CliError("--stream needs --redis URL")
    cfg = DemoConfig(
        services=args.services,
        duration=args.duration,
        speed=args.speed,
        seed=args.seed,
        db=args.db,
        plain=args.plain,
        redis=args.redis,
        stream=args.stream,
    )
    try:
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise CliError(str(e)) from None
    with _redis_errors(args.redis):
        return run_demo(cfg, out)


def cmd_trace(args: argparse.Namespace, out: TextIO) -> int:
    from .summary import render_tree

    with _open_store(args.db) as store:
        trace = store.trace(args.correlation_id)
        if len(trace) == 0:
            raise CliError(f"no events with correlation id {args.correlation_id} in {args.db}")
        if args.json:
            for r in trace.roots:
                for depth, node in r.walk():
                    out.write(_event_json(node.event, depth=depth) + "\n")
        else:
            for line in render_tree(trace, "trace", max_lines=1_000_000):
                out.write(line + "\n")
    return 0


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    flt = _filter(args)
    # --type also narrows the SQL query (the filter stays the exact check), so only
    # matching rows are decoded.
    types = tuple(args.types) if args.types else None
    with _open_store(args.db) as store:
        for r in store.records(args.since, flt, limit=args.limit, _types=types):
            if args.json:
                out.write(
                    _event_json(r.event, seq=r.seq, stream=r.stream, version=r.version) + "\n"
                )
            else:
                out.write(_line(r.seq, r.event) + "\n")
    return 0


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    with _open_store(args.db) as store:
        st = store.stats()
    if args.json:
        out.write(json.dumps(st, indent=2) + "\n")
        return 0
    for k, v in st.items():
        if isinstance(v, dict):
            out.write(f"{k}:\n")
            for kk, vv in v.items():
                out.write(f"  {kk}: {vv}\n")
        else:
            out.write(f"{k}: {v}\n")
    return 0


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    from .watch import watch, watch_redis

    live = not args.plain and out.isatty()
    if args.redis is not None:
        if args.since is not None:
            raise CliError("--since works with --db only (--redis reads the stream from its start)")
        with _redis_errors(args.redis):
            watch_redis(
                args.redis,
                out,
                stream=args.stream,
                duration=args.duration,
                live=live,
                count=args.count,
            )
        return 0
    if args.stream is not None:
        raise CliError("--stream needs --redis URL")
    with _open_store(args.db) as store:
        watch(store, out, duration=args.duration, live=live, since=args.since, count=args.count)
    return 0


def cmd_bench(argv: list[str]) -> int:
    try:
        from .. import bench
    except ImportError as e:
        sys.stderr.write(f"tracebus bench: error: the benchmark module is not available ({e})\n")
        return EXIT_USAGE
    from .._core import TracebusError

    try:
        result = bench.run(argv)
    except KeyboardInterrupt:
        return 130
    except (TracebusError, OSError, ValueError, TypeError) as e:
        sys.stderr.write(f"tracebus bench: error: {e}\n")
        return EXIT_ERROR
    return int(result or 0)


_COMMANDS = {
    "demo": cmd_demo,
    "trace": cmd_trace,
    "replay": cmd_replay,
    "stats": cmd_stats,
    "watch": cmd_watch,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "bench":
        return cmd_bench(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .._core import TracebusError

    out = sys.stdout
    try:
        return _COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (CliError, TracebusError, OSError, ValueError, TypeError) as e:
        sys.stderr.write(f"tracebus {args.command}: error: {e}\n")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
