"""What each Qwen-Omni-Realtime model supports: audio rates, voices, tools, parameters.

The table follows protocol.md §5, §6, §8 and §10. New models appear often, so an unknown name
still works: its capabilities are inferred from the name's family prefix and a warning is logged.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidInput

__all__ = [
    "FLASH_VOICES_2025_09_15",
    "FLASH_VOICES_2025_12_01",
    "MODELS",
    "TURBO_VOICES",
    "ModelInfo",
    "get_model",
]

log = logging.getLogger("dashscope_rt.models")

Number = int | float

TURBO_VOICES = ("Cherry", "Serena", "Ethan", "Chelsie")

FLASH_VOICES_2025_09_15 = (
    "Cherry", "Ethan", "Nofish", "Jennifer", "Ryan", "Katerina", "Elias", "Jada", "Dylan",
    "Sunny", "Li", "Marcus", "Roy", "Peter", "Rocky", "Kiki", "Eric",
)  # fmt: skip

FLASH_VOICES_2025_12_01 = (
    "Cherry", "Serena", "Ethan", "Chelsie", "Momo", "Vivian", "Moon", "Maia", "Kai", "Nofish",
    "Bella", "Jennifer", "Ryan", "Katerina", "Aiden", "Eldric Sage", "Mia", "Mochi", "Bellona",
    "Vincent", "Bunny", "Neil", "Elias", "Arthur", "Nini", "Ebona", "Seren", "Pip", "Stella",
    "Bodega", "Sonrisa", "Alek", "Dolce", "Sohee", "Ono Anna", "Lenn", "Emilien", "Andre",
    "Radio Gol", "Jada", "Dylan", "Li", "Marcus", "Roy", "Peter", "Sunny", "Eric", "Rocky", "Kiki",
)  # fmt: skip


def _frozen_mapping(value: Mapping[str, Number]) -> Mapping[str, Number]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class ModelInfo:
    """Capabilities of one model (or snapshot). Build a variant with ``attrs.evolve``."""

    name: str
    family: str
    input_rate: int = 16000
    output_rate: int = 24000
    input_rates: tuple[int, ...] = (16000,)
    output_rates: tuple[int, ...] = (24000,)
    voices: tuple[str, ...] | None = None
    """Accepted voices; None when the list is not known here (no local check)."""
    rejected_voices: tuple[str, ...] = ()
    """Voices observed to be refused, for models whose full list is not known."""
    default_voice: str = "Cherry"
    tools: bool = False
    video: bool = True
    text_input: bool = False
    session_finish: bool | None = None
    """True: accepted; False: refused as invalid; None: unconfirmed (try it, accept both)."""
    sampling_params: bool = True
    semantic_vad: bool = False
    idle_timeout: bool = False
    smooth_output: bool = False
    search: bool = False
    audio_format_object: bool = False
    input_audio_tokens_per_s: float = 12.5
    output_audio_tokens_per_s: float = 12.5
    image_px_per_token: int = 32
    context_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_context_turns: int | None = None
    transcription_model: str = "qwen3-asr-flash-realtime"
    sampling_defaults: Mapping[str, Number] = attrs.field(factory=dict, converter=_frozen_mapping)
    known: bool = True

    def accepts_voice(self, voice: str) -> bool:
        """Whether ``voice`` is allowed, as far as this table knows."""
        if self.voices is not None:
            return voice in self.voices
        return bool(voice) and voice not in self.rejected_voices


_TURBO = ModelInfo(
    name="qwen-omni-turbo-realtime",
    family="qwen-omni-turbo",
    voices=TURBO_VOICES,
    default_voice="Chelsie",
    sampling_params=False,
    input_audio_tokens_per_s=25.0,
    output_audio_tokens_per_s=25.0,
    image_px_per_token=28,
    context_tokens=32768,
    max_input_tokens=30720,
    max_output_tokens=2048,
    sampling_defaults={
        "temperature": 1.0, "top_p": 0.01, "top_k": 20,
        "repetition_penalty": 1.05, "presence_penalty": 0.0,
    },
)  # fmt: skip

_FLASH = ModelInfo(
    name="qwen3-omni-flash-realtime",
    family="qwen3-omni-flash",
    # Which list the alias accepts is unconfirmed (protocol.md §6): the 17-voice list is safe.
    voices=FLASH_VOICES_2025_09_15,
    default_voice="Cherry",
    smooth_output=True,
    context_tokens=65536,
    max_input_tokens=49152,
    max_output_tokens=16384,
    max_context_turns=8,
    sampling_defaults={
        "temperature": 0.9, "top_p": 1.0, "top_k": 50,
        "repetition_penalty": 1.05, "presence_penalty": 0.0,
    },
)  # fmt: skip

_QWEN35 = ModelInfo(
    name="qwen3.5-omni-plus-realtime",
    family="qwen3.5-omni-plus",
    input_rates=(8000, 16000, 24000, 48000),
    output_rates=(8000, 16000, 24000, 48000),
    voices=None,  # 55 voices; the list is not reproduced in protocol.md
    rejected_voices=("Cherry",),
    default_voice="Tina",
    tools=True,
    text_input=True,
    session_finish=False,  # answered "invalid event type" on qwen3.5-omni-flash (protocol.md §2.3)
    semantic_vad=True,
    idle_timeout=True,
    search=True,
    audio_format_object=True,
    input_audio_tokens_per_s=7.0,
    output_audio_tokens_per_s=12.5,
    max_context_turns=100,
    sampling_defaults={
        "temperature": 0.7, "top_p": 0.8, "top_k": 20,
        "repetition_penalty": 1.0, "presence_penalty": 1.5,
    },
)  # fmt: skip


def _snapshots(base: ModelInfo, *suffixes: str, **changes: Any) -> dict[str, ModelInfo]:
    out = {base.name: base}
    for suffix in suffixes:
        name = f"{base.name}-{suffix}"
        out[name] = attrs.evolve(base, name=name, **changes)
    return out


def _build_table() -> dict[str, ModelInfo]:
    table: dict[str, ModelInfo] = {}
    table.update(_snapshots(_TURBO, "latest", "2025-05-08"))
    table.update(_snapshots(_FLASH, "2025-09-15"))
    table.update(_snapshots(_FLASH, "2025-12-01", voices=FLASH_VOICES_2025_12_01))
    table.update(_snapshots(_QWEN35, "2026-03-15"))
    flash35 = attrs.evolve(
        _QWEN35,
        name="qwen3.5-omni-flash-realtime",
        family="qwen3.5-omni-flash",
        search=False,  # the newest guide: web search on qwen3.5-omni-plus only
        max_context_turns=80,
    )
    table.update(_snapshots(flash35, "2026-03-15"))
    return table


MODELS: Mapping[str, ModelInfo] = types.MappingProxyType(_build_table())
"""Every known model and snapshot, by name."""

_FAMILY_PREFIXES = (
    ("qwen3.5-omni-plus", "qwen3.5-omni-plus-realtime"),
    ("qwen3.5-omni-flash", "qwen3.5-omni-flash-realtime"),
    ("qwen3.5-omni", "qwen3.5-omni-plus-realtime"),
    ("qwen3-omni-flash", "qwen3-omni-flash-realtime"),
    ("qwen-omni-turbo", "qwen-omni-turbo-realtime"),
)


_warned: set[str] = set()


def get_model(name: str) -> ModelInfo:
    """Capabilities of ``name``; an unknown name gets its family defaults and a warning (once)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"model must be a non-empty string, got {name!r}")
    info = MODELS.get(name)
    if info is not None:
        return info
    warn = log.warning if name not in _warned else log.debug
    _warned.add(name)
    for prefix, known in _FAMILY_PREFIXES:
        if name.startswith(prefix):
            warn(
                "model %r is not in the dashscope_rt table; assuming it behaves like %s",
                name,
                known,
            )
            return attrs.evolve(MODELS[known], name=name, known=False)
    warn(
        "model %r is not in the dashscope_rt table; using conservative defaults "
        "(16 kHz in, 24 kHz out, no local voice check, no tools)",
        name,
    )
    return ModelInfo(name=name, family="unknown", default_voice="", known=False)
