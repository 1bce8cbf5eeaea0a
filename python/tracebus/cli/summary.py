"""What ``tracebus demo`` prints at the end, and ``tracebus trace``: cascades as trees,
the state table, the metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from .._core import Event, StateStore
from ..eventstore import SqliteEventStore, rebuild_state
from ..performance import PerformanceMetrics
from ..trace import Trace

if TYPE_CHECKING:
    from .demo import DemoEnvironment


def _fmt_event(e: Event, t0: float) -> str:
    sev = str(e.severity).upper()
    return f"{e.timestamp - t0:7.3f}s {sev:5} {e.type!s:17} {e}  [{e.correlation_id}]"


def render_tree(trace: Trace, title: str, max_lines: int) -> list[str]:
    """A cascade as text lines, cause → effects, at most ``max_lines`` event lines."""
    lines = [f"{title}: correlation {trace.correlation_id} ({len(trace)} events)"]
    shown = 0
    total = len(trace)
    for root in trace.roots:
        for depth, node in root.walk():
            if shown >= max_lines:
                lines.append(
                    f"    … {total - shown} more events "
                    f"(tracebus trace {trace.correlation_id} --db …)"
                )
                return lines
            e = node.event
            lines.append(f"  {'   ' * depth}{'└─ ' if depth else '● '}[{e.type}] {e}{node.note}")
            shown += 1
    return lines


def state_rows(store: StateStore) -> list[tuple[str, str, str, str, str, str]]:
    """(label, type, state, ready, port, pid) of every service, sorted by label."""
    rows = []
    for label, s in sorted(store.get_all_service_states().items()):
        rows.append(
            (
                label,
                str(s.source_type),
                str(s.state),
                "yes" if s.is_ready else "no",
                str(s.proxy_port or "-"),
                str(s.pid or "-"),
            )
        )
    return rows


def _summary(
    env: DemoEnvironment,
    es: SqliteEventStore,
    out: TextIO,
    start_seq: int,
    persisted: int,
    elapsed: float,
    db_path: str,
    perf: PerformanceMetrics,
) -> None:
    cfg = env.config
    w = out.write
    w("\n== cascades (cause → effects) ==\n")
    for corr in env.cascades:
        trace = es.trace(corr)
        for line in render_tree(trace, env.cascade_names[corr], cfg.max_tree_lines):
            w(line + "\n")
        w("\n")
    rows = state_rows(env.state)
    w(f"== final state ({len(rows)} services) ==\n")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    w("  " + "  ".join(h.ljust(widths[i]) for i, h in enumerate(_HEADERS)) + "\n")
    for r in rows[: cfg.max_table_rows]:
        w("  " + "  ".join(v.ljust(widths[i]) for i, v in enumerate(r)) + "\n")
    if len(rows) > cfg.max_table_rows:
        by_state: dict[str, int] = {}
        for r in rows:
            by_state[r[2]] = by_state.get(r[2], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
        w(f"  … {len(rows) - cfg.max_table_rows} more ({summary})\n")
    m = env.bus.get_metrics()
    published = m["events_published"]
    rebuilt = rebuild_state(es, since=start_seq)
    live_states = env.state.get_all_service_states()
    same = rebuilt.get_all_service_states() == live_states
    w("\n== metrics ==\n")
    w(
        f"  events published {published} in {elapsed:.2f} s "
        f"({published / max(elapsed, 1e-9):,.0f}/s), "
        f"delivered {m['events_delivered']}, dropped {m['events_dropped']}, "
        f"handler errors {m['handler_errors']}\n"
    )
    w(f"  handler latency p50 {m['p50_latency_ms']:.3f} ms, p99 {m['p99_latency_ms']:.3f} ms\n")
    w(
        f"  performance monitor: {perf.events_per_second:,.0f} events/s, "
        f"drop ratio {perf.drop_ratio:.3f}, score {perf.performance_score:.0f} "
        f"({'healthy' if perf.system_healthy else 'unhealthy'})\n"
    )
    sm = env.state.get_metrics()
    w(f"  state store: {sm['total_services']} services, {sm['state_changes']} state changes\n")
    w(
        "  event sourcing: state rebuilt from the event store equals the live state: "
        f"{'yes' if same else 'NO'}\n"
    )
    w(f"  events persisted: {persisted} to {db_path} (sequence {start_seq + 1}..{es.last_seq()})\n")
    w(
        f"  try: tracebus trace {env.cascades[-1] if env.cascades else 'CORRELATION_ID'} "
        f"--db {db_path}\n"
    )


_HEADERS = ("service", "type", "state", "ready", "port", "pid")
