"""``tracebus.logging``: the correlation filter, install/uninstall, the structlog processor,
ConsoleReporter's ids and the severity ↔ level mapping."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator

import pytest
from integrations_support import run_example

import tracebus.logging as tlog
from tracebus import (
    ConsoleReporter,
    EventBus,
    ManagedServiceUpdate,
    ServiceState,
    ServiceType,
    Severity,
    SystemEvent,
    correlation,
)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, _Records]]:
    """A non-propagating logger with one collecting handler and the filter installed."""
    logger = logging.getLogger("tracebus.test.integrations.logging")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = _Records()
    logger.addHandler(handler)
    tlog.install(logger)
    yield logger, handler
    tlog.uninstall(logger)
    logger.removeHandler(handler)


def _ids(record: logging.LogRecord) -> tuple[object, object, object, object]:
    return tuple(getattr(record, k) for k in tlog.FIELDS)  # type: ignore[return-value]


def test_outside_any_scope_fields_are_none(captured: tuple[logging.Logger, _Records]) -> None:
    logger, h = captured
    logger.info("plain")
    assert _ids(h.records[0]) == (None, None, None, None)


def test_scope_stamps_its_fields(captured: tuple[logging.Logger, _Records]) -> None:
    logger, h = captured
    with correlation("user_restart", parent_id="evt_00000000000000aa") as ctx:
        logger.info("in scope")
    assert _ids(h.records[0]) == (ctx.correlation_id, None, "evt_00000000000000aa", "user_restart")


def test_sync_handler_stamps_the_handled_event(
    bus: EventBus, captured: tuple[logging.Logger, _Records]
) -> None:
    logger, h = captured
    bus.subscribe(None, lambda e: logger.info("handling"))
    with correlation("boot") as ctx:
        e = SystemEvent("orch", "startup")
        bus.publish(e)
    assert _ids(h.records[0]) == (ctx.correlation_id, e.event_id, e.event_id, "system.startup")


def test_thread_handler_stamps_the_handled_event(
    bus: EventBus, captured: tuple[logging.Logger, _Records]
) -> None:
    logger, h = captured
    done = threading.Event()

    def handler(_e: object) -> None:
        logger.info("in worker")
        done.set()

    bus.subscribe(None, handler, mode="thread")
    e = SystemEvent("orch", "startup")
    bus.publish(e)
    assert done.wait(30)
    assert _ids(h.records[0]) == (e.correlation_id, e.event_id, e.event_id, "system.startup")


def test_async_handler_stamps_the_handled_event(
    captured: tuple[logging.Logger, _Records],
) -> None:
    logger, h = captured

    async def main() -> SystemEvent:
        bus = EventBus()
        done = asyncio.Event()

        async def handler(_e: object) -> None:
            await asyncio.sleep(0)
            logger.info("in async handler")
            done.set()

        bus.subscribe(None, handler)
        e = SystemEvent("orch", "startup")
        bus.publish(e)
        await asyncio.wait_for(done.wait(), 30)
        bus.close()
        return e

    e = asyncio.run(main())
    assert _ids(h.records[0]) == (e.correlation_id, e.event_id, e.event_id, "system.startup")


def test_scope_inside_handler_wins(
    bus: EventBus, captured: tuple[logging.Logger, _Records]
) -> None:
    logger, h = captured

    def handler(e: SystemEvent) -> None:
        with correlation("inner"):
            logger.info("inner")

    bus.subscribe(None, handler)
    e = SystemEvent("orch", "startup")
    bus.publish(e)
    assert _ids(h.records[0]) == (e.correlation_id, None, e.event_id, "inner")


def test_extra_is_kept_and_default_is_used(captured: tuple[logging.Logger, _Records]) -> None:
    logger, h = captured
    with correlation("op"):
        logger.info("x", extra={"correlation_id": "mine"})
    assert h.records[0].correlation_id == "mine"  # type: ignore[attr-defined]
    flt = tlog.CorrelationFilter(default="-")
    rec = logging.LogRecord("n", logging.INFO, __file__, 1, "m", None, None)
    assert flt.filter(rec) is True
    assert _ids(rec) == ("-", "-", "-", "-")


def test_install_is_idempotent_and_reaches_child_loggers() -> None:
    parent = logging.getLogger("tracebus.test.integrations.parent")
    parent.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(correlation_id)s|%(caused_by)s|%(message)s"))
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    try:
        f1 = tlog.install(parent)
        f2 = tlog.install(parent)
        assert f1 is f2
        assert parent.filters == [f1] and handler.filters == [f1]
        with correlation("child_op") as ctx:
            logging.getLogger("tracebus.test.integrations.parent.child").info("hello")
        assert stream.getvalue() == f"{ctx.correlation_id}|child_op|hello\n"
        assert tlog.uninstall(parent) == 2
        assert parent.filters == [] and handler.filters == []
    finally:
        parent.removeHandler(handler)


def test_console_reporter_records_carry_the_updates_ids(
    captured: tuple[logging.Logger, _Records],
) -> None:
    logger, h = captured
    r = ConsoleReporter(logger)
    with correlation("user_start") as ctx:
        u = ManagedServiceUpdate(ServiceType.PORT_FORWARD, "pf", ServiceState.RUNNING)
    r.report(u)  # outside the scope: the update's own ids
    rec = h.records[0]
    assert _ids(rec) == (ctx.correlation_id, u.event_id, None, "user_start")
    assert sum(isinstance(f, tlog.CorrelationFilter) for f in logger.filters) == 1


def test_console_reporter_adds_the_filter_to_its_logger() -> None:
    logger = logging.getLogger("tracebus.test.integrations.console_own")
    assert logger.filters == []
    ConsoleReporter(logger)
    ConsoleReporter(logger)
    assert [type(f) for f in logger.filters] == [tlog.CorrelationFilter]
    tlog.uninstall(logger)


# --- severity ↔ level --------------------------------------------------------------------

PAIRS = [
    (Severity.TRACE, 5),
    (Severity.DEBUG, logging.DEBUG),
    (Severity.INFO, logging.INFO),
    (Severity.WARN, logging.WARNING),
    (Severity.ERROR, logging.ERROR),
    (Severity.FATAL, logging.CRITICAL),
]


@pytest.mark.parametrize(("severity", "level"), PAIRS)
def test_severity_level_both_ways(severity: Severity, level: int) -> None:
    assert tlog.severity_to_level(severity) == level
    assert tlog.severity_to_level(severity.value) == level
    assert tlog.level_to_severity(level) is severity
    name = "TRACE" if level == 5 else logging.getLevelName(level)  # 5 has no stdlib name
    assert tlog.level_to_severity(name) is severity


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (0, Severity.TRACE),
        (15, Severity.DEBUG),
        (25, Severity.INFO),
        (45, Severity.ERROR),
        (100, Severity.FATAL),
        ("warn", Severity.WARN),
        ("FATAL", Severity.FATAL),
        ("critical", Severity.FATAL),
    ],
)
def test_level_to_severity_between_and_aliases(level: int | str, severity: Severity) -> None:
    assert tlog.level_to_severity(level) is severity


def test_bad_levels_and_severities() -> None:
    with pytest.raises(ValueError, match="level"):
        tlog.level_to_severity("LOUD")
    with pytest.raises(TypeError, match="level"):
        tlog.level_to_severity(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Severity"):
        tlog.severity_to_level("loud")
    # severity spellings are one parser everywhere: any case, warning = warn (issue 15)
    assert tlog.severity_to_level("warning") == tlog.severity_to_level("WARN") == 30


# --- structlog -----------------------------------------------------------------------------


def test_add_correlation_processor_without_structlog() -> None:
    assert tlog.add_correlation(None, "info", {"event": "x"}) == {"event": "x"}
    with correlation("op", parent_id="evt_00000000000000aa") as ctx:
        out = tlog.add_correlation(None, "info", {"event": "x", "caused_by": "kept"})
    assert out == {
        "event": "x",
        "correlation_id": ctx.correlation_id,
        "parent_id": "evt_00000000000000aa",
        "caused_by": "kept",
    }


def test_structlog_pipeline(bus: EventBus) -> None:
    structlog = pytest.importorskip("structlog", reason="structlog is not installed")
    seen: list[dict[str, object]] = []

    def keep(_l: object, _m: str, event_dict: dict[str, object]) -> str:
        seen.append(dict(event_dict))
        return "ok"

    log = structlog.wrap_logger(structlog.ReturnLogger(), processors=[tlog.add_correlation, keep])
    bus.subscribe(None, lambda e: log.info("handling"))
    e = SystemEvent("orch", "startup")
    bus.publish(e)
    assert seen == [
        {
            "event": "handling",
            "correlation_id": e.correlation_id,
            "event_id": e.event_id,
            "parent_id": e.event_id,
            "caused_by": "system.startup",
        }
    ]


def test_example_runs() -> None:
    assert run_example("logging_correlation.py") == [
        "INFO [None] outside any scope",
        "INFO [boot] inside the scope",
        "INFO [system.startup] handling system.startup, correlation matches: True",
        "warn -> WARNING",
        "ERROR -> error",
    ]
