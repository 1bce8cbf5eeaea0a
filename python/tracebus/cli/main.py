"""The ``tracebus`` command line (also ``python -m tracebus``).

Commands: ``demo``, ``bench``, ``trace``, ``replay``, ``stats``, ``watch``, ``state``,
``diff``, ``import``; ``--help`` on each. Every command that reads a store reads any store:
events of types or classes this process does not know are shown from their stored fields
(``--import MODULE`` or ``TRACEBUS_IMPORT`` imports the user's module first, so their
classes decode as themselves).
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


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import",
        action="append",
        dest="imports",
        metavar="MODULE",
        help="import this module first (repeatable; also TRACEBUS_IMPORT=mod1,mod2), so its "
        "event classes and registered types decode as themselves",
    )


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        help="only this event type (repeatable; any stored type name, registered or not)",
    )
    p.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="SOURCE",
        help="only this source (repeatable)",
    )
    p.add_argument(
        "--severity",
        metavar="MIN",
        help="only events at least this severe (trace, debug, info, warn, error, fatal; any "
        "case, warning = warn)",
    )
    p.add_argument("--correlation", metavar="ID", help="only this correlation id")


def _store_command(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand reading an event store: ``--db PATH`` (required) and ``--import``."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    p.add_argument("--db", required=True, help="SQLite event store")
    _add_import(p)
    return p


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
        type=_number("--duration", 0.001),
        default=30.0,
        help="simulated seconds, any positive number up to 86400 (default 30; below 8 the "
        "scripted scenario is compressed to fit)",
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
    t.add_argument(
        "correlation_id",
        metavar="CORRELATION_ID",
        help="a correlation id, or an unambiguous prefix of one",
    )
    t.add_argument("--db", required=True, help="SQLite event store")
    _add_import(t)
    t.add_argument(
        "--json",
        action="store_true",
        help="JSON lines (one flat object per event, depth-first, with its depth) instead of "
        "a tree",
    )

    r = sub.add_parser(
        "replay",
        help="print stored events in order",
        description="Prints stored events in order, optionally filtered.",
    )
    r.add_argument("--db", required=True, help="SQLite event store")
    _add_import(r)
    _add_filters(r)
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
    r.add_argument(
        "--json",
        action="store_true",
        help="JSON lines: one flat object per event with every header field (seq, event_id, "
        "type, severity, source, timestamp as ISO 8601 UTC, correlation_id, parent_id, "
        "caused_by), the payload's fields, class, stream and timestamp_epoch; tracebus "
        "import reads them back",
    )
    r.add_argument(
        "--follow",
        action="store_true",
        help="show the events in the live view (at --speed), then keep following new ones "
        "(until Ctrl-C, or --limit events)",
    )
    r.add_argument(
        "--speed",
        type=_number("--speed"),
        default=None,
        help="with --follow: replay at this many times the recorded pace (0 = no waiting; "
        "default 0)",
    )

    s = _store_command(
        sub,
        "stats",
        help="figures of an event store",
        description="Prints an event store's figures.",
    )
    s.add_argument("--json", action="store_true", help="as JSON")
    s.add_argument("--by-type", action="store_true", help="only the counts by event type")

    st = _store_command(
        sub,
        "state",
        help="the service table rebuilt from an event store, now or at a past point",
        description="Rebuilds the state store from the stored service events (event "
        "sourcing) and prints the service table as it was at --at.",
    )
    st.add_argument(
        "--at",
        metavar="POINT",
        help="a sequence number (1234), an ISO 8601 time (2026-12-02T12:00:00, UTC unless "
        "it says otherwise) or a time before the last stored event (-5m, -30s, -2h); "
        "default: the end",
    )
    st.add_argument("--json", action="store_true", help="as JSON (one object per service)")

    df = _store_command(
        sub,
        "diff",
        help="what changed between two points of an event store's history",
        description="Services added, removed and changed between --from and --to, with the "
        "state changes and the events that caused them.",
    )
    df.add_argument("--from", dest="frm", required=True, metavar="POINT", help="as state --at")
    df.add_argument("--to", metavar="POINT", help="as state --at (default: the end)")

    im = sub.add_parser(
        "import",
        help="append JSON lines (tracebus replay --json) to an event store",
        description="Reads tracebus replay --json lines from stdin (or --file) and appends "
        "the events, keeping their ids, timestamps and streams, to --db (created if "
        "missing). Classes are rebuilt by name: built-ins, or a module given with --import.",
    )
    im.add_argument("--db", required=True, help="SQLite event store to append to")
    im.add_argument("--file", help="read this file instead of stdin")
    _add_import(im)

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
        "--from",
        type=_positive_int("--since", 0),
        default=None,
        metavar="SEQ",
        help="with --db: start after this sequence number (default: the current end); "
        "re-watch a past incident with --from SEQ --speed X",
    )
    w.add_argument(
        "--speed",
        type=_number("--speed"),
        default=None,
        help="with --db: show stored events at this many times their recorded pace (0 = no "
        "waiting, the default)",
    )
    w.add_argument(
        "--wait",
        type=_number("--wait"),
        default=None,
        metavar="SECONDS",
        help="with --db: wait at most this long for the file to appear (default: as long as "
        "--duration, else until Ctrl-C)",
    )
    _add_import(w)
    w.add_argument("--plain", action="store_true", help="one line per event even on a terminal")
    return p


def _open_store(path: str) -> Any:
    from ..eventstore import SqliteEventStore

    if not os.path.exists(path):
        raise CliError(f"no such event store: {path}")
    return SqliteEventStore(path, create=False)


def _imports(args: argparse.Namespace) -> None:
    from .stored import import_modules

    import_modules(getattr(args, "imports", None))


def _filter_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``read_records`` keywords of ``--type/--source/--severity/--correlation``."""
    kw: dict[str, Any] = {
        "types": args.types,
        "sources": args.sources,
        "severity": args.severity,
        "correlation_id": args.correlation,
    }
    if args.severity is not None:
        from .stored import severities_at_least

        severities_at_least(args.severity)  # a bad spelling fails before reading
    return kw


def _line(seq: int, e: Any) -> str:
    from .stored import iso_time

    sev = str(e.severity).upper()
    return f"{seq:>8} {iso_time(e.timestamp)} {sev:5} {e.type!s:17} {e}  [{e.correlation_id}]"


def _point(store: Any, text: str | None, name: str) -> int | float | None:
    """``--at``-style text as a sequence number (int) or a timestamp (float)."""
    import datetime
    import re

    if text is None:
        return None
    t = text.strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    m = re.fullmatch(r"-(\d+(?:\.\d+)?)(ms|s|m|h|d)", t)
    if m:
        unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        last = store.stats()["last_timestamp"] or 0.0
        return float(last) - float(m.group(1)) * unit
    try:
        d = datetime.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{name} must be a sequence number, an ISO 8601 time or -DURATION (e.g. -5m), "
            f"got {text!r}"
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.UTC)
    return d.timestamp()


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


def _correlation(store: Any, given: str) -> str:
    """The stored correlation id ``given`` names: itself, or the one id it is a prefix of;
    ``CliError`` listing the matches when it is ambiguous."""
    from .._core import _correlation_key

    with store._db() as c:
        if c.execute(
            "SELECT 1 FROM events WHERE correlation_id = ? LIMIT 1", (_correlation_key(given),)
        ).fetchone():
            return given
        like = given.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = [
            str(r[0])
            for r in c.execute(
                "SELECT DISTINCT json_extract(data, '$.kwargs.correlation_id') AS cid FROM"
                " events WHERE cid LIKE ? ESCAPE '\\' LIMIT 11",
                (like,),
            )
        ]
    if not found:
        raise CliError(f"no events with correlation id {given} in {store.path}")
    if len(found) > 1:
        more = " …" if len(found) > 10 else ""
        raise CliError(
            f"correlation id prefix {given!r} is ambiguous: it matches "
            + ", ".join(found[:10])
            + more
        )
    return found[0]


def cmd_trace(args: argparse.Namespace, out: TextIO) -> int:
    from ..trace import build_trace
    from .stored import flat_json, read_records
    from .summary import render_tree

    with _open_store(args.db) as store:
        corr = _correlation(store, args.correlation_id)
        records = list(read_records(store, correlation_id=corr))
        seq_of = {id(r.event): r.seq for r in records}
        trace = build_trace(corr, (r.event for r in records))
        if args.json:
            for r in trace.roots:
                for depth, node in r.walk():
                    out.write(flat_json(seq_of.get(id(node.event)), node.event, depth=depth) + "\n")
        else:
            for line in render_tree(trace, "trace", max_lines=1_000_000, width=_width(out)):
                out.write(line + "\n")
    return 0


def _width(out: TextIO) -> int | None:
    """The terminal's width when ``out`` is one (trees are fitted to it), else None."""
    if not out.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    from .stored import flat_json, read_records

    kw = _filter_kwargs(args)
    if args.follow:
        from .watch import watch

        with _open_store(args.db) as store:
            watch(
                store,
                out,
                live=out.isatty(),
                since=args.since,
                speed=args.speed,
                select=kw,
                count=args.limit or None,
            )
        return 0
    if args.speed is not None:
        raise CliError("--speed works with --follow")
    with _open_store(args.db) as store:
        for r in read_records(store, args.since, limit=args.limit, **kw):
            if args.json:
                out.write(flat_json(r.seq, r.event, stream=r.stream, version=r.version) + "\n")
            else:
                out.write(_line(r.seq, r.event) + "\n")
    return 0


def cmd_import(args: argparse.Namespace, out: TextIO) -> int:
    from ..eventstore import SqliteEventStore
    from .stored import event_from_flat

    src = open(args.file, encoding="utf-8") if args.file else sys.stdin
    n = 0
    try:
        with SqliteEventStore(args.db) as store:
            batch: list[tuple[Any, str | None]] = []

            def flush() -> None:
                by_stream: dict[str | None, list[Any]] = {}
                for e, stream in batch:  # consecutive runs keep the order
                    by_stream.setdefault(stream, []).append(e)
                if len(by_stream) == 1:
                    ((stream, events),) = by_stream.items()
                    store.append_many(events, stream=stream)
                else:
                    for e, stream in batch:
                        store.append(e, stream=stream)
                batch.clear()

            for lineno, line in enumerate(src, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    e = event_from_flat(obj)
                except (ValueError, TypeError) as err:
                    raise CliError(f"line {lineno}: {err}") from None
                batch.append((e, obj.get("stream")))
                n += 1
                if len(batch) >= 1000:
                    flush()
            if batch:
                flush()
    finally:
        if src is not sys.stdin:
            src.close()
    sys.stderr.write(f"tracebus import: {n} events appended to {args.db}\n")
    return 0


def _state_rows_at(store: Any, at: int | float | None) -> dict[str, Any]:
    return dict(store.rebuild_state(until=at).get_all_service_states())


def cmd_state(args: argparse.Namespace, out: TextIO) -> int:
    from .stored import iso_time
    from .summary import state_rows, table_lines

    with _open_store(args.db) as store:
        at = _point(store, args.at, "--at")
        state = store.rebuild_state(until=at)
    if args.json:
        for label, s in sorted(state.get_all_service_states().items()):
            out.write(
                json.dumps(
                    {
                        "service": label,
                        "type": str(s.source_type),
                        "state": str(s.state),
                        "ready": s.is_ready,
                        "port": s.proxy_port,
                        "pid": s.pid,
                        "error": s.error_detail,
                        "updated": iso_time(s.last_updated),
                    }
                )
                + "\n"
            )
        return 0
    where = "the end" if at is None else (f"seq {at}" if isinstance(at, int) else iso_time(at))
    rows = state_rows(state)
    out.write(f"state at {where}: {len(rows)} services\n")
    for line in table_lines(rows):
        out.write(line + "\n")
    return 0


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    from .stored import iso_time, read_records

    with _open_store(args.db) as store:
        a = _point(store, args.frm, "--from")
        b = _point(store, args.to, "--to")
        before = _state_rows_at(store, a)
        after = _state_rows_at(store, b)
        # the events between the two points, per service
        from ..eventstore.rebuild import _SERVICE_TYPES

        causes: dict[str, list[str]] = {}
        since = a if isinstance(a, int) else 0
        for r in read_records(store, since, types=_SERVICE_TYPES):
            e = r.event
            if isinstance(b, int) and r.seq > b:
                break
            if isinstance(a, float) and e.timestamp <= a:
                continue
            if isinstance(b, float) and e.timestamp > b:
                continue
            new = getattr(e, "new_state", None)
            causes.setdefault(e.source, []).append(
                f"seq {r.seq} {iso_time(e.timestamp)} {e.type} → {new} "
                f"[{e.correlation_id}] (caused by {e.caused_by})"
            )

    def name(p: int | float | None) -> str:
        return "the end" if p is None else f"seq {p}" if isinstance(p, int) else str(iso_time(p))

    out.write(f"diff {name(a)} → {name(b)}\n")
    changed = 0
    for label in sorted(set(before) | set(after)):
        old, new = before.get(label), after.get(label)
        if old is None and new is not None:
            out.write(f"+ {label}: added, {new.state}\n")
        elif new is None and old is not None:
            out.write(f"- {label}: removed (was {old.state})\n")
        elif old is not None and new is not None and old != new:
            what = f"{old.state} → {new.state}" if old.state != new.state else "updated"
            out.write(f"~ {label}: {what}\n")
        else:
            continue
        changed += 1
        for c in causes.get(label, []):
            out.write(f"    {c}\n")
    if not changed:
        out.write("no changes\n")
    return 0


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    from .stored import iso_time

    with _open_store(args.db) as store:
        st = store.stats()
    t0, t1 = st["first_timestamp"], st["last_timestamp"]
    st["first_timestamp"] = iso_time(t0)
    st["last_timestamp"] = iso_time(t1)
    st["duration_seconds"] = None if t0 is None else round(t1 - t0, 6)
    if args.by_type:
        st = {"by_type": st["by_type"]}
    if args.json:
        out.write(json.dumps(st, indent=2) + "\n")
        return 0
    if "duration_seconds" in st and st["duration_seconds"] is not None:
        st["duration"] = _duration(st.pop("duration_seconds"))
    for k, v in st.items():
        if isinstance(v, dict):
            out.write(f"{k}:\n")
            for kk, vv in v.items():
                out.write(f"  {kk}: {vv}\n")
        else:
            out.write(f"{k}: {v}\n")
    return 0


def _duration(seconds: float) -> str:
    """``1h 02m 03.5s``-style text of a number of seconds."""
    h, rest = divmod(float(seconds), 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{int(h)}h {int(m):02d}m {sec:04.1f}s"
    if m:
        return f"{int(m)}m {sec:04.1f}s"
    return f"{sec:.3f}s"


def _wait_for_file(path: str, wait: float | None, out: TextIO) -> None:
    """Waits (interruptibly) until ``path`` exists, at most ``wait`` seconds (None: until
    Ctrl-C); says so once on stderr."""
    import time

    if os.path.exists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CliError(f"no such event store: {path} (no directory {parent})")
    sys.stderr.write(f"tracebus watch: waiting for {path} to appear (Ctrl-C stops)\n")
    sys.stderr.flush()
    deadline = None if wait is None else time.monotonic() + wait
    while not os.path.exists(path):
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(f"no such event store: {path} (waited {wait:g} s)")
        time.sleep(0.1)


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    from .watch import watch, watch_redis

    live = not args.plain and out.isatty()
    if args.redis is not None:
        if args.since is not None:
            raise CliError("--since works with --db only (--redis reads the stream from its start)")
        if args.speed is not None or args.wait is not None:
            raise CliError("--speed and --wait work with --db only")
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
    import time

    start = time.monotonic()
    _wait_for_file(args.db, args.wait if args.wait is not None else args.duration, out)
    duration = args.duration
    if duration is not None:
        duration = max(0.0, duration - (time.monotonic() - start))
    with _open_store(args.db) as store:
        watch(
            store,
            out,
            duration=duration,
            live=live,
            since=args.since,
            count=args.count,
            speed=args.speed,
        )
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
    "state": cmd_state,
    "diff": cmd_diff,
    "import": cmd_import,
}


def _join_relative_points(argv: list[str]) -> list[str]:
    """``--at -5m`` as ``--at=-5m`` (argparse takes ``-5m`` for an option)."""
    import re

    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--at", "--from", "--to") and i + 1 < len(argv):
            nxt = argv[i + 1]
            if re.fullmatch(r"-\d+(?:\.\d+)?(?:ms|s|m|h|d)", nxt):
                out.append(f"{a}={nxt}")
                i += 2
                continue
        out.append(a)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "bench":
        return cmd_bench(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(_join_relative_points(args_list))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .._core import TracebusError

    out = sys.stdout
    try:
        _imports(args)
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
