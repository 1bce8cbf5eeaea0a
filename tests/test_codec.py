"""JSON encoding of events: every kind round-trips exactly; bad payloads name the field."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracebus import (
    DependencyEvent,
    Event,
    EventType,
    HealthEvent,
    HealthStatusUpdate,
    ManagedServiceUpdate,
    ServiceState,
    ServiceStateEvent,
    ServiceType,
    SystemEvent,
    UserActionEvent,
    correlation,
    decode_event,
    encode_event,
    register_event_type,
)

register_event_type("codec.custom")


class DeployEvent(Event):
    """A user subclass with extra instance state."""


def _same(a: Event, b: Event) -> None:
    assert type(a) is type(b)
    assert a.__getnewargs_ex__() == b.__getnewargs_ex__()
    assert a.header_dict() == b.header_dict()
    assert str(a) == str(b)


def all_kinds() -> list[Event]:
    with correlation("codec_test") as ctx:
        update = ManagedServiceUpdate(
            ServiceType.PORT_FORWARD, "pf-1", ServiceState.RUNNING, proxy_port=8080, pid=42
        )
        sse = ServiceStateEvent.from_update(update, ServiceState.STARTING)
        failed = sse.with_error("connection refused")
        health = HealthEvent.from_update(
            HealthStatusUpdate(
                "ctx", "golem", True, False, ready_nodes=1, total_nodes=3, error="down"
            )
        )
        recovered = HealthEvent("ctx", "alpha", False, True, 3, 3, recovered=True)
        dep = DependencyEvent("k8s-mc", ServiceType.KUBE_OPERATION, ["pf-1", "pf-2"], "stop")
        single = DependencyEvent("pf-1", "PortForward", ["mcp-1"], "start", cascade=False)
        user = UserActionEvent("restart", ServiceType.MCP_SERVER, "mcp-1")
        system = SystemEvent("orchestrator", "config_change", "reloaded")
        custom = Event(
            "codec.custom",
            "plugin",
            severity="warn",
            metadata={"n": 1, "nested": {"list": [1, 2.5, "x", None, True]}, "text": "é ✓"},
        )
        sub = DeployEvent(EventType.CONFIG_CHANGE, "deployer", metadata={"v": 2})
        sub.version = "1.2.3"
        assert ctx.correlation_id == sse.correlation_id
    return [sse, failed, health, recovered, dep, single, user, system, custom, sub]


@pytest.mark.parametrize("event", all_kinds(), ids=lambda e: type(e).__name__ + ":" + str(e.type))
def test_round_trip_is_exact(event: Event) -> None:
    text = encode_event(event)
    parsed = json.loads(text)
    assert parsed["class"].startswith(("tracebus:", __name__ + ":"))
    back = decode_event(text)
    _same(event, back)
    assert back.event_id == event.event_id
    assert back.correlation_id == event.correlation_id
    assert back.parent_id == event.parent_id
    assert back.timestamp == event.timestamp
    assert dict(back.metadata) == dict(event.metadata)
    # bytes and the parsed object decode too
    _same(event, decode_event(text.encode()))
    _same(event, decode_event(parsed))


def test_subclass_state_round_trips() -> None:
    e = DeployEvent("codec.custom", "deployer")
    e.version = "2.0"
    back = decode_event(encode_event(e))
    assert isinstance(back, DeployEvent)
    assert back.version == "2.0"


def test_timestamp_float_is_exact() -> None:
    e = Event(EventType.SYSTEM_STARTUP, "x", timestamp=1795747610.5830863)
    assert decode_event(encode_event(e)).timestamp == 1795747610.5830863


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"when": object()}, "metadata['when']"),
        ({"deep": {"list": [1, {1, 2}]}}, "metadata['deep']['list'][1]"),
        ({"nan": math.nan}, "metadata['nan']"),
        ({"bytes": b"x"}, "metadata['bytes']"),
        ({"d": {3: "int key"}}, "metadata['d']: key 3 is a int"),
    ],
)
def test_unencodable_payload_names_the_field(metadata: dict[str, object], field: str) -> None:
    # Refused when the event is made (not accepted, then dropped when it is stored).
    with pytest.raises(TypeError) as info:
        Event(EventType.CONFIG_CHANGE, "x", metadata=metadata)
    assert field in str(info.value)


def test_unencodable_subclass_attribute_names_it() -> None:
    e = DeployEvent("codec.custom", "deployer")
    e.handle = open  # a function is not a JSON value
    with pytest.raises(TypeError, match="attribute handle"):
        encode_event(e)


def test_local_class_is_refused_clearly() -> None:
    class Local(Event):
        pass

    with pytest.raises(TypeError, match="defined inside a function"):
        encode_event(Local("codec.custom", "x"))


def test_encode_rejects_non_events() -> None:
    with pytest.raises(TypeError, match="event must be a tracebus Event"):
        encode_event({"type": "x"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"class": "tracebus:Event"}', "'class', 'args' and 'kwargs'"),
        ('{"class": "nope.nothing:Thing", "args": [], "kwargs": {}}', "unknown event class"),
        ('{"class": "json:JSONDecoder", "args": [], "kwargs": {}}', "unknown event class"),
        ('{"class": "no-colon", "args": [], "kwargs": {}}', "unknown event class"),
        ('{"class": "tracebus:Event", "args": {}, "kwargs": {}}', "must be a list"),
        (
            '{"class": "tracebus:Event", "args": ["config.change", "x"], "kwargs": {"pid": 1}}',
            "cannot rebuild tracebus:Event",
        ),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
    ],
)
def test_decode_bad_input_raises_value_error(data: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_event(data)


def test_decode_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="data must be"):
        decode_event(42)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decoding_random_input_only_raises_value_error(data: bytes | str) -> None:
    try:
        decode_event(data)
    except ValueError:
        pass


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"class": st.sampled_from(["tracebus:Event", "tracebus:HealthEvent"])}
    ).flatmap(
        lambda d: st.fixed_dictionaries(
            {
                **{k: st.just(v) for k, v in d.items()},
                "args": st.lists(_json_values, max_size=8),
                "kwargs": st.dictionaries(
                    st.sampled_from(
                        [
                            "source",
                            "severity",
                            "metadata",
                            "event_id",
                            "timestamp",
                            "correlation_id",
                            "bogus",
                        ]
                    ),
                    _json_values,
                    max_size=4,
                ),
            }
        )
    )
)
def test_decoding_random_structures_only_raises_value_error(parts: dict[str, object]) -> None:
    try:
        decode_event(json.dumps(parts))
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _json_values, max_size=5))
def test_any_json_metadata_round_trips(metadata: dict[str, object]) -> None:
    e = Event(EventType.CONFIG_CHANGE, "x", metadata=metadata)
    back = decode_event(encode_event(e))
    assert dict(back.metadata) == json.loads(json.dumps(metadata))
