"""Typed events: decoding of every documented server payload, encoding of client events,
robustness (only ProtocolError) and the audio-delta fast path against the plain route."""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashscope_rt import _decode as dec
from dashscope_rt import _decode_audio as audio_path
from dashscope_rt import events as ev
from dashscope_rt.errors import InvalidInput, ProtocolError
from dashscope_rt.events import (
    SERVER_EVENT_TYPES,
    ConversationItemCreate,
    InputAudioBufferAppend,
    LegacyChoices,
    ResponseAudioDelta,
    ResponseCreate,
    UnknownEvent,
    decode,
    encode,
)


def _decode(frame: Any) -> Any:
    """``decode`` typed loosely, so tests can read attributes without narrowing."""
    return decode(frame)


FIXTURES = Path(__file__).parent / "fixtures" / "events"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

# Fields a documented payload does not carry, so they must decode to None.
EXPECTED_NONE: dict[str, set[str]] = {
    "input_audio_buffer.committed": {"previous_item_id"},
    "conversation.item.created": {"previous_item_id"},
    "conversation.item.created.function_call": {"previous_item_id"},
    "conversation.item.input_audio_transcription.delta": {"delta"},
    "conversation.item.input_audio_transcription.failed": {"event_id"},
}

STEEL = "你好呀！有什么我可以帮你的吗？"


def _load(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def _check_error(e: Any) -> None:
    assert (e.error.type, e.error.code, e.error.param) == (
        "invalid_request_error",
        "invalid_value",
        "session.modalities",
    )
    assert e.error.message.startswith("Invalid modalities")


def _check_created(e: Any) -> None:
    s = e.session
    assert s.id == "sess_Ov7GOXoNXhNjlxXtOGKQS" and s.object == "realtime.session"
    assert s.model == "qwen3-omni-flash-realtime" and s.voice == "Cherry"
    assert s.modalities == ("text", "audio")
    assert s.input_audio_transcription == {"model": "qwen3-asr-flash-realtime"}
    assert s.turn_detection["silence_duration_ms"] == 800
    assert s.enable_search is False and s.tools == () and s.temperature == 0.8
    assert s.audio is None and s.tool_choice is None


def _check_created_35(e: Any) -> None:
    s = e.session
    assert s.model == "qwen3.5-omni-flash-realtime" and s.tool_choice == "auto"
    assert s.audio["input"]["format"] == {"type": "pcm", "sample_rate": 16000}
    assert s.audio["output"]["format"]["sample_rate"] == 24000


def _check_updated(e: Any) -> None:
    s = e.session
    assert s.instructions.startswith("你是个人助理小云")
    assert s.turn_detection["threshold"] == 0.1 and s.enable_search is True
    assert s.search_options == {"enable_source": True}
    assert s.tools[0]["function"]["name"] == "get_current_weather"
    assert s.max_response_output_token == "inf" and s.max_tokens == 16384
    assert (s.repetition_penalty, s.presence_penalty, s.top_k, s.top_p, s.seed) == (
        1.05,
        0.0,
        50,
        1.0,
        -1,
    )


def _check_fc_item(item: Any, status: str, arguments: str) -> None:
    assert item.type == "function_call" and item.status == status
    assert item.call_id == "call_bc0a7fb7235840f69ecfe4" and item.name == "get_current_weather"
    assert item.arguments == arguments and item.content == ()


def _check_response_done(e: Any) -> None:
    r = e.response
    assert r.status == "completed" and r.conversation_id == "conv_FjJaccpnvwHNo9cPVuzGc"
    assert r.output[0].content[0].transcript == STEEL
    assert r.output[0].content[0].text_or_transcript == STEEL and r.output[0].text == STEEL
    u = r.usage
    assert (u.total_tokens, u.input_tokens, u.output_tokens) == (377, 336, 41)
    assert u.input_tokens_details == {"text_tokens": 228, "audio_tokens": 108}
    assert u.output_tokens_details == {"text_tokens": 9, "audio_tokens": 32}
    assert u.plugins == {"search": {"count": 1, "strategy": "agent"}}


def _check_response_done_fc(e: Any) -> None:
    _check_fc_item(e.response.output[0], "completed", ' {"location": "杭州"}')
    assert e.response.usage.output_tokens_details == {"text_tokens": 41}
    assert e.response.usage.plugins is None


CHECKS: dict[str, Callable[[Any], Any]] = {
    "error": _check_error,
    "session.created": _check_created,
    "session.created.qwen3_5": _check_created_35,
    "session.updated": _check_updated,
    "input_audio_buffer.speech_started": lambda e: (
        (e.audio_start_ms, e.item_id) == (3647, "item_YbAiGvK2H7YaS34o4R6Ba") or _fail()
    ),
    "input_audio_buffer.speech_stopped": lambda e: e.audio_end_ms == 4453 or _fail(),
    "input_audio_buffer.committed": lambda e: e.item_id == "item_YbAiGvK2H7YaS34o4R6Ba" or _fail(),
    "input_audio_buffer.cleared": lambda e: e.event_id == "event_RoUu4T8yExPMI37GKwaOC" or _fail(),
    "conversation.item.created": lambda e: (
        (e.item.role, e.item.status, e.item.content[0].type)
        == ("user", "in_progress", "input_audio")
        or _fail()
    ),
    "conversation.item.created.function_call": lambda e: _check_fc_item(e.item, "in_progress", ""),
    "conversation.item.input_audio_transcription.delta": lambda e: (
        (e.text, e.stash, e.language, e.emotion, e.preview)
        == ("", "今天天气怎么样？", "zh", "neutral", "今天天气怎么样？")
        or _fail()
    ),
    "conversation.item.input_audio_transcription.completed": lambda e: (
        (e.transcript, e.content_index) == ("喂，你好。", 0) or _fail()
    ),
    "conversation.item.input_audio_transcription.failed": lambda e: (
        (e.item_id, e.error.code, e.error.message, e.error.param, e.error.type)
        == ("<item_id>", "<code>", "<message>", "<param>", None)
        or _fail()
    ),
    "response.created": lambda e: (
        (e.response.status, e.response.voice, e.response.output, e.response.usage)
        == ("in_progress", "Cherry", (), None)
        or _fail()
    ),
    "response.output_item.added": lambda e: (
        (e.item.role, e.item.content, e.output_index) == ("assistant", (), 0) or _fail()
    ),
    "response.output_item.added.function_call": lambda e: _check_fc_item(e.item, "in_progress", ""),
    "response.content_part.added": lambda e: (e.part.type, e.part.text) == ("audio", "") or _fail(),
    "response.audio_transcript.delta": lambda e: e.delta == "有什么" or _fail(),
    "response.audio.delta": lambda e: (
        (e.audio == struct.pack("<6h", 0, 1, 2, -1, 32767, -32768) and "delta" not in e.raw)
        or _fail()
    ),
    "response.audio_transcript.done": lambda e: e.transcript == STEEL or _fail(),
    "response.audio.done": lambda e: e.item_id == "item_Ls6MtCUWO7LM4E59QziNv" or _fail(),
    "response.text.delta": lambda e: e.delta == "喂" or _fail(),
    "response.text.done": lambda e: e.text == "How can I assist you today?" or _fail(),
    "response.content_part.done": lambda e: e.part.text_or_transcript == STEEL or _fail(),
    "response.output_item.done": lambda e: (
        (e.item.status, e.item.content[0].text, e.item.text) == ("completed", STEEL, STEEL)
        or _fail()
    ),
    "response.output_item.done.function_call": lambda e: _check_fc_item(
        e.item, "completed", ' {"location": "杭州"}'
    ),
    "response.function_call_arguments.delta": lambda e: (
        (e.call_id, e.delta) == ("call_2be200f4cafe419b9530dd", ' {"location": "北京"}') or _fail()
    ),
    "response.function_call_arguments.done": lambda e: (
        (e.name, e.parsed_arguments()) == ("get_current_weather", {"location": "北京"}) or _fail()
    ),
    "response.done": _check_response_done,
    "response.done.function_call": _check_response_done_fc,
    "session.finished": lambda e: e.event_id == "event_Bn9n6JQdyzXZnQ3iXzHJM" or _fail(),
}


def _fail() -> bool:
    raise AssertionError("value check failed")


def test_every_fixture_has_a_check_and_every_type_a_fixture() -> None:
    names = {p.name[: -len(".json")] for p in FIXTURE_FILES}
    assert names == set(CHECKS)
    types = {json.loads(p.read_text(encoding="utf-8"))["type"] for p in FIXTURE_FILES}
    assert types == set(SERVER_EVENT_TYPES)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_decodes_with_every_field(path: Path) -> None:
    name = path.name[: -len(".json")]
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    for frame in (text, text.encode("utf-8")):
        event = _decode(frame)
        cls: Any = SERVER_EVENT_TYPES[raw["type"]]
        assert type(event) is cls
        assert event.type == raw["type"] == type(event).TYPE
        expected_none = EXPECTED_NONE.get(name, set())
        for field in attrs.fields(type(event)):
            value = getattr(event, field.name)
            if field.name in expected_none:
                assert value is None, field.name
            else:
                assert value is not None, field.name
        if raw["type"] != "response.audio.delta":
            assert event.raw == raw
        else:
            assert event.raw == {k: v for k, v in raw.items() if k != "delta"}
        CHECKS[name](event)


def test_event_ids_are_read() -> None:
    for path in FIXTURE_FILES:
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert _decode(path.read_text(encoding="utf-8")).event_id == raw.get("event_id")


def test_audio_delta_repr_shows_length_not_audio() -> None:
    pcm = bytes(range(256)) * 20
    frame = json.dumps({"type": "response.audio.delta", "delta": base64.b64encode(pcm).decode()})
    event = _decode(frame)
    assert isinstance(event, ResponseAudioDelta) and event.audio == pcm
    assert "<5120 bytes>" in repr(event) and "AAEC" not in repr(event)
    assert "raw" not in repr(event)


def test_raw_excluded_from_equality() -> None:
    a = _decode('{"type":"response.audio.done","item_id":"i","x":1}')
    b = _decode('{"type":"response.audio.done","item_id":"i","x":2}')
    assert a == b and a.raw != b.raw
    assert a != _decode('{"type":"response.audio.done","item_id":"j"}')


def test_unknown_type_and_extra_fields_kept_in_raw() -> None:
    frame = '{"type":"rate_limits.updated","event_id":"e1","rate_limits":[{"name":"x"}]}'
    event = _decode(frame)
    assert isinstance(event, UnknownEvent)
    assert (event.type, event.event_id) == ("rate_limits.updated", "e1")
    assert event.raw == json.loads(frame)
    known = _decode('{"type":"response.text.delta","delta":"hi","obfuscation":"abc","z":[1]}')
    assert known.delta == "hi"
    assert known.raw["obfuscation"] == "abc" and known.raw["z"] == [1]
    assert not hasattr(known, "obfuscation")
    no_type = _decode('{"code":"InvalidParameter","message":"bad"}')
    assert isinstance(no_type, UnknownEvent) and no_type.type == ""


def test_missing_and_wrong_typed_fields_read_as_none() -> None:
    e = _decode('{"type":"input_audio_buffer.speech_started"}')
    assert (e.event_id, e.audio_start_ms, e.item_id) == (None, None, None)
    e = _decode('{"type":"input_audio_buffer.speech_started","audio_start_ms":"12","item_id":5}')
    assert (e.audio_start_ms, e.item_id) == (None, None)
    e = _decode('{"type":"response.done","response":{"output":[1,{"type":"message"}],"usage":7}}')
    assert len(e.response.output) == 1 and e.response.usage is None
    e = _decode('{"type":"error","error":"boom"}')
    assert e.error.message == "boom"  # issue #12: the text of a string error is kept
    e = _decode('{"type":"response.audio.delta","event_id":"x"}')
    assert e.audio == b"" and e.event_id == "x"
    e = _decode('{"type":"session.updated","session":{"temperature":true,"top_k":1.5}}')
    assert (e.session.temperature, e.session.top_k) == (None, None)


def test_parsed_arguments() -> None:
    def done(args: Any) -> Any:
        return _decode(
            json.dumps({"type": "response.function_call_arguments.done", "arguments": args})
        )

    assert done(' {"a": 1} ').parsed_arguments() == {"a": 1}
    assert done("").parsed_arguments() == {}
    assert done(None).parsed_arguments() == {}
    with pytest.raises(ProtocolError):
        done("{not json").parsed_arguments()


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "{",
        "[1, 2]",
        "42",
        "null",
        '"text"',
        b"\xff\xfe{}",
        b'{"type": "error"}\xc3',
        "[" * 100_000,
        '{"type":"response.audio.delta","delta":"QUJ"}',
        '{"type":"response.audio.delta","delta":"QUJD\u00e9"}',
        '{"type":"response.audio.delta","delta":12}',
        '{"type":"response.audio.delta","delta":"{base64 audio}"}',
        "\ufeff{}",
        '{"a": NaN',
    ],
)
def test_malformed_frames_raise_protocol_error(frame: Any) -> None:
    with pytest.raises(ProtocolError):
        _decode(frame)


def test_non_frame_argument_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _decode(12)


# ------------------------------------------------------------------------------ legacy choices


def test_legacy_output_choices_with_content_list() -> None:
    frame = {
        "status_code": 200,
        "request_id": "req-1",
        "output": {
            "choices": [
                {
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": [{"text": "你好"}, {"text": "!"}]},
                }
            ]
        },
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }
    event = _decode(json.dumps(frame))
    assert isinstance(event, LegacyChoices)
    assert (event.text, event.role, event.finish_reason) == ("你好!", "assistant", "stop")
    assert event.usage == {"input_tokens": 10, "output_tokens": 2}
    assert event.request_id == "req-1" and event.raw == frame


def test_legacy_string_content_and_openai_shapes() -> None:
    e = _decode('{"output":{"choices":[{"message":{"content":"hi"},"finish_reason":null}]}}')
    assert isinstance(e, LegacyChoices) and (e.text, e.finish_reason) == ("hi", None)
    e = _decode('{"id":"c1","choices":[{"delta":{"content":"yo"},"finish_reason":"length"}]}')
    assert isinstance(e, LegacyChoices)
    assert (e.text, e.finish_reason, e.request_id) == ("yo", "length", "c1")
    e = _decode('{"output":{"text":"plain","finish_reason":"stop"},"request_id":"r"}')
    assert isinstance(e, LegacyChoices) and (e.text, e.finish_reason) == ("plain", "stop")
    e = _decode('{"header":{"task_id":"t"},"payload":{"output":{"choices":[]}}}')
    assert isinstance(e, LegacyChoices) and (e.text, e.request_id) == ("", "t")
    e = _decode('{"choices":"nope"}')
    assert isinstance(e, UnknownEvent)


# ------------------------------------------------------------------------------ client events

PCM = struct.pack("<4h", 0, 1000, -1000, 32767)
DOC_SESSION = json.loads(
    """{"modalities": ["text", "audio"], "voice": "Chelsie", "input_audio_format": "pcm",
    "output_audio_format": "pcm", "instructions": "你是某五星级酒店的AI客服专员",
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 800},
    "seed": 1314, "max_tokens": 16384, "temperature": 0.9}"""
)

CLIENT_CASES: list[tuple[Any, dict[str, Any]]] = [
    (ev.SessionUpdate(session=DOC_SESSION), {"type": "session.update", "session": DOC_SESSION}),
    (
        InputAudioBufferAppend(audio=PCM),
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(PCM).decode()},
    ),
    (ev.InputAudioBufferCommit(), {"type": "input_audio_buffer.commit"}),
    (ev.InputAudioBufferClear(), {"type": "input_audio_buffer.clear"}),
    (
        ev.InputImageBufferAppend(image=b"\xff\xd8\xff\xe0jpeg"),
        {
            "type": "input_image_buffer.append",
            "image": base64.b64encode(b"\xff\xd8\xff\xe0jpeg").decode(),
        },
    ),
    (ResponseCreate(), {"type": "response.create"}),
    (
        ResponseCreate(instructions="Be brief.", modalities=("text",)),
        {
            "type": "response.create",
            "response": {"instructions": "Be brief.", "modalities": ["text"]},
        },
    ),
    (
        ResponseCreate(extra={"conversation": "none"}),
        {"type": "response.create", "response": {"conversation": "none"}},
    ),
    (ev.ResponseCancel(), {"type": "response.cancel"}),
    (
        ConversationItemCreate.function_call_output("call_62c24725afdb4c2680ac54", "霾转晴"),
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_62c24725afdb4c2680ac54",
                "output": "霾转晴",
            },
        },
    ),
    (
        ConversationItemCreate.user_text("今天天气怎么样？"),
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "今天天气怎么样？"}],
            },
        },
    ),
    (ev.SessionFinish(), {"type": "session.finish"}),
]


@pytest.mark.parametrize(("event", "expected"), CLIENT_CASES, ids=lambda x: type(x).__name__)
def test_client_event_encodes_to_documented_shape(event: Any, expected: dict[str, Any]) -> None:
    text = encode(event, event_id="event_B4o9RHSTWobB5OQdEHLTo")
    assert json.loads(text) == {"event_id": "event_B4o9RHSTWobB5OQdEHLTo", **expected}
    assert ": " not in text and ", " not in text.replace("今天天气怎么样？", "")
    generated = json.loads(encode(event))
    assert generated.pop("event_id").startswith("event_")
    assert generated == expected
    own = attrs.evolve(event, event_id="mine")
    assert json.loads(encode(own))["event_id"] == "mine"


def test_generated_ids_are_unique_uuid_hex() -> None:
    ids = {json.loads(encode(ev.ResponseCancel()))["event_id"] for _ in range(50)}
    assert len(ids) == 50
    for i in ids:
        assert i.startswith("event_") and len(i) == 6 + 32
        int(i[6:], 16)


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput):
        encode(InputAudioBufferAppend(audio="not bytes"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        encode(ev.SessionUpdate(session={"temperature": float("nan")}))
    with pytest.raises(InvalidInput):
        encode(ev.SessionUpdate(session={"x": object()}))
    with pytest.raises(InvalidInput):
        encode(UnknownEvent(type="x"))  # type: ignore[arg-type]


def test_append_repr_hides_audio() -> None:
    assert repr(InputAudioBufferAppend(audio=b"\x00" * 3200)).count("3200 bytes") == 1


def test_all_is_complete() -> None:
    public = {
        n
        for n, v in vars(ev).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == ev.__name__
    }
    assert public <= set(ev.__all__)
    for name in ev.__all__:
        assert hasattr(ev, name)


# ------------------------------------------------------------------------------ hypothesis

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = sorted(
    {f.name for cls in SERVER_EVENT_TYPES.values() for f in attrs.fields(cls)}
    | {"delta", "choices", "output", "message", "content", "usage", "payload", "header"}
)


@st.composite
def typed_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Objects with a known (or missing) type and arbitrary values under known field names."""
    d = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=6))
    t = draw(st.sampled_from([*SERVER_EVENT_TYPES, None, 5]))
    if t is not None:
        d["type"] = t
    return d


def _decode_or_protocol_error(frame: Any) -> None:
    try:
        event = _decode(frame)
    except ProtocolError:
        return
    repr(event)  # reprs of tolerant values must not fail either


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decode_any_json_value_only_protocol_error(value: Any) -> None:
    _decode_or_protocol_error(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(typed_dicts())
def test_decode_typed_garbage_only_protocol_error(value: dict[str, Any]) -> None:
    _decode_or_protocol_error(json.dumps(value))
    _decode_or_protocol_error(json.dumps(value).encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_decode_any_text_or_bytes_only_protocol_error(frame: Any) -> None:
    _decode_or_protocol_error(frame)


# Fast-path equivalence. Frames are assembled as text so that key order, whitespace,
# escapes, duplicate and nested keys and broken base64 all occur.

IDS = st.from_regex(r"(event|resp|item)_[A-Za-z0-9]{0,21}", fullmatch=True)
WS = st.sampled_from(["", " ", "  ", "\n", "\t", "\r\n "])
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@st.composite
def b64_bodies(draw: st.DrawFn) -> str:
    """A JSON string body (between the quotes) meant as base64, sometimes broken or escaped."""
    pcm = draw(st.binary(max_size=300))
    body = base64.b64encode(pcm).decode()
    kind = draw(st.sampled_from(["plain"] * 5 + ["slash", "mangle", "pad", "unicode", "raw"]))
    if kind == "slash":
        body = body.replace("/", "\\/")
    elif kind == "mangle" and body:
        i = draw(st.integers(0, len(body)))
        junk = draw(
            st.sampled_from(["\\n", "\\\\", "\\u0041", "!", " ", "=", "==", "\\/", "A", '\\"', "é"])
        )
        body = body[:i] + junk + body[i:]
    elif kind == "pad":
        body = body.rstrip("=") + draw(st.sampled_from(["", "=", "==", "==="]))
    elif kind == "unicode":
        body += draw(st.text(max_size=3))
    elif kind == "raw":
        body = draw(st.text(alphabet=B64_ALPHABET + '=\\"\n\t ', max_size=40))
    return body


@st.composite
def audio_frames(draw: st.DrawFn) -> str:
    delta_key = draw(st.sampled_from(['"delta"'] * 6 + ['"\\u0064elta"', '"delta "']))
    type_value = draw(
        st.sampled_from(
            ['"response.audio.delta"'] * 4
            + ['"response.text.delta"', '"response.audio.delta\\u0020"', "null"]
        )
    )
    ascii_only = draw(st.booleans())

    def value(strategy: st.SearchStrategy[Any]) -> str:
        return json.dumps(draw(st.one_of(IDS, strategy)), ensure_ascii=ascii_only)

    members = [
        ('"type"', type_value),
        (delta_key, '"' + draw(b64_bodies()) + '"'),
        ('"event_id"', value(st.text(max_size=12))),
        ('"response_id"', value(st.text(alphabet='abc_\\/"é', max_size=8))),
        ('"item_id"', value(json_values)),
        ('"output_index"', json.dumps(draw(st.one_of(st.integers(), st.booleans(), st.none())))),
    ]
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    ('"content_index"', "0"),
                    ('"nested"', '{"delta":"AAAA"}'),
                    ('"nested"', '{"x":{"delta":"QUJD"}}'),
                    ('"text"', '"\\"delta\\": \\"AAAA\\""'),
                    ('"delta"', '"QUJD"'),
                    ('"delta"', '""'),
                    ('"delta"', "null"),
                    ('"type"', '"response.audio.delta"'),
                    ('"type"', '"other"'),
                    ('"note"', '"delta"'),
                    ('"uni"', '"你好 \\ud83d\\ude00"'),
                    ('"list"', '[1, "delta", {"delta": "QUJD"}]'),
                ]
            ),
            max_size=2,
        )
    )
    if draw(st.booleans()):
        extras = []
    members += extras
    members = draw(st.permutations(members))
    parts = [draw(WS) + k + draw(WS) + ":" + draw(WS) + v + draw(WS) for k, v in members]
    text = "{" + ",".join(parts) + "}"
    if draw(st.integers(0, 20)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated frame
    return draw(WS) + text + draw(WS)


def _outcome(fn: Callable[[Any], Any], frame: Any) -> Any:
    try:
        event = fn(frame)
    except ProtocolError:
        return ProtocolError
    return (type(event), event, dict(event.raw))


PYBASE64 = vars(audio_path)["pybase64"]  # the optional accelerator the fast path found, or None
BASE64_BACKENDS = ["binascii"] + (["pybase64"] if PYBASE64 is not None else [])


@pytest.mark.parametrize("backend", BASE64_BACKENDS)
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=audio_frames(), as_bytes=st.booleans())
def test_fast_path_equals_json_loads_route(backend: str, frame: str, as_bytes: bool) -> None:
    """Whichever base64 backend is installed, the fast path decodes exactly like json.loads."""
    with mock.patch.object(audio_path, "pybase64", PYBASE64 if backend == "pybase64" else None):
        _check_fast_path_equals_json_loads_route(frame, as_bytes)


def _check_fast_path_equals_json_loads_route(frame: str, as_bytes: bool) -> None:
    data: Any = frame.encode("utf-8") if as_bytes else frame
    slow = _outcome(dec._decode_slow, data)
    assert _outcome(decode, data) == slow
    fast = audio_path._decode_audio_fast(frame)  # below decode()'s size threshold too
    fast_bytes = audio_path._decode_audio_fast_bytes(frame.encode("utf-8"))
    assert (fast is None) == (fast_bytes is None)
    if fast_bytes is not None:
        assert (type(fast_bytes), fast_bytes, dict(fast_bytes.raw)) == slow
    if fast is not None:
        assert (type(fast), fast, dict(fast.raw)) == slow
        d = json.loads(frame)
        assert fast.audio == base64.b64decode(d["delta"])
        assert fast.raw == {k: v for k, v in d.items() if k != "delta"}
    if slow is not ProtocolError and slow[0] is ResponseAudioDelta:
        d = json.loads(frame)
        expected = b"" if d.get("delta") is None else base64.b64decode(d["delta"])
        assert slow[1].audio == expected


def test_fast_path_taken_for_realistic_frames() -> None:
    pcm = bytes(range(256)) * 19
    for sep in ((",", ":"), (", ", ": ")):
        frame = json.dumps(
            {
                "event_id": "event_1",
                "type": "response.audio.delta",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(pcm).decode(),
            },
            separators=sep,
        )
        fast = audio_path._decode_audio_fast(frame)
        assert fast is not None and fast == dec._decode_slow(frame) and fast.audio == pcm
        fast = audio_path._decode_audio_fast_bytes(frame.encode())
        assert fast is not None and fast == dec._decode_slow(frame) and fast.audio == pcm
        escaped = frame.replace("/", "\\/")
        fast = audio_path._decode_audio_fast(escaped)
        assert fast is not None and fast.audio == pcm


def test_fast_path_rejects_tricks() -> None:
    good = base64.b64encode(b"\x01\x02\x03" * 200).decode()
    head = '{"type":"response.audio.delta"'
    tricks = [
        head + ',"x":{"delta":"' + good + '"},"delta":"QUJD"}',
        head + ',"delta":"' + good + '","\\u0064elta":"QUJD"}',
        head + ',"delta":"' + good + '\\n"}',
        '{"type":"response.text.delta","delta":"' + good + '"}',
        head + ',"delta":"' + good + '","type":"x"}',
    ]
    for frame in tricks:
        assert audio_path._decode_audio_fast(frame) is None
        assert audio_path._decode_audio_fast_bytes(frame.encode()) is None
        assert _outcome(decode, frame) == _outcome(dec._decode_slow, frame)


def test_binascii_skips_invalid_chars_which_is_why_lengths_are_checked() -> None:
    # The premise of the length check in the fast path.
    assert binascii.a2b_base64("QU!JD") == b"ABC"


def test_bytes_like_frames() -> None:
    pcm = bytes(range(256)) * 4
    frame = json.dumps({"type": "response.audio.delta", "delta": base64.b64encode(pcm).decode()})
    for data in (frame, frame.encode(), bytearray(frame.encode()), memoryview(frame.encode())):
        event = _decode(data)
        assert isinstance(event, ResponseAudioDelta) and event.audio == pcm
    with pytest.raises(ProtocolError):
        _decode(frame.encode()[:-3] + b'\xff"}')


def test_generated_ids_are_unique_across_threads() -> None:
    import threading

    seen: list[list[str]] = [[] for _ in range(8)]

    def make(bucket: list[str]) -> None:
        bucket.extend(ev.new_event_id() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(b,)) for b in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    ids = [i for bucket in seen for i in bucket]
    assert len(ids) == 16000 == len(set(ids))
