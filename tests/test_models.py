"""The model table: documented capabilities per family, and tolerant lookup of unknown names."""

from __future__ import annotations

import logging

import attrs
import pytest

from dashscope_rt.errors import InvalidInput
from dashscope_rt.models import MODELS, ModelInfo, get_model


@pytest.mark.parametrize(
    ("name", "voice", "tools", "sampling", "in_rate", "tokens_in"),
    [
        ("qwen-omni-turbo-realtime", "Chelsie", False, False, 16000, 25.0),
        ("qwen-omni-turbo-realtime-latest", "Chelsie", False, False, 16000, 25.0),
        ("qwen3-omni-flash-realtime", "Cherry", False, True, 16000, 12.5),
        ("qwen3-omni-flash-realtime-2025-12-01", "Cherry", False, True, 16000, 12.5),
        ("qwen3.5-omni-plus-realtime", "Tina", True, True, 16000, 7.0),
        ("qwen3.5-omni-flash-realtime", "Tina", True, True, 16000, 7.0),
        ("qwen3.8-omni-flash-realtime", "Tina", True, True, 16000, 7.0),
    ],
)
def test_documented_capabilities(
    name: str, voice: str, tools: bool, sampling: bool, in_rate: int, tokens_in: float
) -> None:
    info = get_model(name)
    assert info.known
    assert info.name == name
    assert info.default_voice == voice
    assert info.tools is tools
    assert info.sampling_params is sampling
    assert info.input_rate == in_rate
    assert info.output_rate == 24000
    assert info.input_audio_tokens_per_s == tokens_in


def test_default_voice_is_accepted_by_every_model() -> None:
    for info in MODELS.values():
        assert info.accepts_voice(info.default_voice), info.name


def test_voice_lists_per_snapshot() -> None:
    assert len(get_model("qwen-omni-turbo-realtime").voices or ()) == 4
    assert len(get_model("qwen3-omni-flash-realtime-2025-09-15").voices or ()) == 17
    assert len(get_model("qwen3-omni-flash-realtime-2025-12-01").voices or ()) == 49
    # The alias's list is unconfirmed: the SDK uses the smaller, safe one.
    assert (
        get_model("qwen3-omni-flash-realtime").voices
        == get_model("qwen3-omni-flash-realtime-2025-09-15").voices
    )
    assert not get_model("qwen-omni-turbo-realtime").accepts_voice("Momo")
    assert get_model("qwen3-omni-flash-realtime-2025-12-01").accepts_voice("Eldric Sage")


def test_qwen35_voice_check_without_list() -> None:
    info = get_model("qwen3.5-omni-plus-realtime")
    assert info.voices is None
    assert info.accepts_voice("Tina")
    assert not info.accepts_voice("Cherry")  # observed refusal
    assert not info.accepts_voice("")


def test_only_the_newer_families_have_the_newer_features() -> None:
    for info in MODELS.values():
        is35 = info.family.startswith("qwen3.5")
        newer = is35 or info.family.startswith("qwen3.8")
        assert info.tools is newer
        assert info.text_input is newer
        assert info.search is (newer and info.family != "qwen3.5-omni-flash")
        assert info.semantic_vad is is35
        assert info.audio_format_object is is35
        assert info.smooth_output is (info.family == "qwen3-omni-flash")


def test_qwen38_needs_a_voice_and_a_workspace_host() -> None:
    info = get_model("qwen3.8-omni-flash-realtime")
    assert info.requires_voice and info.default_voice == "Tina"
    # The server's own default is refused at the first response (captured traffic).
    assert not info.accepts_voice("Chelsie") and not info.accepts_voice("Cherry")
    assert info.voices is None and "Serena" in info.known_voices
    assert all(info.accepts_voice(v) for v in info.known_voices)
    assert not set(info.known_voices) & set(info.rejected_voices)
    assert info.workspace_endpoint and info.regions == ("cn-beijing", "ap-southeast-1")
    assert (info.input_rate, info.output_rate) == (16000, 24000)
    assert info.session_finish is True and info.session_finished_ack is False
    assert info.transcription_model == "qwen3-asr-flash-realtime"
    others = [m for m in MODELS.values() if m.family != "qwen3.8-omni-flash"]
    assert not any(m.requires_voice or m.workspace_endpoint or m.known_voices for m in others)


def test_unknown_qwen38_snapshot_inherits_the_workspace_rule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dashscope_rt"):
        info = get_model("qwen3.8-omni-flash-realtime-2026-12-01")
    assert not info.known and info.family == "qwen3.8-omni-flash"
    assert info.workspace_endpoint and info.requires_voice


def test_unknown_snapshot_inherits_its_family(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dashscope_rt"):
        info = get_model("qwen3.5-omni-flash-realtime-2027-01-01")
    assert not info.known
    assert info.family == "qwen3.5-omni-flash"
    assert info.tools
    assert "not in the dashscope_rt table" in caplog.text


def test_entirely_unknown_model_gets_conservative_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dashscope_rt"):
        info = get_model("some-future-omni-model")
    assert not info.known
    assert (info.input_rate, info.output_rate) == (16000, 24000)
    assert info.voices is None
    assert not info.tools
    assert caplog.records


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_model_name_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        get_model(bad)


def test_model_info_is_frozen_and_evolvable() -> None:
    info = get_model("qwen3-omni-flash-realtime")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.tools = True  # type: ignore[misc]
    custom = attrs.evolve(info, tools=True)
    assert isinstance(custom, ModelInfo)
    assert custom.tools and not info.tools
    with pytest.raises(TypeError):
        info.sampling_defaults["temperature"] = 5  # type: ignore[index]
