"""``logging`` and structlog integration: correlation ids on every log record.

- ``CorrelationFilter`` stamps ``correlation_id``, ``event_id``, ``parent_id`` and
  ``caused_by`` on each record emitted inside a ``correlation(...)`` scope or inside a handler
  while it handles an event (sync, thread and async delivery). Outside both, the four
  attributes are set to ``default`` (None), so a format string such as
  ``"%(correlation_id)s %(message)s"`` never fails. Attributes a record already has (from
  ``extra=``) are kept.
- ``install(logger=None)`` adds one filter to a logger (root by default) and to each of its
  handlers (a handler's filter sees the records of child loggers too); ``uninstall`` removes
  them.
- ``add_correlation`` is a structlog processor doing the same on the event dict (structlog is
  never imported here: a processor is a plain callable).
- ``severity_to_level`` / ``level_to_severity`` map tracebus severities to ``logging`` levels
  and back.

The fields describe the point where the record is emitted, as an update created there would
inherit them: ``correlation_id`` and ``caused_by`` of the scope (inside a handler: the
handled event's correlation and its type), ``parent_id`` the parent of what is created there
(inside a handler: the handled event), and ``event_id`` the event being handled (None in a
plain scope).

This module is ``tracebus.logging``; the standard library's ``logging`` stays reachable by
absolute import (``import logging``).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ._core import CorrelationContext, Event, _correlation_var
from ._enums import Severity

__all__ = [
    "FIELDS",
    "CorrelationFilter",
    "add_correlation",
    "correlation_fields",
    "install",
    "level_to_severity",
    "severity_to_level",
    "uninstall",
]

_VAR = _correlation_var()

#: The attributes the filter sets, in this order.
FIELDS = ("correlation_id", "event_id", "parent_id", "caused_by")

#: ``logging`` has no level below DEBUG; ``Severity.TRACE`` maps to this one.
TRACE_LEVEL = 5

_TO_LEVEL = {
    Severity.TRACE: TRACE_LEVEL,
    Severity.DEBUG: logging.DEBUG,
    Severity.INFO: logging.INFO,
    Severity.WARN: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.FATAL: logging.CRITICAL,
}
_LEVEL_NAMES = {"WARN": logging.WARNING, "FATAL": logging.CRITICAL, "TRACE": TRACE_LEVEL}


def severity_to_level(severity: Severity | str) -> int:
    """The ``logging`` level of a severity: trace → 5, debug → DEBUG, info → INFO, warn →
    WARNING, error → ERROR, fatal → CRITICAL."""
    return _TO_LEVEL[Severity(severity)]


def level_to_severity(level: int | str) -> Severity:
    """The severity of a ``logging`` level (a number or a name such as ``"WARNING"``).

    Levels between two standard ones map to the lower one's severity (e.g. 25 → info);
    below DEBUG → trace, CRITICAL and above → fatal. Inverse of ``severity_to_level``.
    """
    if isinstance(level, str):
        name = level.strip().upper()
        number = _LEVEL_NAMES.get(name)
        if number is None:
            found = logging.getLevelNamesMapping().get(name)
            if found is None:
                raise ValueError(f"unknown logging level name {level!r}")
            number = found
        level = number
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int or a level name, got {type(level).__name__}")
    if level < logging.DEBUG:
        return Severity.TRACE
    if level < logging.INFO:
        return Severity.DEBUG
    if level < logging.WARNING:
        return Severity.INFO
    if level < logging.ERROR:
        return Severity.WARN
    if level < logging.CRITICAL:
        return Severity.ERROR
    return Severity.FATAL


def correlation_fields() -> dict[str, str | None] | None:
    """The correlation fields at this point (see the module docstring), or None outside any
    scope and any handler."""
    current = _VAR.get()
    # A context created without arguments joins the newer of the open scope and the event
    # being delivered on this thread; outside both it starts a new correlation each time.
    probe = CorrelationContext()
    if current is None:
        if CorrelationContext().correlation_id != probe.correlation_id:
            return None  # two fresh correlations: nothing to join
        event_id = probe.parent_id  # a sync or thread-mode handler's event
    elif isinstance(current, Event):  # an async handler's event
        event_id = current.event_id
    elif (probe.correlation_id, probe.parent_id, probe.caused_by) == (
        current.correlation_id,
        current.parent_id,
        current.caused_by,
    ):
        event_id = None  # the scope is the newer one
    else:
        event_id = probe.parent_id  # a delivery started inside the scope
    return {
        "correlation_id": probe.correlation_id,
        "event_id": event_id,
        "parent_id": probe.parent_id,
        "caused_by": probe.caused_by,
    }


class CorrelationFilter(logging.Filter):
    """Stamps the correlation fields on each record (never drops one)."""

    def __init__(self, name: str = "", *, default: str | None = None) -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        fields = correlation_fields()
        d = record.__dict__
        for key in FIELDS:
            if key not in d:
                d[key] = self.default if fields is None or fields[key] is None else fields[key]
        return True


def install(
    logger: logging.Logger | str | None = None, *, default: str | None = None
) -> CorrelationFilter:
    """Adds a ``CorrelationFilter`` to ``logger`` (root if None) and to each of its current
    handlers; idempotent (an installed filter is reused). Returns the filter.

    A logger's own filters see only records logged on it, a handler's filters every record it
    handles (child loggers' too): handlers added later need ``handler.addFilter(filter)``.
    """
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    existing = [f for f in target.filters if isinstance(f, CorrelationFilter)]
    flt = existing[0] if existing else CorrelationFilter(default=default)
    if not existing:
        target.addFilter(flt)
    for handler in target.handlers:
        if not any(isinstance(f, CorrelationFilter) for f in handler.filters):
            handler.addFilter(flt)
    return flt


def uninstall(logger: logging.Logger | str | None = None) -> int:
    """Removes every ``CorrelationFilter`` from ``logger`` (root if None) and its handlers;
    returns how many were removed."""
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    removed = 0
    for filterer in (target, *target.handlers):
        for f in list(filterer.filters):
            if isinstance(f, CorrelationFilter):
                filterer.removeFilter(f)
                removed += 1
    return removed


def add_correlation(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: adds the correlation fields that are set (keys already in the
    event dict are kept). Use it before the renderer::

        structlog.configure(processors=[tracebus.logging.add_correlation, ...])
    """
    fields = correlation_fields()
    if fields is not None:
        for key in FIELDS:
            value = fields[key]
            if value is not None:
                event_dict.setdefault(key, value)
    return event_dict
