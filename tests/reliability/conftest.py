"""Reliability suite plumbing: the size switch, per-test timeouts with tracebacks on a hang,
and the one-line figures every test reports.

``TRACEBUS_STRESS=<n>`` (default 1) multiplies the sizes of every test in this folder; the
default sizes finish in a few minutes on two busy cores, ``TRACEBUS_STRESS=10`` is a soak.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator

import pytest
from reliability_util import FIGURE_KEYS, STRESS, Figures

# Per-test budget: generous at CI size, scaled with the stress multiplier. A test that hangs
# dumps every thread's traceback (faulthandler) shortly before pytest-timeout fails it.
TEST_TIMEOUT = 240 * max(1, STRESS)

_LINES: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # With filterwarnings=error, hypothesis's failure report (it imports mypy_extensions)
    # turns a falsified property into an INTERNALERROR; keep the real failure visible.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture(autouse=True)
def _dump_tracebacks_on_hang(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(TEST_TIMEOUT)
    # Fires before pytest-timeout so the traceback of every thread reaches the log.
    faulthandler.dump_traceback_later(max(1.0, limit - 5.0), exit=False, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        outcome = "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        item.stash[_OUTCOME] = outcome
    return report


_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The test's figures line: fill it in, it is printed (and repeated in the terminal
    summary) when the test ends, with the test's outcome."""
    f = Figures(request.node.name)
    yield f
    f.extra["outcome"] = request.node.stash.get(_OUTCOME, "?")
    line = f.line()
    print("\n" + line)
    _LINES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _LINES:
        return
    terminalreporter.section(f"tracebus reliability figures (TRACEBUS_STRESS={STRESS})")
    terminalreporter.write_line("fields: " + ", ".join(FIGURE_KEYS))
    for line in _LINES:
        terminalreporter.write_line(line)
