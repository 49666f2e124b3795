"""Session configuration: what goes into the ``session`` object of ``session.update``.

Every field starts as :data:`UNSET` and unset fields are never sent, so the server keeps its
default. ``None`` is a real value where the protocol has one: ``turn_detection=None`` is manual
mode and ``smooth_output=None`` is "auto", both sent as JSON ``null``. Ranges are checked when a
config is built (:class:`~dashscope_rt.errors.InvalidInput`); what a model cannot do is checked by
:meth:`SessionConfig.to_wire` (:class:`~dashscope_rt.errors.UnsupportedByModel`).
See docs/protocol.md §5.

Model rules in ``to_wire``: a setting that *asks* for something the model lacks is refused
(tools, ``enable_search=True``, semantic VAD, ``idle_timeout_ms``, ``wav`` or a non-default sample
rate, any sampling parameter on turbo, ``smooth_output=True/False`` off qwen3-omni-flash). A setting
that asks for nothing (``tools=()``, ``enable_search=False``, empty ``search_options``,
``smooth_output=None``) is dropped there instead, so a config echoed by one model can be resent.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs

from . import _validators as check
from . import limits
from ._turn_detection import (
    _VAD_TYPES,
    VAD_DEFAULTS,
    SemanticVAD,
    ServerVAD,
    _BaseVAD,
    _repr,
    _set_items,
)
from ._validators import UNSET, UnsetType, check_modalities
from .errors import InvalidInput, UnsupportedByModel
from .limits import AUDIO_FORMATS, LEGACY_AUDIO_FORMATS, SAMPLE_RATES
from .models import ModelInfo, get_model

__all__ = [
    "AUDIO_FORMATS",
    "LEGACY_AUDIO_FORMATS",
    "SAMPLE_RATES",
    "SAMPLING_FIELDS",
    "UNSET",
    "VAD_DEFAULTS",
    "SemanticVAD",
    "ServerVAD",
    "SessionConfig",
    "UnsetType",
    "audio_format_object",
    "check_modalities",
    "transcription_object",
]

log = logging.getLogger("dashscope_rt.config")


SAMPLING_FIELDS: Final = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "repetition_penalty",
    "presence_penalty",
    "seed",
)
"""The sampling parameters (fixed on qwen-omni-turbo)."""
_IGNORED_WIRE_KEYS = frozenset(
    {"id", "object", "model", "max_response_output_token", "tool_choice"}
)

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_T = TypeVar("_T")


def _vad(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is UNSET or value is None or isinstance(value, _BaseVAD):
        return
    raise InvalidInput(
        f"{attr.name} must be ServerVAD(...), SemanticVAD(...) or None (manual mode), "
        f"got {value!r}; pass raw dicts through extra={{'turn_detection': ...}}",
        param=attr.name,
    )


# --- the session config ---------------------------------------------------------------------


def _unsupported(
    info: ModelInfo, feature: str, message: str, param: str | None = None
) -> UnsupportedByModel:
    return UnsupportedByModel(
        f"{info.name}: {message}", model=info.name, feature=feature, param=param
    )


def transcription_object(model: ModelInfo) -> dict[str, Any]:
    """The ``input_audio_transcription`` object that turns transcription on for ``model``."""
    return {"model": model.transcription_model}


def audio_format_object(fmt: str, rate: int) -> dict[str, Any]:
    """One side of the nested qwen3.5 ``audio`` object: ``{"format": {"type", "sample_rate"}}``
    (``type`` is ``"wav"`` or ``"pcm"``)."""
    return {"format": {"type": "wav" if fmt == "wav" else "pcm", "sample_rate": rate}}


def _resolve(model: ModelInfo | str) -> ModelInfo:
    if isinstance(model, ModelInfo):
        return model
    return get_model(model)


@attrs.frozen(kw_only=True, repr=False)
class SessionConfig:
    """The ``session`` object of ``session.update``; every field is optional (see module doc)."""

    modalities: tuple[str, ...] | UnsetType = attrs.field(default=UNSET, converter=check.modalities)
    """``["text"]`` or ``["text", "audio"]`` (any order; stored in that order)."""
    voice: str | UnsetType = attrs.field(default=UNSET, validator=check.non_empty_str)
    instructions: str | UnsetType = attrs.field(default=UNSET, validator=check.string)
    input_audio_format: str | UnsetType = attrs.field(
        default=UNSET,
        validator=check.choice((*LEGACY_AUDIO_FORMATS, "wav"), "'wav' only on qwen3.5 models"),
    )
    output_audio_format: str | UnsetType = attrs.field(
        default=UNSET,
        validator=check.choice((*LEGACY_AUDIO_FORMATS, "wav"), "'wav' only on qwen3.5 models"),
    )
    input_sample_rate: int | UnsetType = attrs.field(
        default=UNSET, validator=check.choice(SAMPLE_RATES, "Hz")
    )
    """Other than the model's default only on qwen3.5 (sent as ``audio.input.format``)."""
    output_sample_rate: int | UnsetType = attrs.field(
        default=UNSET, validator=check.choice(SAMPLE_RATES, "Hz")
    )
    turn_detection: ServerVAD | SemanticVAD | UnsetType | None = attrs.field(
        default=UNSET, validator=_vad
    )
    """A VAD, or None for manual mode (commit + response.create yourself)."""
    input_transcription: bool | UnsetType = attrs.field(default=UNSET, validator=check.boolean())
    """Transcribe the user's audio (``input_audio_transcription``); False sends null."""
    temperature: float | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.TEMPERATURE)
    )
    top_p: float | UnsetType = attrs.field(default=UNSET, validator=check.number(limits.TOP_P))
    top_k: int | UnsetType | None = attrs.field(default=UNSET, validator=check.number(limits.TOP_K))
    """>= 0; None (or > 100) disables top-k."""
    max_tokens: int | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.MAX_TOKENS)
    )
    repetition_penalty: float | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.REPETITION_PENALTY)
    )
    presence_penalty: float | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.PRESENCE_PENALTY)
    )
    seed: int | UnsetType = attrs.field(default=UNSET, validator=check.number(limits.SEED))
    """[0, 2**31-1], or -1 for a random seed (the server's default)."""
    smooth_output: bool | UnsetType | None = attrs.field(
        default=UNSET, validator=check.boolean(allow_none=True)
    )
    """qwen3-omni-flash: True conversational, False formal, None auto (sent as null)."""
    enable_search: bool | UnsetType = attrs.field(default=UNSET, validator=check.boolean())
    search_options: Mapping[str, Any] | UnsetType = attrs.field(
        default=UNSET, converter=check.search_options
    )
    tools: tuple[dict[str, Any], ...] | UnsetType = attrs.field(
        default=UNSET, converter=check.tools
    )
    """Wire-shaped ``{"type": "function", "function": {name, description, parameters}}``."""
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=check.extra_mapping)
    """Unmodelled keys, merged last (they override modelled ones). Not checked per model."""

    def __repr__(self) -> str:
        return _repr(self)

    # --- effective values --------------------------------------------------------------

    def input_rate(self, model: ModelInfo | str) -> int:
        """Sample rate of the audio to append: the configured one or the model's default."""
        info = _resolve(model)
        self._check_rate(info, "input_sample_rate", self.input_sample_rate, info.input_rates)
        return info.input_rate if self.input_sample_rate is UNSET else self.input_sample_rate

    def output_rate(self, model: ModelInfo | str) -> int:
        """Sample rate of the audio the server sends: the configured one or the model's default."""
        info = _resolve(model)
        self._check_rate(info, "output_sample_rate", self.output_sample_rate, info.output_rates)
        return info.output_rate if self.output_sample_rate is UNSET else self.output_sample_rate

    def merge(self, other: SessionConfig) -> SessionConfig:
        """A copy where every field set in ``other`` wins; VADs of one type and ``extra`` merge."""
        if not isinstance(other, SessionConfig):
            raise InvalidInput(f"merge() needs a SessionConfig, got {type(other).__name__}")
        changes: dict[str, Any] = dict(_set_items(other))
        mine, theirs = self.turn_detection, other.turn_detection
        if isinstance(mine, _BaseVAD) and type(mine) is type(theirs):
            changes["turn_detection"] = mine.merge(theirs)
        if other.extra:
            changes["extra"] = {**self.extra, **other.extra}
        return attrs.evolve(self, **changes)

    # --- wire format -------------------------------------------------------------------

    def to_wire(self, model: ModelInfo | str) -> dict[str, Any]:
        """The ``session`` dict for ``model``: unset fields omitted, unsupported ones refused.

        The one field sent unset: the voice, on a model whose server default is refused
        (``ModelInfo.requires_voice``), which gets ``ModelInfo.default_voice``.
        """
        info = _resolve(model)
        out: dict[str, Any] = {}
        if self.modalities is not UNSET:
            out["modalities"] = list(self.modalities)
        if self.voice is not UNSET:
            self._check_voice(info, self.voice)
            out["voice"] = self.voice
        elif info.requires_voice:  # the server's own default is refused (docs/protocol.md §5.3)
            out["voice"] = info.default_voice
        if self.instructions is not UNSET:
            out["instructions"] = self.instructions
        out.update(self._audio_wire(info))
        if self.input_transcription is not UNSET:
            out["input_audio_transcription"] = (
                transcription_object(info) if self.input_transcription else None
            )
        if self.turn_detection is not UNSET:
            out["turn_detection"] = self._vad_wire(info)
        if self.smooth_output is not UNSET:
            if info.smooth_output:
                out["smooth_output"] = self.smooth_output
            elif self.smooth_output is None:
                log.debug("%s: smooth_output=None (auto) not sent: no such option", info.name)
            else:
                raise _unsupported(
                    info,
                    "smooth_output",
                    "smooth_output is only available on qwen3-omni-flash models "
                    "(turbo ignores it, qwen3.5 does not document it); remove it",
                )
        out.update(self._sampling_wire(info))
        out.update(self._search_and_tools_wire(info))
        if "tool_choice" in self.extra:
            raise _unsupported(info, "tool_choice", check.TOOL_CHOICE_MSG)
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_wire(cls, session: Mapping[str, Any], *, strict: bool = False) -> SessionConfig:
        """Parse a ``session`` object (``session.created``/``session.updated``, or the one a
        client sends).

        Tolerant by default, for showing the effective config: unknown or invalid keys go to
        ``extra``. Server echoes such as ``prefix_padding_ms`` are kept, so resend the config you
        built rather than this one. With ``strict`` (how the simulator reads ``session.update``),
        an invalid value raises :class:`~dashscope_rt.errors.InvalidInput` whose ``param`` names
        it; unknown keys still go to ``extra``. ``id``, ``object``, ``model``,
        ``max_response_output_token`` and ``tool_choice`` are dropped either way. Model checks
        are :meth:`to_wire`'s.
        """
        if not isinstance(session, Mapping):
            raise InvalidInput(
                f"session must be a mapping, got {type(session).__name__}", param="session"
            )
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in session.items():
            if key in _IGNORED_WIRE_KEYS:
                continue
            parse = _WIRE_PARSERS.get(key, _plain_from_wire if key in _PLAIN_KEYS else None)
            if parse is None:
                extra[key] = value
                continue
            try:
                kwargs.update(parse(key, value, strict))
            except InvalidInput:
                if strict:
                    raise
                log.debug("session.%s=%r not understood; kept in extra", key, value)
                extra[key] = value
        return cls(extra=extra, **kwargs)

    def with_defaults(self, model: ModelInfo | str) -> SessionConfig:
        """A copy with every unset field at the service's default for ``model``: what
        ``session.created`` reports, merged with this config. For showing and for the simulator;
        not for sending (it sets fields some models refuse, such as turbo's fixed sampling).

        Defaults come from :mod:`dashscope_rt.limits` (protocol-wide) and the model table
        (voice, rates, sampling, ``max_tokens``, ``smooth_output``).
        """
        info = _resolve(model)
        vad = self.turn_detection
        defaults: dict[str, Any] = {
            "modalities": limits.DEFAULT_MODALITIES,
            "voice": info.default_voice or UNSET,
            "instructions": "",
            "input_audio_format": limits.DEFAULT_AUDIO_FORMAT,
            "output_audio_format": limits.DEFAULT_AUDIO_FORMAT,
            "input_sample_rate": info.input_rate,
            "output_sample_rate": info.output_rate,
            "turn_detection": ServerVAD() if vad is UNSET else vad,
            "input_transcription": True,
            "max_tokens": UNSET if info.max_output_tokens is None else info.max_output_tokens,
            "seed": limits.DEFAULT_SEED,
            "smooth_output": True if info.smooth_output else UNSET,
            "enable_search": False,
            "search_options": {},
            "tools": (),
            **info.sampling_defaults,
        }
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is UNSET}
        vad = changes.get("turn_detection", vad)
        if isinstance(vad, _BaseVAD):
            changes["turn_detection"] = vad.with_defaults()
        return attrs.evolve(self, **changes)

    # --- model checks ------------------------------------------------------------------

    @staticmethod
    def _check_voice(info: ModelInfo, voice: str) -> None:
        if info.accepts_voice(voice):
            return
        if info.voices is not None:
            choose = f"choose one of: {', '.join(info.voices)}"
        else:
            choose = (
                f"it is known to be refused. Leave voice unset for the model's default, "
                f"{info.default_voice!r}, or pick one from the model's voice list in DashScope's "
                "Qwen-Omni-Realtime guide (not held by this SDK)"
            )
        raise _unsupported(info, "voice", f"voice {voice!r} is not available here; {choose}")

    @staticmethod
    def _check_rate(
        info: ModelInfo, name: str, rate: int | UnsetType, allowed: tuple[int, ...]
    ) -> None:
        if rate is UNSET:
            return
        default = info.input_rate if name.startswith("input") else info.output_rate
        if rate == default and not info.audio_format_object:
            return
        param = f"audio.{name.split('_')[0]}.format.sample_rate"
        if not info.audio_format_object:
            raise _unsupported(
                info,
                name,
                f"{name}={rate} is not supported: this model only takes {default} Hz "
                f"(other rates need a qwen3.5 model); resample the audio instead",
                param,
            )
        if rate not in allowed:
            rates = ", ".join(str(r) for r in allowed)
            raise _unsupported(
                info, name, f"{name}={rate} is not supported; use one of {rates}", param
            )

    def _audio_wire(self, info: ModelInfo) -> dict[str, Any]:
        self._check_rate(info, "input_sample_rate", self.input_sample_rate, info.input_rates)
        self._check_rate(info, "output_sample_rate", self.output_sample_rate, info.output_rates)
        wav = "wav" in (self.input_audio_format, self.output_audio_format)
        if wav and not info.audio_format_object:
            field = (
                "input_audio_format" if self.input_audio_format == "wav" else "output_audio_format"
            )
            raise _unsupported(
                info, field, f"{field}='wav' needs a qwen3.5 model; use 'pcm' and raw PCM16 audio"
            )
        nested = info.audio_format_object and (
            wav or self.input_sample_rate is not UNSET or self.output_sample_rate is not UNSET
        )
        out: dict[str, Any] = {}
        if not nested:
            if self.input_audio_format is not UNSET:
                out["input_audio_format"] = self.input_audio_format
            if self.output_audio_format is not UNSET:
                out["output_audio_format"] = self.output_audio_format
            return out
        # The nested qwen3.5 form; never mixed with the legacy strings (as the official SDK does).
        audio: dict[str, Any] = {}
        sides = (
            ("input", self.input_audio_format, self.input_sample_rate, info.input_rate),
            ("output", self.output_audio_format, self.output_sample_rate, info.output_rate),
        )
        for side, fmt, rate, default in sides:
            if fmt is UNSET and rate is UNSET:
                continue
            audio[side] = audio_format_object(str(fmt), default if rate is UNSET else rate)
        return {"audio": audio}

    def _vad_wire(self, info: ModelInfo) -> dict[str, Any] | None:
        vad = self.turn_detection
        if vad is None or vad is UNSET:
            return None
        if isinstance(vad, SemanticVAD) and not info.semantic_vad:
            raise _unsupported(
                info,
                "semantic_vad",
                "SemanticVAD is only available on qwen3.5 models; use ServerVAD(...)",
                "turn_detection.type",
            )
        if (
            isinstance(vad, ServerVAD)
            and vad.idle_timeout_ms is not UNSET
            and not info.idle_timeout
        ):
            raise _unsupported(
                info,
                "idle_timeout_ms",
                "turn_detection.idle_timeout_ms is only available on qwen3.5 models; remove it",
                "turn_detection.idle_timeout_ms",
            )
        return vad.to_wire()

    def _sampling_wire(self, info: ModelInfo) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in SAMPLING_FIELDS}
        out = {k: v for k, v in out.items() if v is not UNSET}
        if out and not info.sampling_params:
            names = ", ".join(out)
            raise _unsupported(
                info,
                next(iter(out)),
                f"sampling parameters cannot be changed on this model ({names}); remove them "
                f"or use a qwen3-omni-flash or qwen3.5 model",
            )
        limit = info.max_output_tokens
        if isinstance(self.max_tokens, int) and limit is not None and self.max_tokens > limit:
            raise _unsupported(
                info, "max_tokens", f"max_tokens must be in [1, {limit}], got {self.max_tokens}"
            )
        return out

    def _search_and_tools_wire(self, info: ModelInfo) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.enable_search is True and not info.search:
            raise _unsupported(
                info,
                "enable_search",
                "enable_search (web search) is only available on qwen3.5-omni-plus models; "
                "remove it",
            )
        if self.search_options is not UNSET and self.search_options and not info.search:
            raise _unsupported(
                info,
                "search_options",
                "search_options needs web search, only available on qwen3.5-omni-plus models; "
                "remove it",
            )
        if self.tools is not UNSET and self.tools and not info.tools:
            raise _unsupported(
                info,
                "tools",
                "tools (function calling) are only available on qwen3.5 models; remove them "
                "or use qwen3.5-omni-plus-realtime / qwen3.5-omni-flash-realtime",
            )
        if self.enable_search is True and self.tools:
            raise InvalidInput(
                "tools and enable_search=True cannot be used together; choose one of them",
                param="tools",
            )
        for name in ("enable_search", "search_options"):
            value = getattr(self, name)
            if value is not UNSET:
                if info.search or value:
                    out[name] = _plain(value)
                else:
                    log.debug("%s: %s=%r not sent: no web search", info.name, name, value)
        if self.tools is not UNSET:
            if info.tools:
                out["tools"] = copy.deepcopy(list(self.tools))
            else:
                log.debug("%s: empty tools not sent: no function calling", info.name)
        return out


def _plain(value: _T) -> _T:
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))  # type: ignore[return-value]
    return value


def _plain_from_wire(key: str, value: Any, strict: bool) -> dict[str, Any]:
    SessionConfig(**{key: value})  # raises InvalidInput for an invalid value
    return {key: value}


def _transcription_from_wire(key: str, value: Any, strict: bool) -> dict[str, Any]:
    if value is None:
        return {"input_transcription": False}
    if isinstance(value, Mapping):
        return {"input_transcription": True}
    raise InvalidInput(f"{key} must be an object or null, got {value!r}", param=key)


def _vad_from_wire(key: str, value: Any, strict: bool) -> dict[str, Any]:
    if value is None:
        return {"turn_detection": None}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{key} must be an object or null, got {value!r}", param=key)
    kind = value.get("type", "server_vad")
    cls = _VAD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInput(
            f"{key}.type must be one of {', '.join(map(repr, _VAD_TYPES))}, got {kind!r}",
            param=f"{key}.type",
        )
    return {"turn_detection": cls.from_wire(value, strict=strict)}


def _audio_from_wire(key: str, value: Any, strict: bool) -> dict[str, Any]:
    shape = "{'input': {'format': {'type': ..., 'sample_rate': ...}}, 'output': {...}}"
    if not isinstance(value, Mapping) or not set(value) <= {"input", "output"}:
        raise InvalidInput(f"audio must be shaped {shape}, got {value!r}", param="audio")
    out: dict[str, Any] = {}
    for side in ("input", "output"):
        if side not in value:
            continue
        part, where = value[side], f"audio.{side}"
        if not isinstance(part, Mapping) or set(part) != {"format"}:
            raise InvalidInput(f"{where} must be {{'format': {{...}}}}, got {part!r}", param=where)
        fmt, where = part["format"], f"{where}.format"
        if not isinstance(fmt, Mapping) or not set(fmt) <= {"type", "sample_rate"}:
            raise InvalidInput(
                f"{where} must be {{'type': ..., 'sample_rate': ...}}, got {fmt!r}", param=where
            )
        if "type" in fmt:
            if fmt["type"] not in AUDIO_FORMATS:
                raise InvalidInput(
                    f"{where}.type must be one of {', '.join(map(repr, AUDIO_FORMATS))}, "
                    f"got {fmt['type']!r}",
                    param=f"{where}.type",
                )
            out[f"{side}_audio_format"] = fmt["type"]
        if "sample_rate" in fmt:
            try:
                SessionConfig(**{f"{side}_sample_rate": fmt["sample_rate"]})
            except InvalidInput as e:
                raise InvalidInput(str(e), param=f"{where}.sample_rate") from None
            out[f"{side}_sample_rate"] = fmt["sample_rate"]
    return out


_WireParser = Callable[[str, Any, bool], dict[str, Any]]
_WIRE_PARSERS: Mapping[str, _WireParser] = {
    "input_audio_transcription": _transcription_from_wire,
    "turn_detection": _vad_from_wire,
    "audio": _audio_from_wire,
}
_PLAIN_KEYS = frozenset(
    {f.name for f in attrs.fields(SessionConfig)}
    - {"turn_detection", "input_transcription", "input_sample_rate", "output_sample_rate", "extra"}
)
