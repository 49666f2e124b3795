"""What each Qwen-Omni-Realtime model supports: audio rates, voices, tools, parameters.

The table follows docs/protocol.md ("Models"); a value no source settles is marked "assumed".
New models appear often, so an unknown name still works: its capabilities are inferred from the
name's family prefix and a warning is logged.
"""

from __future__ import annotations

import logging
import math
import types
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidInput
from .limits import IMAGE_TOKENS_MAX, IMAGE_TOKENS_MIN

__all__ = [
    "FLASH_VOICES_2025_09_15",
    "FLASH_VOICES_2025_12_01",
    "MODELS",
    "TURBO_VOICES",
    "ModelInfo",
    "get_model",
    "image_tokens",
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


def image_tokens(width: int, height: int, px_per_token: int) -> int:
    """Tokens billed for one image: one per ``px_per_token`` square tile, clamped to
    [:data:`~dashscope_rt.limits.IMAGE_TOKENS_MIN`, :data:`~dashscope_rt.limits.IMAGE_TOKENS_MAX`].
    """
    tiles = math.ceil(width / px_per_token) * math.ceil(height / px_per_token)
    return max(IMAGE_TOKENS_MIN, min(IMAGE_TOKENS_MAX, tiles))


# qwen3.8-omni-flash-realtime: its full voice list is not reproduced here. A captured session
# (ouxxyy/ai-interviewer, 2026-09) tried names one by one: these produced audio ...
_QWEN38_VOICES_SEEN_WORKING = (
    # Documented for 3.8 (the voice list, read second-hand; not in that capture):
    "Tina", "Maia", "Andre", "Theo Calm", "Liora Mira",
    # Seen working in the capture:
    "Serena", "Dylan", "Sunny", "Jennifer", "Ryan", "Katerina", "Marcus", "Peter", "Rocky",
    "Kiki", "Mia", "Chloe", "Eric", "Li", "Aiden",
)  # fmt: skip
# ... and these were refused at the first response, Chelsie (the server's own default) included.
_QWEN38_REFUSED_VOICES = (
    "Chelsie", "Cherry", "Ethan", "Jada", "Elias", "Roy", "Sophie", "Luna", "Ava", "Bella",
    "Grace", "Emily", "Nofish", "Neil",
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
    known_voices: tuple[str, ...] = ()
    """Voices seen to work or documented, for models whose full list is not known."""
    default_voice: str = "Cherry"
    requires_voice: bool = False
    """The server's own default voice is refused: always send one (``default_voice`` if unset)."""
    tools: bool = False
    video: bool = True
    text_input: bool = False
    session_finish: bool | None = None
    """True: accepted; False: refused as invalid; None: unconfirmed (try it, accept both)."""
    session_finished_ack: bool | None = None
    """Whether ``session.finished`` answers ``session.finish`` (None: unconfirmed)."""
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
    workspace_endpoint: bool = False
    """Documented to need the workspace host ``wss://{WorkspaceId}.{region}.maas.aliyuncs.com``."""
    regions: tuple[str, ...] = ()
    """Regions of the workspace host that serve the model (empty: not needed or not known)."""
    sampling_defaults: Mapping[str, Number] = attrs.field(factory=dict, converter=_frozen_mapping)
    known: bool = True

    def image_tokens(self, width: int, height: int) -> int:
        """Tokens billed for one ``width`` x ``height`` image on this model."""
        return image_tokens(width, height, self.image_px_per_token)

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
    # Which list the alias accepts is unconfirmed (docs/protocol.md §6): the 17-voice list is safe.
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
    voices=None,  # 55 voices; the list is not reproduced in docs/protocol.md
    rejected_voices=("Cherry", "Chelsie"),  # both seen refused (third-party reports)
    default_voice="Tina",
    tools=True,  # parallel calls seen in captured qwen3.5-flash traffic
    text_input=True,  # input_text items answered in captured qwen3.5-flash traffic
    session_finish=False,  # answered "invalid event type" on qwen3.5-omni-flash (2026-06 report)
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


_QWEN38 = ModelInfo(
    name="qwen3.8-omni-flash-realtime",
    family="qwen3.8-omni-flash",
    # 16 kHz in, 24 kHz out: session.created says pcm16/pcm24 and the 24 kHz output was measured.
    # Other rates (the official SDK's nested audio.*.format) are not shown working: assumed not.
    voices=None,  # the documented list was not read directly (docs/protocol.md §6)
    rejected_voices=_QWEN38_REFUSED_VOICES,
    known_voices=_QWEN38_VOICES_SEEN_WORKING,
    default_voice="Tina",  # documented default and example; the server's own Chelsie is refused
    requires_voice=True,
    tools=True,  # the 3.8 access guide points to function calling and MCP flows
    video=True,  # assumed: image frames as on every Omni realtime model
    text_input=True,  # input_text items answered in captured traffic
    session_finish=True,  # the official SDK sends it for 3.8 ...
    session_finished_ack=False,  # ... and documents that no session.finished follows
    sampling_params=True,  # assumed
    semantic_vad=False,  # assumed: documented for qwen3.5 only
    idle_timeout=False,  # server-events reference: idle_timeout_ms on qwen3.5 only
    smooth_output=False,  # documented for qwen3-omni-flash only
    search=True,  # server-events reference: enable_search on 3.8 and 3.5
    audio_format_object=False,  # assumed: flat pcm16/pcm24 strings were accepted and echoed
    input_audio_tokens_per_s=7.0,  # assumed: as qwen3.5 (same audio front end per the model page)
    output_audio_tokens_per_s=12.5,  # assumed
    image_px_per_token=32,  # assumed
    transcription_model="qwen3-asr-flash-realtime",  # accepted in traffic; created says gummy
    workspace_endpoint=True,  # the newest guide: "must use the workspace-specific domain"
    regions=("cn-beijing", "ap-southeast-1"),
    sampling_defaults={},  # not published
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
    table.update(_snapshots(_QWEN38))
    return table


MODELS: Mapping[str, ModelInfo] = types.MappingProxyType(_build_table())
"""Every known model and snapshot, by name."""

_FAMILY_PREFIXES = (
    ("qwen3.8-omni", "qwen3.8-omni-flash-realtime"),
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
