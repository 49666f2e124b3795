"""SessionConfig: documented ranges, per-model wire format and refusals, from_wire, merge."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import pickle
import re
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt import config as config_module
from dashscope_rt.config import (
    AUDIO_FORMATS,
    LEGACY_AUDIO_FORMATS,
    SAMPLE_RATES,
    UNSET,
    SemanticVAD,
    ServerVAD,
    SessionConfig,
    UnsetType,
)
from dashscope_rt.errors import InvalidInput, UnsupportedByModel
from dashscope_rt.models import MODELS, get_model

TURBO = "qwen-omni-turbo-realtime"
FLASH = "qwen3-omni-flash-realtime"
PLUS = "qwen3.5-omni-plus-realtime"
FLASH35 = "qwen3.5-omni-flash-realtime"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "当你想查询指定城市的天气时非常有用。",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "城市名称"}},
            "required": ["location"],
        },
    },
}

# The documented examples of session.created and session.updated (docs/protocol.md §4.2, §4.3).
SESSION_CREATED: dict[str, Any] = {
    "object": "realtime.session",
    "model": "qwen3-omni-flash-realtime",
    "modalities": ["text", "audio"],
    "voice": "Cherry",
    "input_audio_format": "pcm",
    "output_audio_format": "pcm",
    "input_audio_transcription": {"model": "qwen3-asr-flash-realtime"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 800,
        "create_response": True,
        "interrupt_response": True,
    },
    "enable_search": False,
    "search_options": {},
    "tools": [],
    "temperature": 0.8,
    "id": "sess_Ov7GOXoNXhNjlxXtOGKQS",
}
SESSION_UPDATED: dict[str, Any] = {
    "id": "sess_Aih6vAcY5Ddt6jwFx1tCa",
    "object": "realtime.session",
    "model": "qwen3-omni-flash-realtime",
    "modalities": ["text", "audio"],
    "instructions": "你是个人助理小云，请你准确且友好地解答用户的问题，始终以乐于助人的态度回应。",
    "voice": "Cherry",
    "input_audio_format": "pcm",
    "output_audio_format": "pcm",
    "input_audio_transcription": {"model": "qwen3-asr-flash-realtime"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.1,
        "prefix_padding_ms": 500,
        "silence_duration_ms": 900,
        "create_response": True,
        "interrupt_response": True,
    },
    "enable_search": True,
    "search_options": {"enable_source": True},
    "tools": [WEATHER_TOOL],
    "temperature": 0.8,
    "max_response_output_token": "inf",
    "max_tokens": 16384,
    "repetition_penalty": 1.05,
    "presence_penalty": 0.0,
    "top_k": 50,
    "top_p": 1.0,
    "seed": -1,
}


# --- documented ranges (docs/protocol.md §5.1) --------------------------------------------------


@attrs.frozen
class Rng:
    cls: type[Any]
    field: str
    lo: float | None
    hi: float | None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    also: tuple[Any, ...] = ()


RANGES = [
    Rng(SessionConfig, "temperature", 0, 2, hi_open=True),
    Rng(SessionConfig, "top_p", 0, 1, lo_open=True),
    Rng(SessionConfig, "top_k", 0, None, integer=True, also=(None,)),
    Rng(SessionConfig, "max_tokens", 1, None, integer=True),
    Rng(SessionConfig, "repetition_penalty", 0, None, lo_open=True),
    Rng(SessionConfig, "presence_penalty", -2, 2),
    Rng(SessionConfig, "seed", 0, 2**31 - 1, integer=True, also=(-1,)),
    Rng(ServerVAD, "threshold", -1, 1),
    Rng(SemanticVAD, "threshold", -1, 1),
    Rng(ServerVAD, "silence_duration_ms", 200, 6000, integer=True),
    Rng(SemanticVAD, "silence_duration_ms", 200, 6000, integer=True),
    Rng(ServerVAD, "prefix_padding_ms", 0, None, integer=True),
    Rng(ServerVAD, "idle_timeout_ms", 5000, 30000, integer=True),
]
RANGE_IDS = [f"{r.cls.__name__}.{r.field}" for r in RANGES]


def _inside(r: Rng) -> st.SearchStrategy[Any]:
    if r.integer:
        lo = None if r.lo is None else int(r.lo)
        hi = None if r.hi is None else int(r.hi)
        return st.integers(min_value=lo, max_value=hi)
    floats = st.floats(
        min_value=r.lo,
        max_value=r.hi,
        exclude_min=r.lo_open,
        exclude_max=r.hi_open,
        allow_nan=False,
        allow_infinity=False,
    )
    lo_int = None if r.lo is None else math.floor(r.lo) + (1 if r.lo_open else 0)
    hi_int = None if r.hi is None else math.ceil(r.hi) - (1 if r.hi_open else 0)
    return floats | st.integers(min_value=lo_int, max_value=hi_int)


def _outside(r: Rng) -> st.SearchStrategy[Any]:
    parts: list[st.SearchStrategy[Any]] = []
    if r.integer:
        if r.lo is not None:
            parts.append(st.integers(max_value=int(r.lo) - 1))
        if r.hi is not None:
            parts.append(st.integers(min_value=int(r.hi) + 1))
        return st.one_of(parts).filter(lambda v: v not in r.also)
    if r.lo is not None:
        parts.append(st.floats(max_value=r.lo, exclude_max=not r.lo_open, allow_infinity=False))
    if r.hi is not None:
        parts.append(st.floats(min_value=r.hi, exclude_min=not r.hi_open, allow_infinity=False))
    return st.one_of(parts).filter(lambda v: not math.isnan(v))


def _assert_names(exc: pytest.ExceptionInfo[InvalidInput], field: str) -> None:
    assert field in str(exc.value)


@pytest.mark.parametrize("r", RANGES, ids=RANGE_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_inside_the_documented_range_are_accepted(r: Rng, data: st.DataObject) -> None:
    value = data.draw(_inside(r), label="value")
    obj = r.cls(**{r.field: value})
    assert getattr(obj, r.field) == value


@pytest.mark.parametrize("r", RANGES, ids=RANGE_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_values_outside_the_documented_range_are_refused(r: Rng, data: st.DataObject) -> None:
    value = data.draw(_outside(r), label="value")
    with pytest.raises(InvalidInput) as exc:
        r.cls(**{r.field: value})
    _assert_names(exc, r.field)


def _edges(r: Rng) -> list[tuple[Any, bool]]:
    step = 1 if r.integer else 1e-9
    out: list[tuple[Any, bool]] = []
    if r.lo is not None:
        out += [(r.lo, not r.lo_open), (r.lo - step, False), (r.lo + step, True)]
    if r.hi is not None:
        out += [(r.hi, not r.hi_open), (r.hi + step, False), (r.hi - step, True)]
    return [(int(v) if r.integer else v, ok) for v, ok in out if v not in r.also]


@pytest.mark.parametrize(
    ("r", "value", "ok"),
    [(r, v, ok) for r in RANGES for v, ok in _edges(r)],
    ids=[f"{i}-{v}" for r, i in zip(RANGES, RANGE_IDS, strict=False) for v, _ in _edges(r)],
)
def test_both_sides_of_every_boundary(r: Rng, value: Any, ok: bool) -> None:
    if ok:
        assert getattr(r.cls(**{r.field: value}), r.field) == value
    else:
        with pytest.raises(InvalidInput, match=re.escape(r.field)):
            r.cls(**{r.field: value})


@pytest.mark.parametrize("r", RANGES, ids=RANGE_IDS)
@pytest.mark.parametrize("bad", [True, False, math.nan, math.inf, -math.inf, "1", [1]])
def test_bools_nan_inf_and_non_numbers_are_refused(r: Rng, bad: Any) -> None:
    with pytest.raises(InvalidInput, match=re.escape(r.field)):
        r.cls(**{r.field: bad})


@pytest.mark.parametrize("r", [r for r in RANGES if r.integer], ids=lambda r: r.field)
def test_integer_fields_refuse_floats(r: Rng) -> None:
    with pytest.raises(InvalidInput, match="an int"):
        r.cls(**{r.field: float(r.lo if r.lo is not None else 0) + 1.0})


def test_special_values_seed_minus_one_and_top_k_none() -> None:
    assert SessionConfig(seed=-1).seed == -1
    assert SessionConfig(top_k=None).top_k is None
    assert SessionConfig(top_k=None).to_wire(FLASH) == {"top_k": None}


def test_range_message_states_the_range() -> None:
    with pytest.raises(InvalidInput, match=re.escape("temperature must be in [0, 2), got 2")):
        SessionConfig(temperature=2)
    with pytest.raises(InvalidInput, match=re.escape("silence_duration_ms must be in [200, 6000]")):
        ServerVAD(silence_duration_ms=199)


@settings(max_examples=50, deadline=None)
@given(rate=st.sampled_from(SAMPLE_RATES), side=st.sampled_from(["input", "output"]))
def test_documented_sample_rates_are_accepted(rate: int, side: str) -> None:
    kwargs: dict[str, Any] = {f"{side}_sample_rate": rate}
    assert getattr(SessionConfig(**kwargs), f"{side}_sample_rate") == rate


@settings(max_examples=80, deadline=None)
@given(
    rate=st.one_of(st.integers().filter(lambda r: r not in SAMPLE_RATES), st.just(16000.0)),
    side=st.sampled_from(["input", "output"]),
)
def test_other_sample_rates_are_refused(rate: Any, side: str) -> None:
    with pytest.raises(InvalidInput, match=f"{side}_sample_rate"):
        SessionConfig(**{f"{side}_sample_rate": rate})


@pytest.mark.parametrize("fmt", [*LEGACY_AUDIO_FORMATS, *AUDIO_FORMATS])
def test_documented_audio_formats_are_accepted(fmt: str) -> None:
    assert SessionConfig(input_audio_format=fmt, output_audio_format=fmt).input_audio_format == fmt


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.one_of(st.text(), st.integers(), st.none()).filter(
        lambda f: f not in LEGACY_AUDIO_FORMATS and f not in AUDIO_FORMATS
    )
)
def test_other_audio_formats_are_refused(fmt: Any) -> None:
    with pytest.raises(InvalidInput, match="output_audio_format"):
        SessionConfig(output_audio_format=fmt)


@pytest.mark.parametrize(
    "mods",
    [list(p) for n in (1, 2) for p in itertools.permutations(["text", "audio"], n) if "text" in p],
)
def test_modalities_are_order_insensitive_and_normalised(mods: list[str]) -> None:
    expected = ("text", "audio") if "audio" in mods else ("text",)
    cfg = SessionConfig(modalities=mods)
    assert cfg.modalities == expected
    assert cfg.to_wire(FLASH) == {"modalities": list(expected)}


@settings(max_examples=80, deadline=None)
@given(
    mods=st.lists(st.sampled_from(["text", "audio", "video", "image", ""]), max_size=4).filter(
        lambda m: m not in (["text"], ["text", "audio"], ["audio", "text"])
    )
)
def test_other_modalities_are_refused(mods: list[str]) -> None:
    with pytest.raises(InvalidInput, match="modalities"):
        SessionConfig(modalities=mods)


def test_audio_only_modality_gets_a_hint_and_a_string_is_not_a_list() -> None:
    with pytest.raises(InvalidInput, match=re.escape("use ['text', 'audio']")):
        SessionConfig(modalities=["audio"])
    with pytest.raises(InvalidInput, match="modalities"):
        SessionConfig(modalities="text")


def _tool(name: Any, **fn: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **fn}}


@settings(max_examples=80, deadline=None)
@given(name=st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True))
def test_tool_names_matching_the_pattern_are_accepted(name: str) -> None:
    cfg = SessionConfig(tools=[_tool(name, parameters={"type": "object"})])
    assert cfg.tools != UNSET
    assert cfg.tools[0]["function"]["name"] == name


@settings(max_examples=80, deadline=None)
@given(name=st.text(max_size=80).filter(lambda n: not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n)))
def test_tool_names_not_matching_the_pattern_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape("tools[0].function.name")):
        SessionConfig(tools=[_tool(name)])


@pytest.mark.parametrize(
    ("tools", "where"),
    [
        ([{"type": "function", "name": "f", "parameters": {"type": "object"}}], "flat"),
        ([{"type": "code", "function": {"name": "f"}}], "tools[0].type"),
        ([_tool("f", parameters={"type": "string"})], "parameters"),
        ([_tool("f", parameters=[])], "parameters"),
        ([_tool("f", parameters={"type": "object", "properties": []})], "properties"),
        ([_tool("f", parameters={"type": "object", "required": "x"})], "required"),
        ([_tool("f", description=3)], "description"),
        ([_tool("f"), _tool("f")], "twice"),
        ([_tool("f"), "g"], "tools[1]"),
        (WEATHER_TOOL, "list"),
    ],
)
def test_tool_shape_is_checked(tools: Any, where: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(where)):
        SessionConfig(tools=tools)


def test_tools_are_copied_so_later_mutation_does_not_leak() -> None:
    tool = copy.deepcopy(WEATHER_TOOL)
    cfg = SessionConfig(tools=[tool])
    tool["function"]["name"] = "changed"
    wire = cfg.to_wire(PLUS)
    wire["tools"][0]["function"]["name"] = "changed too"
    assert cfg.to_wire(PLUS)["tools"] == [WEATHER_TOOL]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("input_transcription", None),
        ("input_transcription", 1),
        ("enable_search", "yes"),
        ("smooth_output", 0),
        ("voice", ""),
        ("voice", "  "),
        ("voice", 3),
        ("instructions", b"x"),
        ("turn_detection", {"type": "server_vad"}),
        ("search_options", {"enable_source": "yes"}),
        ("search_options", ["x"]),
        ("extra", {1: 2}),
    ],
)
def test_wrong_types_are_refused_naming_the_field(field: str, bad: Any) -> None:
    with pytest.raises(InvalidInput, match=field):
        SessionConfig(**{field: bad})


@pytest.mark.parametrize("field", ["create_response", "interrupt_response"])
@pytest.mark.parametrize("cls", [ServerVAD, SemanticVAD])
def test_vad_booleans_are_bools(field: str, cls: type[Any]) -> None:
    assert getattr(cls(**{field: False}), field) is False
    with pytest.raises(InvalidInput, match=field):
        cls(**{field: 1})


def test_semantic_vad_has_no_idle_timeout() -> None:
    with pytest.raises(TypeError):
        SemanticVAD(idle_timeout_ms=6000)  # type: ignore[call-arg]


def test_vad_extra_may_not_change_the_type() -> None:
    with pytest.raises(InvalidInput, match="type"):
        ServerVAD(extra={"type": "semantic_vad"})


# --- UNSET, repr, immutability -------------------------------------------------------------


def test_unset_is_one_falsy_singleton() -> None:
    assert isinstance(UNSET, UnsetType)
    assert not UNSET
    assert repr(UNSET) == "UNSET"
    assert copy.deepcopy(UNSET) is UNSET
    assert pickle.loads(pickle.dumps(UNSET)) is UNSET
    assert all(
        getattr(SessionConfig(), f.name) is UNSET
        for f in attrs.fields(SessionConfig)
        if f.name != "extra"
    )


@pytest.mark.parametrize("model", [TURBO, FLASH, PLUS, FLASH35, "qwen9-omni-x"])
def test_empty_config_sends_nothing(model: str) -> None:
    assert SessionConfig().to_wire(model) == {}
    assert ServerVAD().to_wire() == {"type": "server_vad"}
    assert SemanticVAD().to_wire() == {"type": "semantic_vad"}


def test_repr_shows_only_set_fields() -> None:
    cfg = SessionConfig(voice="Cherry", turn_detection=ServerVAD(threshold=0.3), extra={"k": 1})
    assert repr(cfg) == (
        "SessionConfig(voice='Cherry', turn_detection=ServerVAD(threshold=0.3), extra={'k': 1})"
    )
    assert repr(SessionConfig()) == "SessionConfig()"
    assert repr(SessionConfig(turn_detection=None)) == "SessionConfig(turn_detection=None)"


def test_config_is_frozen_and_copyable() -> None:
    cfg = SessionConfig(
        voice="Cherry",
        tools=[WEATHER_TOOL],
        search_options={"enable_source": True},
        turn_detection=SemanticVAD(extra={"eagerness": "low"}),
        extra={"video": {"input": {"representation_compact": "x"}}},
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.voice = "Ethan"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.extra["video"] = 1  # type: ignore[index]
    assert copy.deepcopy(cfg) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert attrs.evolve(cfg, voice="Ethan").voice == "Ethan"


# --- to_wire per model family -------------------------------------------------------------


def test_to_wire_flash_full_config_is_json_and_omits_unset() -> None:
    cfg = SessionConfig(
        modalities=["audio", "text"],
        voice="Ethan",
        instructions="Be brief.",
        input_audio_format="pcm",
        output_audio_format="pcm",
        turn_detection=ServerVAD(threshold=0.5, silence_duration_ms=800),
        input_transcription=True,
        temperature=0.9,
        top_p=1.0,
        top_k=50,
        max_tokens=16384,
        repetition_penalty=1.05,
        presence_penalty=0.0,
        seed=1314,
        smooth_output=True,
    )
    wire = cfg.to_wire(FLASH)
    assert wire == {
        "modalities": ["text", "audio"],
        "voice": "Ethan",
        "instructions": "Be brief.",
        "input_audio_format": "pcm",
        "output_audio_format": "pcm",
        "input_audio_transcription": {"model": "qwen3-asr-flash-realtime"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 800},
        "smooth_output": True,
        "temperature": 0.9,
        "top_p": 1.0,
        "top_k": 50,
        "max_tokens": 16384,
        "repetition_penalty": 1.05,
        "presence_penalty": 0.0,
        "seed": 1314,
    }
    assert json.loads(json.dumps(wire)) == wire
    assert cfg.to_wire(get_model(FLASH)) == wire


def test_manual_mode_and_transcription_off_are_json_null() -> None:
    wire = SessionConfig(turn_detection=None, input_transcription=False).to_wire(TURBO)
    assert wire == {"turn_detection": None, "input_audio_transcription": None}
    assert '"turn_detection":null' in json.dumps(wire, separators=(",", ":"))


def test_server_vad_sends_only_what_was_set() -> None:
    wire = SessionConfig(turn_detection=ServerVAD(silence_duration_ms=600)).to_wire(TURBO)
    assert wire == {"turn_detection": {"type": "server_vad", "silence_duration_ms": 600}}
    vad = ServerVAD(prefix_padding_ms=300, create_response=False, interrupt_response=True)
    assert vad.to_wire() == {
        "type": "server_vad",
        "prefix_padding_ms": 300,
        "create_response": False,
        "interrupt_response": True,
    }


def test_smooth_output_none_means_auto_and_is_sent_as_null_on_flash() -> None:
    assert SessionConfig(smooth_output=None).to_wire(FLASH) == {"smooth_output": None}
    assert SessionConfig(smooth_output=False).to_wire(FLASH) == {"smooth_output": False}


@pytest.mark.parametrize("model", [TURBO, PLUS, FLASH35])
def test_smooth_output_elsewhere_refused_but_auto_dropped(model: str) -> None:
    for value in (True, False):
        with pytest.raises(UnsupportedByModel, match="smooth_output") as exc:
            SessionConfig(smooth_output=value).to_wire(model)
        assert exc.value.model == model
        assert exc.value.feature == "smooth_output"
    assert SessionConfig(smooth_output=None).to_wire(model) == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.5),
        ("top_p", 0.5),
        ("top_k", 10),
        ("top_k", None),
        ("max_tokens", 100),
        ("repetition_penalty", 1.1),
        ("presence_penalty", 0.5),
        ("seed", 1),
    ],
)
def test_sampling_params_refused_on_turbo_sent_elsewhere(field: str, value: Any) -> None:
    cfg = SessionConfig(**{field: value})
    with pytest.raises(UnsupportedByModel) as exc:
        cfg.to_wire(TURBO)
    assert TURBO in str(exc.value) and field in str(exc.value)
    assert exc.value.feature == field
    for model in (FLASH, PLUS, FLASH35):
        assert cfg.to_wire(model) == {field: value}


def test_max_tokens_is_capped_by_the_model_output_limit() -> None:
    limit = get_model(FLASH).max_output_tokens
    assert limit == 16384
    assert SessionConfig(max_tokens=limit).to_wire(FLASH) == {"max_tokens": limit}
    with pytest.raises(UnsupportedByModel, match=rf"max_tokens must be in \[1, {limit}\]"):
        SessionConfig(max_tokens=limit + 1).to_wire(FLASH)
    assert get_model(PLUS).max_output_tokens is None  # no documented limit: not checked
    assert SessionConfig(max_tokens=10**6).to_wire(PLUS) == {"max_tokens": 10**6}


@pytest.mark.parametrize(
    ("model", "ok", "refused"),
    [
        (TURBO, ["Chelsie", "Cherry", "Serena", "Ethan"], ["Tina", "Momo", "cherry"]),
        (FLASH, ["Cherry", "Nofish", "Eric"], ["Chelsie", "Momo", "Tina"]),
        (f"{FLASH}-2025-12-01", ["Momo", "Eldric Sage", "Chelsie"], ["Tina"]),
        (PLUS, ["Tina", "SomeNewVoice"], ["Cherry"]),
    ],
)
def test_voice_is_checked_against_the_model(model: str, ok: list[str], refused: list[str]) -> None:
    for voice in ok:
        assert SessionConfig(voice=voice).to_wire(model) == {"voice": voice}
    for voice in refused:
        with pytest.raises(UnsupportedByModel, match=re.escape(f"voice {voice!r}")) as exc:
            SessionConfig(voice=voice).to_wire(model)
        assert model in str(exc.value)
        assert exc.value.feature == "voice"


def test_voice_message_lists_the_allowed_voices() -> None:
    with pytest.raises(UnsupportedByModel, match="Cherry, Serena, Ethan, Chelsie"):
        SessionConfig(voice="Tina").to_wire(TURBO)


@pytest.mark.parametrize("model", [TURBO, FLASH])
@pytest.mark.parametrize(
    ("cfg", "feature"),
    [
        (SessionConfig(tools=[WEATHER_TOOL]), "tools"),
        (SessionConfig(turn_detection=SemanticVAD()), "semantic_vad"),
        (SessionConfig(turn_detection=ServerVAD(idle_timeout_ms=10000)), "idle_timeout_ms"),
        (SessionConfig(enable_search=True), "enable_search"),
        (SessionConfig(search_options={"enable_source": True}), "search_options"),
        (SessionConfig(input_sample_rate=48000), "input_sample_rate"),
        (SessionConfig(output_sample_rate=16000), "output_sample_rate"),
        (SessionConfig(input_audio_format="wav"), "input_audio_format"),
        (SessionConfig(output_audio_format="wav"), "output_audio_format"),
    ],
)
def test_qwen35_only_features_refused_on_turbo_and_flash(
    model: str, cfg: SessionConfig, feature: str
) -> None:
    with pytest.raises(UnsupportedByModel) as exc:
        cfg.to_wire(model)
    assert exc.value.model == model
    assert exc.value.feature == feature
    assert model in str(exc.value)
    assert feature.replace("semantic_vad", "SemanticVAD") in str(exc.value)


@pytest.mark.parametrize("model", [TURBO, FLASH])
def test_settings_that_ask_for_nothing_are_dropped_not_refused(model: str) -> None:
    cfg = SessionConfig(tools=[], enable_search=False, search_options={})
    assert cfg.to_wire(model) == {}
    assert SessionConfig(input_sample_rate=16000, output_sample_rate=24000).to_wire(model) == {}


def test_qwen35_features_are_sent() -> None:
    cfg = SessionConfig(
        voice="Tina",
        tools=[WEATHER_TOOL],
        turn_detection=ServerVAD(idle_timeout_ms=10000, threshold=0.2),
    )
    for model in (PLUS, FLASH35, f"{PLUS}-2026-03-15"):
        assert cfg.to_wire(model) == {
            "voice": "Tina",
            "turn_detection": {"type": "server_vad", "threshold": 0.2, "idle_timeout_ms": 10000},
            "tools": [WEATHER_TOOL],
        }
    semantic = SessionConfig(turn_detection=SemanticVAD(create_response=True))
    assert semantic.to_wire(PLUS) == {
        "turn_detection": {"type": "semantic_vad", "create_response": True}
    }
    assert SessionConfig(tools=[]).to_wire(PLUS) == {"tools": []}


def test_web_search_on_plus_only_and_never_with_tools() -> None:
    search = SessionConfig(enable_search=True, search_options={"enable_source": True})
    assert search.to_wire(PLUS) == {
        "enable_search": True,
        "search_options": {"enable_source": True},
    }
    with pytest.raises(UnsupportedByModel, match="enable_search"):
        search.to_wire(FLASH35)
    both = attrs.evolve(search, tools=[WEATHER_TOOL])
    with pytest.raises(InvalidInput, match="tools and enable_search"):
        both.to_wire(PLUS)
    assert attrs.evolve(both, enable_search=False).to_wire(PLUS)["tools"] == [WEATHER_TOOL]


def test_qwen35_rates_use_the_nested_audio_object_without_legacy_keys() -> None:
    cfg = SessionConfig(
        input_audio_format="pcm16", output_audio_format="pcm", input_sample_rate=48000
    )
    wire = cfg.to_wire(PLUS)
    assert wire == {
        "audio": {
            "input": {"format": {"type": "pcm", "sample_rate": 48000}},
            "output": {"format": {"type": "pcm", "sample_rate": 24000}},
        }
    }
    only_out = SessionConfig(output_audio_format="wav").to_wire(FLASH35)
    assert only_out == {"audio": {"output": {"format": {"type": "wav", "sample_rate": 24000}}}}
    rate_only = SessionConfig(output_sample_rate=8000).to_wire(PLUS)
    assert rate_only == {"audio": {"output": {"format": {"type": "pcm", "sample_rate": 8000}}}}
    legacy = SessionConfig(input_audio_format="pcm", output_audio_format="pcm")
    assert legacy.to_wire(PLUS) == {"input_audio_format": "pcm", "output_audio_format": "pcm"}


def test_rate_refused_when_not_in_the_model_list() -> None:
    narrow = attrs.evolve(get_model(PLUS), input_rates=(16000, 24000))
    with pytest.raises(UnsupportedByModel, match=r"input_sample_rate=8000.*16000, 24000"):
        SessionConfig(input_sample_rate=8000).to_wire(narrow)


@pytest.mark.parametrize(
    ("model", "cfg", "rates"),
    [
        (TURBO, SessionConfig(), (16000, 24000)),
        (FLASH, SessionConfig(input_sample_rate=16000), (16000, 24000)),
        (PLUS, SessionConfig(), (16000, 24000)),
        (PLUS, SessionConfig(input_sample_rate=48000, output_sample_rate=8000), (48000, 8000)),
    ],
)
def test_effective_rates(model: str, cfg: SessionConfig, rates: tuple[int, int]) -> None:
    assert (cfg.input_rate(model), cfg.output_rate(model)) == rates


def test_effective_rate_refused_where_to_wire_would_refuse() -> None:
    with pytest.raises(UnsupportedByModel, match="input_sample_rate"):
        SessionConfig(input_sample_rate=48000).input_rate(FLASH)
    with pytest.raises(UnsupportedByModel, match="output_sample_rate"):
        SessionConfig(output_sample_rate=48000).output_rate(TURBO)


def test_extra_is_passed_through_last() -> None:
    cfg = SessionConfig(
        voice="Cherry",
        extra={"voice": "Ethan", "video": {"input": {"representation_compact": "on"}}},
    )
    wire = cfg.to_wire(FLASH)
    assert wire == {"voice": "Ethan", "video": {"input": {"representation_compact": "on"}}}
    wire["video"]["input"]["representation_compact"] = "changed"
    assert cfg.to_wire(FLASH)["video"] == {"input": {"representation_compact": "on"}}


def test_tool_choice_refused_even_through_extra() -> None:
    with pytest.raises(UnsupportedByModel, match="decides tool calls itself") as exc:
        SessionConfig(extra={"tool_choice": "auto"})
    assert exc.value.feature == "tool_choice"
    with pytest.raises(UnsupportedByModel, match="tool_choice"):
        SessionConfig().merge(SessionConfig(extra={"tool_choice": "none"}))
    with pytest.raises(TypeError):
        SessionConfig(tool_choice="auto")  # type: ignore[call-arg]


def test_unknown_model_name_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    cfg = SessionConfig(voice="Tina", tools=[WEATHER_TOOL], temperature=0.3)
    with caplog.at_level(logging.WARNING, logger="dashscope_rt"):
        wire = cfg.to_wire("qwen3.5-omni-plus-realtime-2099-01-01")
    assert wire["tools"] == [WEATHER_TOOL]
    assert "not in the dashscope_rt table" in caplog.text
    with pytest.raises(UnsupportedByModel, match="tools"):
        cfg.to_wire("someone-elses-model")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_known_model_accepts_its_default_voice(name: str) -> None:
    info = MODELS[name]
    assert SessionConfig(voice=info.default_voice).to_wire(info) == {"voice": info.default_voice}


# --- from_wire ---------------------------------------------------------------------------


def test_from_wire_session_created() -> None:
    cfg = SessionConfig.from_wire(SESSION_CREATED)
    assert cfg.modalities == ("text", "audio")
    assert cfg.voice == "Cherry"
    assert (cfg.input_audio_format, cfg.output_audio_format) == ("pcm", "pcm")
    assert cfg.input_transcription is True
    assert cfg.turn_detection == ServerVAD(
        threshold=0.5,
        prefix_padding_ms=300,
        silence_duration_ms=800,
        create_response=True,
        interrupt_response=True,
    )
    assert (cfg.enable_search, cfg.search_options, cfg.tools) == (False, {}, ())
    assert cfg.temperature == 0.8
    assert cfg.extra == {}
    wire = cfg.to_wire(FLASH)
    expected = {
        k: v
        for k, v in SESSION_CREATED.items()
        if k not in ("id", "object", "model", "enable_search", "search_options", "tools")
    }
    assert wire == expected


def test_from_wire_session_updated() -> None:
    cfg = SessionConfig.from_wire(SESSION_UPDATED)
    assert cfg.instructions == SESSION_UPDATED["instructions"]
    assert cfg.tools == (WEATHER_TOOL,)
    assert cfg.enable_search is True and cfg.search_options == {"enable_source": True}
    assert cfg.seed == -1
    assert (cfg.max_tokens, cfg.top_k, cfg.top_p) == (16384, 50, 1.0)
    assert (cfg.repetition_penalty, cfg.presence_penalty) == (1.05, 0.0)
    assert isinstance(cfg.turn_detection, ServerVAD) and cfg.turn_detection.threshold == 0.1
    assert cfg.extra == {}
    modelled = {
        k: v
        for k, v in SESSION_UPDATED.items()
        if k not in ("id", "object", "model", "max_response_output_token")
    }
    # tools + search is what the doc example echoes; resend each alone to qwen3.5-omni-plus.
    no_search = attrs.evolve(cfg, enable_search=UNSET, search_options=UNSET, voice="Tina")
    wire = no_search.to_wire(PLUS)
    assert wire == {
        **{k: v for k, v in modelled.items() if k not in ("enable_search", "search_options")},
        "voice": "Tina",
    }


def test_from_wire_ignores_response_only_keys_and_keeps_unknown_ones() -> None:
    cfg = SessionConfig.from_wire(
        {**SESSION_CREATED, "tool_choice": "auto", "max_response_output_token": "inf", "new": 1}
    )
    assert cfg.extra == {"new": 1}
    assert "tool_choice" not in cfg.to_wire(FLASH)


@pytest.mark.parametrize(
    ("session", "extra_key"),
    [
        ({"temperature": 9}, "temperature"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"turn_detection": {"type": "fancy_vad"}}, "turn_detection"),
        ({"turn_detection": "server_vad"}, "turn_detection"),
        ({"input_audio_transcription": "on"}, "input_audio_transcription"),
        ({"audio": {"input": {"format": {"type": "mp3", "sample_rate": 16000}}}}, "audio"),
        ({"audio": {"input": {"format": {"type": "pcm", "sample_rate": 44100}}}}, "audio"),
        ({"audio": {"output": {"voice": "Tina"}}}, "audio"),
        ({"tools": [{"type": "function", "name": "flat"}]}, "tools"),
    ],
)
def test_from_wire_is_tolerant(session: dict[str, Any], extra_key: str) -> None:
    cfg = SessionConfig.from_wire(session)
    assert cfg.extra == {extra_key: session[extra_key]}


def test_from_wire_vad_keeps_odd_keys_in_its_extra() -> None:
    cfg = SessionConfig.from_wire(
        {"turn_detection": {"type": "semantic_vad", "threshold": 7, "eagerness": "low"}}
    )
    assert cfg.turn_detection == SemanticVAD(extra={"threshold": 7, "eagerness": "low"})
    assert SessionConfig.from_wire({"turn_detection": None}).turn_detection is None
    no_type = SessionConfig.from_wire({"turn_detection": {"silence_duration_ms": 500}})
    assert no_type.turn_detection == ServerVAD(silence_duration_ms=500)


def test_from_wire_nested_audio_and_transcription_off() -> None:
    cfg = SessionConfig.from_wire(
        {
            "audio": {
                "input": {"format": {"type": "pcm", "sample_rate": 48000}},
                "output": {"format": {"type": "wav", "sample_rate": 24000}},
            },
            "input_audio_transcription": None,
        }
    )
    assert (cfg.input_audio_format, cfg.input_sample_rate) == ("pcm", 48000)
    assert (cfg.output_audio_format, cfg.output_sample_rate) == ("wav", 24000)
    assert cfg.input_transcription is False
    assert cfg.input_rate(PLUS) == 48000
    assert SessionConfig.from_wire(cfg.to_wire(PLUS)) == cfg


def test_from_wire_refuses_a_non_mapping() -> None:
    with pytest.raises(InvalidInput, match="mapping"):
        SessionConfig.from_wire(["not", "a", "dict"])  # type: ignore[arg-type]


_flash_vad = st.builds(
    ServerVAD,
    threshold=st.just(UNSET) | st.floats(-1, 1),
    silence_duration_ms=st.just(UNSET) | st.integers(200, 6000),
    prefix_padding_ms=st.just(UNSET) | st.integers(0, 2000),
    create_response=st.just(UNSET) | st.booleans(),
    interrupt_response=st.just(UNSET) | st.booleans(),
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(UNSET) | strategy


_flash_configs = st.builds(
    SessionConfig,
    modalities=_maybe(st.sampled_from([("text",), ("text", "audio")])),
    voice=_maybe(st.sampled_from(get_model(FLASH).voices or ("Cherry",))),
    instructions=_maybe(st.text()),
    input_audio_format=_maybe(st.sampled_from(LEGACY_AUDIO_FORMATS)),
    output_audio_format=_maybe(st.sampled_from(LEGACY_AUDIO_FORMATS)),
    turn_detection=_maybe(st.none() | _flash_vad),
    input_transcription=_maybe(st.booleans()),
    temperature=_maybe(st.floats(0, 2, exclude_max=True)),
    top_p=_maybe(st.floats(0, 1, exclude_min=True)),
    top_k=_maybe(st.none() | st.integers(0, 200)),
    max_tokens=_maybe(st.integers(1, 16384)),
    repetition_penalty=_maybe(st.floats(0, 10, exclude_min=True)),
    presence_penalty=_maybe(st.floats(-2, 2)),
    seed=_maybe(st.integers(-1, 2**31 - 1)),
    smooth_output=_maybe(st.none() | st.booleans()),
    extra=st.dictionaries(st.sampled_from(["x_custom", "video"]), st.integers()),
)


@settings(max_examples=150, deadline=None)
@given(cfg=_flash_configs)
def test_to_wire_from_wire_round_trip(cfg: SessionConfig) -> None:
    wire = cfg.to_wire(FLASH)
    assert json.loads(json.dumps(wire)) == wire
    assert SessionConfig.from_wire(wire) == cfg


# --- merge -------------------------------------------------------------------------------


def test_merge_overrides_set_fields_and_keeps_the_rest() -> None:
    base = SessionConfig(voice="Cherry", instructions="A", temperature=0.5, extra={"a": 1})
    merged = base.merge(SessionConfig(instructions="B", top_p=0.9, extra={"b": 2}))
    assert merged == SessionConfig(
        voice="Cherry", instructions="B", temperature=0.5, top_p=0.9, extra={"a": 1, "b": 2}
    )
    assert base.merge(SessionConfig()) == base
    assert SessionConfig().merge(base) == base


def test_merge_turn_detection() -> None:
    base = SessionConfig(turn_detection=ServerVAD(threshold=0.3, extra={"x": 1}))
    same_type = base.merge(SessionConfig(turn_detection=ServerVAD(silence_duration_ms=600)))
    assert same_type.turn_detection == ServerVAD(
        threshold=0.3, silence_duration_ms=600, extra={"x": 1}
    )
    other_type = base.merge(SessionConfig(turn_detection=SemanticVAD()))
    assert other_type.turn_detection == SemanticVAD()
    manual = base.merge(SessionConfig(turn_detection=None))
    assert manual.turn_detection is None
    back = manual.merge(SessionConfig(turn_detection=ServerVAD()))
    assert back.turn_detection == ServerVAD()
    with pytest.raises(InvalidInput, match="cannot merge"):
        ServerVAD().merge(SemanticVAD())


def test_merge_refuses_a_non_config() -> None:
    with pytest.raises(InvalidInput, match="SessionConfig"):
        SessionConfig().merge({"voice": "Cherry"})  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(a=_flash_configs, b=_flash_configs)
def test_merge_is_field_wise(a: SessionConfig, b: SessionConfig) -> None:
    merged = a.merge(b)
    for f in attrs.fields(SessionConfig):
        mine, theirs, got = getattr(a, f.name), getattr(b, f.name), getattr(merged, f.name)
        if f.name == "extra":
            assert got == {**mine, **theirs}
        elif f.name == "turn_detection" and isinstance(mine, ServerVAD):
            if isinstance(theirs, ServerVAD):
                assert got == mine.merge(theirs)
            else:
                assert got == (mine if theirs is UNSET else theirs)
        else:
            assert got == (mine if theirs is UNSET else theirs)


def test_module_exports_exist() -> None:
    for name in config_module.__all__:
        assert hasattr(config_module, name), name
