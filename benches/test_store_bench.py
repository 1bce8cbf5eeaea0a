"""Event creation (h) and the state store from Python, against dataclasses and a dict store.
Run: ``python -m pytest benches --benchmark-only``."""

from __future__ import annotations

from typing import Any

import pytest
from peers import Case, Contender, params


@pytest.mark.parametrize(("case", "contender"), params("h"))
def test_event_creation(run_case: Any, case: Case, contender: Contender) -> None:
    """(h) ServiceStateEvent(...) with fresh event and correlation ids."""
    run_case(case, contender)


@pytest.mark.parametrize(("case", "contender"), params("store"))
def test_store_set_get(run_case: Any, case: Case, contender: Contender) -> None:
    """set_service_state + get_service_state (2 ops per update)."""
    run_case(case, contender)
