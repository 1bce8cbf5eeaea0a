"""Correlation ids on every log record: ``tracebus.logging.install`` adds the filter to the
root logger's handlers; records logged inside a scope or a handler carry the cascade's ids."""

from __future__ import annotations

import logging
import sys

import tracebus as tb
import tracebus.logging as tlog

logging.basicConfig(
    stream=sys.stdout,
    level=logging.INFO,
    format="%(levelname)s [%(caused_by)s] %(message)s",
)
tlog.install()
log = logging.getLogger("example")

bus = tb.EventBus()


@bus.on(tb.filter_by_type(tb.EventType.SYSTEM_STARTUP))
def on_startup(event: tb.SystemEvent) -> None:
    log.info("handling %s, correlation matches: %s", event.type, _same_correlation(event))


def _same_correlation(event: tb.Event) -> bool:
    record = logging.LogRecord("x", logging.INFO, __file__, 0, "", None, None)
    tlog.CorrelationFilter().filter(record)
    return bool(getattr(record, "correlation_id", None) == event.correlation_id)


log.info("outside any scope")
with tb.correlation("boot"):
    log.info("inside the scope")
    bus.publish(tb.SystemEvent("orchestrator", "startup"))
print("warn ->", logging.getLevelName(tlog.severity_to_level(tb.Severity.WARN)))
print("ERROR ->", tlog.level_to_severity(logging.ERROR).value)
bus.close()
