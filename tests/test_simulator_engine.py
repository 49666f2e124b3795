"""Sans-IO tests of the simulator's parts: VAD, synthesis, JPEG parsing, responder, engine."""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt.models import get_model
from dashscope_rt.testing import (
    Behaviour,
    EnergyVAD,
    ScriptedReply,
    ScriptedToolCall,
    SimulatedSession,
    Turn,
    default_responder,
    image_tokens,
    jpeg_size,
    silence,
    speech_duration_s,
    synthesize,
    threshold_to_dbfs,
)
from dashscope_rt.testing._vad import level_dbfs

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def make_jpeg(w: int, h: int) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (w, h), (200, 30, 30)).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Driver:
    """Feeds a SimulatedSession on a fake clock and collects what it emits."""

    def __init__(self, model: str = "qwen3-omni-flash-realtime", **kw: Any) -> None:
        self.now = 100.0
        self.events: list[dict[str, Any]] = []
        self.closes: list[tuple[int, str]] = []
        self.s = SimulatedSession(get_model(model), now=self.now, **kw)
        self.pump()

    def pump(self) -> list[dict[str, Any]]:
        new = []
        for out in self.s.poll(self.now):
            if out.event is None:
                assert out.close is not None
                self.closes.append(out.close)
            else:
                new.append(out.event)
        self.events.extend(new)
        return new

    def send(self, etype: str, **fields: Any) -> list[dict[str, Any]]:
        self.s.receive(json.dumps({"type": etype, **fields}), self.now)
        return self.pump()

    def advance(self, seconds: float) -> list[dict[str, Any]]:
        self.now += seconds
        return self.pump()

    def append(self, pcm: bytes, chunk: int = 3200) -> list[dict[str, Any]]:
        out = []
        for i in range(0, len(pcm), chunk):
            out += self.send("input_audio_buffer.append", audio=b64(pcm[i : i + chunk]))
        return out


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# ---------------------------------------------------------------- speech & VAD


def test_synthesized_speech_is_audible_and_follows_text_length() -> None:
    short = synthesize("Hi.", 24000)
    long = synthesize("This is a much longer sentence with many more words in it.", 24000)
    assert len(long) > 3 * len(short)
    level = level_dbfs(long)
    assert level is not None and -30 < level < -6
    a = np.frombuffer(long, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(a))
    freqs = np.fft.rfftfreq(len(a), 1 / 24000)
    # Voice-band energy dominates: most energy between 80 Hz and 4 kHz.
    band = spectrum[(freqs > 80) & (freqs < 4000)].sum()
    assert band / spectrum.sum() > 0.8
    assert (
        abs(
            len(long) / 48000
            - speech_duration_s("This is a much longer sentence with many more words in it.")
        )
        < 0.05
    )
    assert synthesize("same", 16000) == synthesize("same", 16000)


def test_synthesize_makes_a_repeated_reply_once() -> None:
    """A load test asks hundreds of sessions for the same reply: it is synthesized once."""
    from dashscope_rt.testing._speech import _synthesize

    text = "a reply that every session of a load test gets"
    first = synthesize(text, 24000)
    hits = _synthesize.cache_info().hits
    assert synthesize(text, 24000) == first
    assert _synthesize.cache_info().hits == hits + 1
    assert synthesize(text, 16000) != first  # the rate is part of the key


def test_threshold_mapping_is_monotonic() -> None:
    assert threshold_to_dbfs(-1.0) == -60.0
    assert threshold_to_dbfs(0.5) == -30.0
    assert threshold_to_dbfs(1.0) == -20.0


def test_vad_detects_speech_then_silence() -> None:
    vad = EnergyVAD(rate=16000, threshold=0.5, silence_duration_ms=500)
    events = vad.feed(silence(400) + synthesize("hello world how are you", 16000) + silence(800))
    assert [e.kind for e in events] == ["start", "stop"]
    start, stop = events
    assert 400 <= start.ms <= 520
    assert stop.ms - start.ms > 800


def test_vad_threshold_changes_sensitivity() -> None:
    quiet = synthesize("quiet words spoken softly", 16000, level=0.01)  # about -45 dBFS
    assert EnergyVAD(threshold=0.5).feed(quiet + silence(1000)) == []
    assert [e.kind for e in EnergyVAD(threshold=-0.8).feed(quiet + silence(1000))] == [
        "start",
        "stop",
    ]


def test_vad_needs_the_full_silence_duration() -> None:
    speech = synthesize("one two three", 16000)
    vad = EnergyVAD(silence_duration_ms=1000)
    assert [e.kind for e in vad.feed(speech + silence(600))] == ["start"]
    assert [e.kind for e in vad.feed(silence(600))] == ["stop"]


# ---------------------------------------------------------------- images


@pytest.mark.parametrize(("w", "h"), [(640, 480), (1, 1), (1920, 1080)])
def test_jpeg_size_reads_sof(w: int, h: int) -> None:
    assert jpeg_size(make_jpeg(w, h)) == (w, h)


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_jpeg_size_never_crashes(data: bytes) -> None:
    result = jpeg_size(data)
    assert result is None or (isinstance(result[0], int) and isinstance(result[1], int))


def test_image_tokens_clamped() -> None:
    assert image_tokens(640, 480, 32) == 20 * 15
    assert image_tokens(10, 10, 28) == 4
    assert image_tokens(4000, 4000, 28) == 1280


# ---------------------------------------------------------------- responder


def test_default_responder_echoes_and_calls_tools() -> None:
    assert default_responder(Turn(transcript="good morning")).text == "You said: good morning"
    reply = default_responder(
        Turn(transcript="What's the weather in Hangzhou?", tools=(WEATHER_TOOL,))
    )
    assert reply.tool_calls == (ScriptedToolCall("get_current_weather", {"location": "Hangzhou"}),)
    assert (
        default_responder(Turn(transcript="tell me a joke", tools=(WEATHER_TOOL,))).tool_calls == ()
    )


# ---------------------------------------------------------------- engine


CREATED_KEYS = [
    "object",
    "model",
    "modalities",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "turn_detection",
    "id",
]


def test_session_created_is_the_captured_short_object() -> None:
    """docs/protocol.md §4.2: these keys in this order, per-model voice, formats, transcription."""
    for model, voice, formats, transcription in [
        ("qwen3.5-omni-flash-realtime", "Tina", ("pcm", "pcm"), "qwen3-asr-flash-realtime"),
        ("qwen3.8-omni-flash-realtime", "Chelsie", ("pcm16", "pcm24"), "gummy-realtime-v1"),
        ("qwen3-omni-flash-realtime", "Cherry", ("pcm", "pcm"), "qwen3-asr-flash-realtime"),
    ]:
        (created,) = Driver(model).events
        sess = created["session"]
        assert list(sess) == CREATED_KEYS
        assert sess["voice"] == voice
        assert (sess["input_audio_format"], sess["output_audio_format"]) == formats
        assert sess["input_audio_transcription"] == {"model": transcription}


def test_session_updated_echoes_a_base_set_and_what_was_sent() -> None:
    d = Driver("qwen3.8-omni-flash-realtime")
    sent = {"voice": "Serena", "turn_detection": None, "instructions": "Read aloud."}
    (updated,) = d.send("session.update", session=sent)
    sess = updated["session"]
    assert "turn_detection" not in sess  # omitted after null (captured)
    assert sess["voice"] == "Serena" and sess["instructions"] == "Read aloud."
    assert next(iter(sess)) == "id" and "temperature" not in sess and "tools" not in sess
    (again,) = d.send("session.update", session={"max_tokens": 64})
    assert (
        again["session"]["instructions"] == "Read aloud." and again["session"]["max_tokens"] == 64
    )


def test_session_created_full_echo_defaults_per_model() -> None:
    for model, voice, sampling in [
        ("qwen-omni-turbo-realtime", "Chelsie", 1.0),
        ("qwen3-omni-flash-realtime", "Cherry", 0.9),
        ("qwen3.5-omni-plus-realtime", "Tina", 0.7),
    ]:
        d = Driver(model, behaviour=Behaviour(session_echo="full"))
        (created,) = d.events
        sess = created["session"]
        assert created["type"] == "session.created"
        assert sess["voice"] == voice and sess["temperature"] == sampling
        assert sess["turn_detection"]["type"] == "server_vad"
        assert sess["input_audio_transcription"] == {"model": "qwen3-asr-flash-realtime"}
        assert ("audio" in sess) == model.startswith("qwen3.5")


@given(st.floats(min_value=-3, max_value=3, allow_nan=False))
@settings(max_examples=50, deadline=None)
def test_threshold_validation(threshold: float) -> None:
    d = Driver(behaviour=Behaviour(error_ids="present"))
    out = d.send(
        "session.update", session={"turn_detection": {"type": "server_vad", "threshold": threshold}}
    )
    if -1.0 <= threshold <= 1.0:
        assert types(out) == ["session.updated"]
        assert out[0]["session"]["turn_detection"]["threshold"] == threshold
    else:
        assert types(out) == ["error"]
        assert out[0]["error"]["param"] == "session.turn_detection.threshold"


@given(st.integers(min_value=0, max_value=10000))
@settings(max_examples=50, deadline=None)
def test_silence_duration_validation(ms: int) -> None:
    d = Driver()
    out = d.send("session.update", session={"turn_detection": {"silence_duration_ms": ms}})
    assert types(out) == (["session.updated"] if 200 <= ms <= 6000 else ["error"])


def test_vad_turn_commits_prefix_padding_and_bills_audio() -> None:
    got: list[int] = []

    def transcriber(pcm: bytes, rate: int) -> str:
        got.append(len(pcm))
        return "hello"

    d = Driver(transcriber=transcriber)
    d.send(
        "session.update",
        session={"turn_detection": {"prefix_padding_ms": 200, "silence_duration_ms": 400}},
    )
    speech = synthesize("hello there friend", 16000)
    d.append(silence(1000) + speech + silence(600))
    ts = types(d.events)
    assert ts.index("input_audio_buffer.speech_started") < ts.index(
        "input_audio_buffer.speech_stopped"
    )
    started = next(e for e in d.events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in d.events if e["type"] == "input_audio_buffer.speech_stopped")
    assert got, "the turn was committed"
    committed_ms = got[0] / 32
    assert committed_ms == pytest.approx(
        stopped["audio_end_ms"] - started["audio_start_ms"] + 200, abs=25
    )
    done = next(e for e in d.events if e["type"] == "response.done")
    usage = done["response"]["usage"]
    secs = committed_ms / 1000
    assert usage["input_tokens_details"]["audio_tokens"] == math.ceil(max(1.0, secs) * 12.5)


def test_realtime_pacing_on_a_fake_clock() -> None:
    d = Driver(behaviour=Behaviour(speed=1.0, chunk_ms=100), transcriber=lambda p, r: "x")
    d.send("session.update", session={"turn_detection": None})
    d.append(synthesize("test", 16000))
    d.send("input_audio_buffer.commit")
    first = d.send("response.create")
    n_audio_first = types(first).count("response.audio.delta")
    assert n_audio_first == 1  # only the chunk due now
    rest = d.advance(60.0)
    assert "response.done" in types(rest)
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in d.events if e["type"] == "response.audio.delta"
    )
    assert len(audio) == len(synthesize("You said: x", 24000))


def test_reply_with_text_and_tool_call_orders_items() -> None:
    d = Driver(
        "qwen3.5-omni-flash-realtime",
        responder=lambda turn: ScriptedReply(
            "Let me check.", [ScriptedToolCall("get_current_weather", {"location": "Paris"})]
        ),
        transcriber=lambda p, r: "weather?",
    )
    d.send("session.update", session={"turn_detection": None, "tools": [WEATHER_TOOL]})
    d.append(synthesize("weather", 16000))
    d.send("input_audio_buffer.commit")
    d.send("response.create")
    done = next(e for e in d.events if e["type"] == "response.done")
    out = done["response"]["output"]
    assert [o["type"] for o in out] == ["message", "function_call"]
    assert json.loads(out[1]["arguments"]) == {"location": "Paris"}


def test_idle_and_max_duration_timers() -> None:
    d = Driver(behaviour=Behaviour(idle_timeout_s=10, max_duration_s=100))
    assert d.advance(9.0) == []
    out = d.advance(1.5)
    assert out[0]["error"]["message"] == (
        "Your session was closed because no response was generated for 10 seconds."
    )
    assert d.closes == [(1000, out[0]["error"]["message"])]
    d2 = Driver(behaviour=Behaviour(idle_timeout_s=None, max_duration_s=100))
    d2.advance(100.0)
    assert d2.closes and "maximum duration" in d2.closes[0][1]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
SESSION_KEYS = [
    "modalities", "voice", "instructions", "input_audio_format", "output_audio_format", "audio",
    "smooth_output", "turn_detection", "input_audio_transcription", "temperature", "top_p", "top_k",
    "max_tokens", "repetition_penalty", "presence_penalty", "seed", "tools", "enable_search",
    "search_options", "unknown_key",
]  # fmt: skip


@given(
    st.sampled_from(
        ["qwen-omni-turbo-realtime", "qwen3-omni-flash-realtime", "qwen3.5-omni-plus-realtime"]
    ),
    st.dictionaries(st.sampled_from(SESSION_KEYS), json_values, max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_session_update_fuzz_never_crashes(model: str, session: dict[str, Any]) -> None:
    d = Driver(model)
    out = d.send("session.update", session=session)
    assert types(out) in (["session.updated"], ["error"])
    if out[0]["type"] == "error":
        assert set(out[0]["error"]) >= {"type", "code", "message", "param"}
    # Whatever happened, the session still answers.
    assert types(d.send("response.cancel")) == ["error"] or d.closes


CLIENT_TYPES = [
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
    "input_audio_buffer.clear", "input_image_buffer.append", "response.create", "response.cancel",
    "conversation.item.create", "session.finish", "no.such.event",
]  # fmt: skip


@given(
    st.lists(
        st.tuples(
            st.sampled_from(CLIENT_TYPES),
            st.dictionaries(
                st.sampled_from(["audio", "image", "item", "session", "response", "x"]),
                json_values,
                max_size=2,
            ),
        ),
        max_size=6,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_client_event_sequence_is_handled(events: list[tuple[str, dict[str, Any]]]) -> None:
    d = Driver("qwen3.5-omni-flash-realtime")
    for etype, fields in events:
        d.send(etype, **fields)
        d.advance(0.01)
    for e in d.events:
        assert isinstance(e["event_id"], str) and e["type"]
