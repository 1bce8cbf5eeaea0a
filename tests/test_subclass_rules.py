"""Event subclasses with their own ``__new__``: refused at definition unless they say how
they are rebuilt (``__getnewargs_ex__``); severity spellings are one parser everywhere."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import tracebus as tb
from tracebus import Event, Severity, SqliteEventStore, decode_event, encode_event


def test_subclass_with_own_new_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"Deploy defines its own __new__.*__getnewargs_ex__"):

        class Deploy(Event):
            def __new__(cls, version: int, **kw: Any) -> Deploy:
                return super().__new__(cls, "health.check", "ci", **kw)


class Rebuilt(Event):
    """A subclass with its own ``__new__`` that says how it is rebuilt."""

    def __new__(cls, version: int, **kw: Any) -> Rebuilt:
        self = super().__new__(cls, "health.check", "ci", **kw)
        self.version = version
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        _, kwargs = super().__getnewargs_ex__()
        return (self.version,), kwargs


def test_subclass_with_new_and_getnewargs_round_trips(tmp_path: Any) -> None:
    e = Rebuilt(7, severity="warn")
    d = decode_event(encode_event(e))
    assert type(d) is Rebuilt and d.version == 7 and d.event_id == e.event_id
    assert d.severity == Severity.WARN
    assert pickle.loads(pickle.dumps(e)).version == 7
    assert e.with_metadata("k", 1).version == 7
    with SqliteEventStore(tmp_path / "s.db") as s:
        s.append(e)
        (back,) = list(s.replay())
    assert type(back) is Rebuilt and back.version == 7


def test_subclass_without_new_needs_nothing() -> None:
    class Plain(Event):
        pass

    assert Plain("health.check", "x").source == "x"


def test_init_subclass_refuses_unknown_keywords() -> None:
    with pytest.raises(TypeError, match="no keyword arguments"):

        class K(Event, flavour=1):  # type: ignore[call-arg]
            pass


def test_docstring_states_the_rule() -> None:
    assert "__getnewargs_ex__" in (Event.__doc__ or "")


@pytest.mark.parametrize("spelling", ["warn", "WARN", "Warn", "warning", "WARNING"])
def test_severity_spellings_everywhere(spelling: str) -> None:
    assert Severity(spelling) is Severity.WARN
    assert repr(tb.filter_by_severity(spelling)) == "Filter(severity >= warn)"
    assert Event("health.check", "x", severity=spelling).severity is Severity.WARN
    assert Severity.ERROR > spelling


def test_severity_bad_spelling_names_the_allowed() -> None:
    with pytest.raises(ValueError, match="allowed values"):
        Severity("warnings")
    with pytest.raises(ValueError, match=r"minimum must be one of .*warning"):
        tb.filter_by_severity("loud")
