"""The protocol both ways: server events encode (what the simulator sends) and client events decode
(what the simulator reads), each the exact inverse of the SDK's direction."""

from __future__ import annotations

import contextlib
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt import events as ev
from dashscope_rt.errors import InvalidInput, ProtocolError
from dashscope_rt.events import (
    CLIENT_EVENT_TYPES,
    SERVER_EVENT_TYPES,
    decode,
    decode_client,
    encode,
    encode_server,
)

FIXTURES = Path(__file__).parent / "fixtures" / "events"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
texts = st.text(max_size=12)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotated field type of the event classes (valid on the wire)."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return st.none() | st.one_of(*(_strategy(a) for a in rest))
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return st.one_of(*(_strategy(a) for a in args))
    if tp is str:
        return texts
    if tp is int:
        return st.integers(-(2**53), 2**53)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is bool:
        return st.booleans()
    if tp is bytes:
        return st.binary(max_size=64)
    if origin is Mapping or origin is dict:
        return json_objects
    if origin is tuple:
        return st.lists(_strategy(args[0]), max_size=3).map(tuple)
    if attrs.has(tp):
        return _objects(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def _objects(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in attrs.fields(cls) if f.name not in ("raw",)}
    return st.builds(cls, **fields)


server_events = st.one_of(
    *(_objects(cls) for cls in SERVER_EVENT_TYPES.values()),
    # The legacy reader takes an empty request_id or finish_reason for a missing one.
    _objects(ev.LegacyChoices).map(
        lambda e: attrs.evolve(
            e, request_id=e.request_id or None, finish_reason=e.finish_reason or None
        )
    ),
    st.builds(
        ev.UnknownEvent,
        type=texts.filter(lambda t: t not in SERVER_EVENT_TYPES),
        event_id=st.none() | texts,
    ),
)


@settings(max_examples=500, deadline=None)
@given(server_events)
def test_decode_of_encode_server_is_identity(event: Any) -> None:
    frame = encode_server(event)
    back = decode(frame)
    if event.event_id is None:  # encode_server gave it a fresh id
        assert isinstance(back.event_id, str) and back.event_id.startswith("event_")
        back = attrs.evolve(back, event_id=None)
    assert back == event
    assert decode(frame.encode("utf-8")) == decode(frame)  # the bytes route agrees


@settings(max_examples=200, deadline=None)
@given(server_events, texts)
def test_encode_server_event_id(event: Any, eid: str) -> None:
    assert json.loads(encode_server(event, event_id=eid))["event_id"] == eid
    if event.event_id is not None:
        assert json.loads(encode_server(event))["event_id"] == event.event_id


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_decoded_fixture_writes_back_its_frame(path: Path) -> None:
    frame = json.loads(path.read_text("utf-8"))
    event = decode(json.dumps(frame))
    assert event.to_wire() == frame
    assert json.loads(encode_server(event, event_id="event_1")) == {**frame, "event_id": "event_1"}


def test_built_events_have_the_documented_shape() -> None:
    error = ev.ErrorEvent(error=ev.ErrorDetail(type="server_error", message="boom"))
    assert error.to_wire() == {
        "type": "error",
        "error": {"type": "server_error", "code": None, "message": "boom", "param": None},
    }
    item = ev.Item(id="item_1", type="message", role="assistant")
    assert item.to_wire() == {"id": "item_1", "type": "message", "role": "assistant", "content": []}
    call = ev.Item(id="item_2", type="function_call", call_id="call_1", name="f", arguments="")
    assert "content" not in call.to_wire() and call.to_wire()["arguments"] == ""
    delta = ev.ResponseAudioDelta(event_id="event_1", response_id="resp_1", audio=b"\x01\x02")
    assert list(delta.to_wire()) == ["event_id", "type", "response_id", "delta"]
    assert delta.to_wire()["delta"] == "AQI="
    created = ev.ResponseCreated(response=ev.Response(id="resp_1"))
    assert created.to_wire()["response"] == {"id": "resp_1", "output": []}
    partial = ev.SessionUpdated(session=ev.SessionInfo(voice="Cherry"))
    assert partial.to_wire()["session"] == {"voice": "Cherry"}
    manual = attrs.evolve(partial, session=partial.session.with_nulls("turn_detection"))
    assert manual.to_wire()["session"] == {"voice": "Cherry", "turn_detection": None}
    assert decode(encode_server(manual, event_id="e")) == attrs.evolve(manual, event_id="e")
    vad = manual.session.with_nulls("turn_detection")
    assert attrs.evolve(vad, turn_detection={"type": "server_vad"}).to_wire() == {
        "voice": "Cherry",
        "turn_detection": {"type": "server_vad"},
    }
    with pytest.raises(ValueError, match="no field"):
        partial.session.with_nulls("nonexistent")


def test_decoded_event_keeps_unknown_keys_and_odd_values_when_rewritten() -> None:
    frame = {
        "event_id": "event_9",
        "type": "response.text.delta",
        "response_id": 7,  # wrong type: read as None, written back as it came
        "delta": "hi",
        "brand_new": {"x": [1, 2]},
    }
    event = decode(json.dumps(frame))
    assert isinstance(event, ev.ResponseTextDelta) and event.response_id is None
    assert event.to_wire() == frame
    assert attrs.evolve(event, delta="changed").to_wire()["delta"] == "changed"


def test_encode_server_refuses_client_events_and_nan() -> None:
    with pytest.raises(InvalidInput):
        encode_server(ev.ResponseCancel())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        encode_server(ev.SessionCreated(session=ev.SessionInfo(temperature=float("nan"))))


# --- client events ------------------------------------------------------------------------

client_events = st.one_of(
    st.builds(ev.SessionUpdate, session=json_objects, event_id=texts),
    st.builds(ev.InputAudioBufferAppend, audio=st.binary(max_size=300), event_id=texts),
    st.builds(ev.InputAudioBufferCommit, event_id=texts),
    st.builds(ev.InputAudioBufferClear, event_id=texts),
    st.builds(ev.InputImageBufferAppend, image=st.binary(max_size=300), event_id=texts),
    st.builds(
        ev.ResponseCreate,
        instructions=st.none() | texts,
        modalities=st.none() | st.lists(texts, max_size=2).map(tuple),
        extra=st.dictionaries(
            texts.filter(lambda k: k not in ("instructions", "modalities")), json_values, max_size=2
        ),
        event_id=texts,
    ),
    st.builds(ev.ResponseCancel, event_id=texts),
    st.builds(ev.ConversationItemCreate, item=json_objects.filter(bool), event_id=texts),
    st.builds(ev.SessionFinish, event_id=texts),
)


@settings(max_examples=500, deadline=None)
@given(client_events)
def test_decode_client_of_encode_is_identity(event: Any) -> None:
    if not event.event_id:
        event = attrs.evolve(event, event_id="event_x")  # encode() replaces an empty id
    assert decode_client(encode(event)) == event
    assert decode_client(encode(event).encode("utf-8")) == event


def test_every_client_type_is_decoded() -> None:
    for etype, cls in CLIENT_EVENT_TYPES.items():
        assert etype == getattr(cls, "TYPE", None)
    assert set(CLIENT_EVENT_TYPES) == {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "input_image_buffer.append",
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "session.finish",
    }


@pytest.mark.parametrize(
    ("frame", "param", "missing"),
    [
        ("{not json", None, False),
        ("[1, 2]", None, False),
        ('{"type": "no.such"}', "type", False),
        ('{"event_id": "e1"}', "type", False),
        ('{"type": "input_audio_buffer.append"}', "audio", True),
        ('{"type": "input_audio_buffer.append", "audio": "not base64!"}', "audio", False),
        ('{"type": "input_audio_buffer.append", "audio": "AAE"}', "audio", False),  # padding
        ('{"type": "input_audio_buffer.append", "audio": 5}', "audio", False),
        ('{"type": "input_image_buffer.append", "image": "AA\\nAA=="}', "image", False),
        ('{"type": "session.update"}', "session", True),
        ('{"type": "session.update", "session": []}', "session", True),
        ('{"type": "conversation.item.create", "item": {}}', "item", True),
        ('{"type": "response.create", "response": 3}', "response", False),
        (
            '{"type": "response.create", "response": {"modalities": "text"}}',
            "response.modalities",
            False,
        ),
        (
            '{"type": "response.create", "response": {"instructions": 1}}',
            "response.instructions",
            False,
        ),
    ],
)
def test_decode_client_names_what_is_wrong(frame: str, param: str | None, missing: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(frame)
    assert info.value.param == param and info.value.missing is missing
    if param is not None:
        assert isinstance(info.value.frame, dict)  # the caller can still read its event_id


def test_decode_client_keeps_what_the_official_sdk_sends() -> None:
    event = decode_client(
        '{"event_id":"e","type":"response.create","response":{"conversation":"none"}}'
    )
    assert event == ev.ResponseCreate(extra={"conversation": "none"}, event_id="e")
    assert decode_client('{"type":"session.update","session":{}}') == ev.SessionUpdate(session={})
    assert decode_client('{"type":"input_audio_buffer.append","audio":""}') == (
        ev.InputAudioBufferAppend(audio=b"")
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values.map(json.dumps), st.text(), st.binary()))
def test_decode_client_raises_only_protocol_error(frame: Any) -> None:
    with contextlib.suppress(ProtocolError):
        decode_client(frame)


def _real_frames(direction: str) -> list[Any]:
    cases = []
    for path in sorted((Path(__file__).parent / "fixtures" / "real").glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text("utf-8").splitlines()[1:] if x]
        for n, row in enumerate(rows, start=2):
            if row.get("dir") == direction and "frame" in row:
                cases.append(pytest.param(row["frame"], id=f"{path.stem}:{n}"))
    return cases


@pytest.mark.parametrize("frame", _real_frames("recv"))
def test_captured_server_frame_writes_back_unchanged(frame: dict[str, Any]) -> None:
    assert decode(json.dumps(frame)).to_wire() == frame


@pytest.mark.parametrize("frame", _real_frames("send"))
def test_captured_client_frame_decodes_and_encodes_back(frame: dict[str, Any]) -> None:
    back = json.loads(encode(decode_client(json.dumps(frame))))
    if "event_id" not in frame:  # encode() gives every event an id
        assert back.pop("event_id").startswith("event_")
    assert back == frame
