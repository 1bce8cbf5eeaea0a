"""Event bus cases (a)-(g): tracebus against the hand-written dispatcher, pyee, blinker,
aiopubsub, reactivex and stdlib queues. Run: ``python -m pytest benches --benchmark-only``."""

from __future__ import annotations

from typing import Any

import pytest
from peers import Case, Contender, params


@pytest.mark.parametrize(("case", "contender"), params("a", "b", "c", "c'"))
def test_sync_dispatch(run_case: Any, case: Case, contender: Contender) -> None:
    """(a) 1 handler, (b) 10 handlers, (c)/(c') 100/10,000 filtered subscribers, 1 matches."""
    run_case(case, contender)


@pytest.mark.parametrize(("case", "contender"), params("d"))
def test_async_handler(run_case: Any, case: Case, contender: Contender) -> None:
    """(d) one async handler on an asyncio loop."""
    run_case(case, contender)


@pytest.mark.parametrize(("case", "contender"), params("e"))
def test_adapter_report(run_case: Any, case: Case, contender: Contender) -> None:
    """(e) EventBusAdapter.report: store transition, event, one handler."""
    run_case(case, contender)


@pytest.mark.parametrize(("case", "contender"), params("f", "g"))
def test_channels(run_case: Any, case: Case, contender: Contender) -> None:
    """(f) publish_many into a drained channel; (g) publisher thread to consumer thread."""
    run_case(case, contender)
