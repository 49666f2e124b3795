"""The simulator and the SDK share one source of truth: the simulator accepts exactly the session
configs the core accepts, takes its limits from :mod:`dashscope_rt.limits`, builds its events with
the core's classes and depends on the core only."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt import limits
from dashscope_rt.config import SemanticVAD, ServerVAD, SessionConfig
from dashscope_rt.errors import InvalidInput, UnsupportedByModel
from dashscope_rt.models import get_model
from dashscope_rt.testing import Behaviour, SimulatedSession

PACKAGE = Path(__file__).parent.parent / "dashscope_rt"
FLASH = "qwen3-omni-flash-realtime"
Q35 = "qwen3.5-omni-flash-realtime"
TURBO = "qwen-omni-turbo-realtime"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def update(model: str, session: dict[str, Any], **behaviour: Any) -> dict[str, Any]:
    """The one event the simulator answers a session.update with, in the documented shapes
    (codes and params in errors, the full echo): what these tests compare with the core."""
    documented = {"error_ids": "present", "session_echo": "full", **behaviour}
    s = SimulatedSession(get_model(model), behaviour=Behaviour(**documented))
    s.poll(0.0)  # session.created
    s.receive(json.dumps({"event_id": "event_u", "type": "session.update", "session": session}), 0)
    out = [o.event for o in s.poll(0.0) if o.event is not None]
    assert len(out) == 1, out
    return out[0]


def core_accepts(model: str, session: dict[str, Any]) -> bool:
    try:
        SessionConfig.from_wire(session, strict=True).to_wire(model)
    except InvalidInput:
        return False
    return True


numbers = st.one_of(
    st.integers(-20000, 40000),
    st.floats(-3.0, 3.0, allow_nan=False),
    st.booleans(),
    st.none(),
    st.just("0.5"),
)
VAD_KEYS = ["threshold", "silence_duration_ms", "prefix_padding_ms", "idle_timeout_ms"]
SAMPLING_KEYS = ["temperature", "top_p", "top_k", "presence_penalty", "repetition_penalty", "seed"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([FLASH, Q35]),
    st.sampled_from(["server_vad", "semantic_vad"]),
    st.dictionaries(st.sampled_from(VAD_KEYS), numbers, max_size=3),
    st.dictionaries(st.sampled_from(SAMPLING_KEYS), numbers, max_size=2),
    st.sampled_from([None, ["text"], ["audio"], ["audio", "text"], ["text", "text"], "text"]),
)
def test_simulator_accepts_exactly_what_the_core_accepts(
    model: str,
    vad_type: str,
    vad: dict[str, Any],
    sampling: dict[str, Any],
    modalities: Any,
) -> None:
    session: dict[str, Any] = {"turn_detection": {"type": vad_type, **vad}, **sampling}
    if modalities is not None:
        session["modalities"] = modalities
    answer = update(model, session)
    assert (answer["type"] == "session.updated") == core_accepts(model, session), answer
    if answer["type"] == "error":
        param = answer["error"]["param"]
        assert param.startswith("session.") and param != "session."


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"turn_detection": {"threshold": 1.5}}, "turn_detection.threshold"),
        ({"turn_detection": {"type": "loud_vad"}}, "turn_detection.type"),
        ({"turn_detection": 3}, "turn_detection"),
        (
            {"audio": {"input": {"format": {"sample_rate": 44100}}}},
            "audio.input.format.sample_rate",
        ),
        ({"audio": {"output": {"format": {"type": "mp3"}}}}, "audio.output.format.type"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"search_options": {"enable_source": 1}}, "search_options.enable_source"),
        ({"input_audio_transcription": "yes"}, "input_audio_transcription"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"seed": -2}, "seed"),
    ],
)
def test_strict_from_wire_names_the_wire_param(session: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SessionConfig.from_wire(session, strict=True)
    assert info.value.param == param
    tolerant = SessionConfig.from_wire(session)  # keeps the value aside (in an extra) instead
    assert tolerant != SessionConfig() and tolerant.to_wire(Q35) is not None


@pytest.mark.parametrize(
    ("model", "config", "param"),
    [
        (FLASH, SessionConfig(turn_detection=SemanticVAD()), "turn_detection.type"),
        (FLASH, SessionConfig(turn_detection=ServerVAD(idle_timeout_ms=9000)), None),
        (FLASH, SessionConfig(input_sample_rate=48000), "audio.input.format.sample_rate"),
        (FLASH, SessionConfig(enable_search=True), "enable_search"),
        (TURBO, SessionConfig(top_p=0.5), "top_p"),
        (FLASH, SessionConfig(voice="Nobody"), "voice"),
    ],
)
def test_model_checks_name_the_wire_param(
    model: str, config: SessionConfig, param: str | None
) -> None:
    with pytest.raises(UnsupportedByModel) as info:
        config.to_wire(model)
    assert info.value.param == (param or "turn_detection.idle_timeout_ms")


def test_prefix_padding_has_one_limit() -> None:
    # The simulator used to cap it at 10 s on its own; now both follow limits.py (no cap known).
    assert limits.VAD_PREFIX_PADDING_MS.hi is None
    answer = update(FLASH, {"turn_detection": {"prefix_padding_ms": 20000}})
    assert answer["session"]["turn_detection"]["prefix_padding_ms"] == 20000
    assert ServerVAD(prefix_padding_ms=20000).to_wire()["prefix_padding_ms"] == 20000
    assert update(FLASH, {"turn_detection": {"prefix_padding_ms": -1}})["type"] == "error"


def test_session_created_reports_the_core_defaults() -> None:
    s = SimulatedSession(get_model(Q35), behaviour=Behaviour(session_echo="full"))
    (created,) = [o.event for o in s.poll(0.0)]
    assert created is not None
    session = created["session"]
    effective = SessionConfig().with_defaults(Q35)
    assert session["voice"] == effective.voice == get_model(Q35).default_voice
    assert session["turn_detection"] == {"type": "server_vad", **limits.SERVER_VAD_DEFAULTS}
    assert session["audio"]["output"]["format"]["sample_rate"] == get_model(Q35).output_rate
    assert session["seed"] == limits.DEFAULT_SEED
    assert tuple(session["modalities"]) == limits.DEFAULT_MODALITIES


def test_behaviour_switches_accept_what_the_sdk_refuses() -> None:
    # turbo's fixed sampling: ignored (the default) or refused
    assert update(TURBO, {"temperature": 0.1})["session"]["temperature"] == 1.0
    refused = update(TURBO, {"temperature": 0.1}, ignore_fixed_sampling_params=False)
    assert refused["error"]["code"] == "unsupported_parameter"
    assert refused["error"]["param"] == "session.temperature"
    # tools on a model without function calling: kept (never called) or refused
    assert update(FLASH, {"tools": [WEATHER_TOOL]})["session"]["tools"] == [WEATHER_TOOL]
    refused = update(FLASH, {"tools": [WEATHER_TOOL]}, accept_tools_without_support=False)
    assert refused["error"]["param"] == "session.tools"


def test_behaviour_limits_come_from_the_core() -> None:
    b = Behaviour()
    assert b.max_append_bytes == limits.MAX_APPEND_BYTES
    assert b.image_max_bytes == limits.IMAGE_MAX_BASE64_BYTES
    assert b.idle_timeout_s == limits.IDLE_TIMEOUT_S
    assert b.max_duration_s == limits.MAX_SESSION_DURATION_S


# --- layering and one way of building events ------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_simulator_depends_on_the_core_only() -> None:
    core = {"", "audio", "config", "errors", "events", "limits", "models", "_logformat"}
    for path in (PACKAGE / "testing").glob("*.py"):
        sdk = {n[2:] for n in _imports(path) if n.startswith("..")}
        sdk |= {n.split(".", 1)[1] for n in _imports(path) if n.startswith("dashscope_rt.")}
        assert sdk <= core, (path.name, sdk - core)
    for name in core - {""}:  # and the core never imports the simulator
        paths = [PACKAGE / f"{name}.py"] if name != "audio" else (PACKAGE / name).glob("*.py")
        for path in paths:
            assert not {n for n in _imports(path) if "testing" in n}, path.name


def test_no_event_dict_literals_in_the_simulator() -> None:
    """Every server event is built from the core's classes: no ``{"type": ...}`` literals."""
    for path in (PACKAGE / "testing").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert not keys & {"type", "error"}, (path.name, node.lineno)
