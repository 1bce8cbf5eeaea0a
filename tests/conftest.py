"""Fixtures for the tracebus test suite. Helpers live in ``tb_support``.

Tests run against the installed package (``pip install .``), never the source tree.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tracebus import EventBus, StateStore


@pytest.fixture
def bus() -> Iterator[EventBus]:
    """An EventBus closed after the test."""
    b = EventBus()
    yield b
    b.close()


@pytest.fixture
def store() -> StateStore:
    """A fresh StateStore."""
    return StateStore()


@pytest.fixture
def errors() -> list[tuple[BaseException, object, object]]:
    """A list to collect (exc, event, subscription) from an on_error hook."""
    return []
