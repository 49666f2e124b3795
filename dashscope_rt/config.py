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
import enum
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeVar

import attrs

from .errors import InvalidInput, UnsupportedByModel
from .models import ModelInfo, get_model

__all__ = [
    "AUDIO_FORMATS",
    "LEGACY_AUDIO_FORMATS",
    "SAMPLE_RATES",
    "UNSET",
    "SemanticVAD",
    "ServerVAD",
    "SessionConfig",
    "UnsetType",
]

log = logging.getLogger("dashscope_rt.config")


class UnsetType(enum.Enum):
    """Type of :data:`UNSET`, the "not set, leave the server default" marker."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = UnsetType.UNSET
"""A field left at the server's default; never sent."""

SAMPLE_RATES: Final = (8000, 16000, 24000, 48000)
"""Sample rates the nested qwen3.5 ``audio.*.format.sample_rate`` accepts."""
AUDIO_FORMATS: Final = ("pcm", "wav")
"""Values of the nested qwen3.5 ``audio.*.format.type``."""
LEGACY_AUDIO_FORMATS: Final = ("pcm", "pcm16", "pcm24")
"""Values of the top-level ``input_audio_format``/``output_audio_format`` strings."""

_SEED_MAX = 2**31 - 1
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "repetition_penalty",
    "presence_penalty",
    "seed",
)
_TOOL_CHOICE_MSG = (
    "tool_choice is not accepted by Qwen-Omni-Realtime: the model decides tool calls itself; "
    "remove 'tool_choice' (declare the tools and describe when to use them in the instructions)"
)
_IGNORED_WIRE_KEYS = frozenset(
    {"id", "object", "model", "max_response_output_token", "tool_choice"}
)

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]
_T = TypeVar("_T")


# --- validators -----------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _range_text(
    lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, allow: tuple[Any, ...]
) -> str:
    if lo is not None and hi is not None:
        text = f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    elif lo is not None:
        text = f"{'>' if lo_open else '>='} {_fmt(lo)}"
    elif hi is not None:
        text = f"{'<' if hi_open else '<='} {_fmt(hi)}"
    else:
        text = "of any value"
    for extra in allow:
        text += f" or {extra!r}"
    return text


def _number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    allow: tuple[Any, ...] = (),
    prefix: str = "",
) -> _Validator:
    """A validator for a number in a range; ``allow`` lists extra accepted values (e.g. None)."""
    kind = "an int" if integer else "a number"
    rng = _range_text(lo, hi, lo_open, hi_open, allow)

    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET:
            return
        if any(value is a or (type(value) is type(a) and value == a) for a in allow):
            return
        name = prefix + attr.name
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise InvalidInput(f"{name} must be {kind} {rng}, got {value!r}")
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number {rng}, got {value!r}")
        bad = (
            (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and (value >= hi if hi_open else value > hi))
        )  # fmt: skip
        if bad:
            raise InvalidInput(f"{name} must be {rng}, got {value!r}")

    return check


def _bool(prefix: str = "", *, allow_none: bool = False) -> _Validator:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET or isinstance(value, bool) or (allow_none and value is None):
            return
        what = "True, False or None" if allow_none else "True or False"
        raise InvalidInput(f"{prefix}{attr.name} must be {what}, got {value!r}")

    return check


def _choice(options: Iterable[Any], what: str) -> _Validator:
    opts = tuple(options)

    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is UNSET:
            return
        if isinstance(value, bool) or value not in opts or type(value) is not type(opts[0]):
            listed = ", ".join(repr(o) for o in opts)
            raise InvalidInput(f"{attr.name} must be one of {listed} ({what}), got {value!r}")

    return check


def _non_empty_str(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is UNSET:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{attr.name} must be a non-empty string, got {value!r}")


def _str(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not UNSET and not isinstance(value, str):
        raise InvalidInput(f"{attr.name} must be a string, got {type(value).__name__}")


def _vad(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is UNSET or value is None or isinstance(value, _BaseVAD):
        return
    raise InvalidInput(
        f"{attr.name} must be ServerVAD(...), SemanticVAD(...) or None (manual mode), "
        f"got {value!r}; pass raw dicts through extra={{'turn_detection': ...}}"
    )


# --- converters -----------------------------------------------------------------------------


class _FrozenMap(Mapping[str, Any]):
    """A read-only dict copy that can still be pickled and deep-copied (unlike mappingproxy)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._data,))


def _freeze_mapping(value: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(f"{name} keys must be strings, got {key!r}")
    return _FrozenMap(copy.deepcopy(dict(value)))


def _extra(value: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen = _freeze_mapping(value, "extra")
    if "tool_choice" in frozen:
        raise UnsupportedByModel(_TOOL_CHOICE_MSG, feature="tool_choice")
    return frozen


def _vad_extra(value: Mapping[str, Any]) -> Mapping[str, Any]:
    frozen = _freeze_mapping(value, "turn_detection extra")
    if "type" in frozen:
        raise InvalidInput("turn_detection extra must not set 'type'; use ServerVAD or SemanticVAD")
    return frozen


def _search_options(
    value: Mapping[str, Any] | UnsetType,
) -> Mapping[str, Any] | UnsetType:
    if value is UNSET:
        return UNSET
    frozen = _freeze_mapping(value, "search_options")
    source = frozen.get("enable_source", False)
    if not isinstance(source, bool):
        raise InvalidInput(f"search_options.enable_source must be True or False, got {source!r}")
    return frozen


def _modalities(value: Sequence[str] | UnsetType) -> tuple[str, ...] | UnsetType:
    if value is UNSET:
        return UNSET
    msg = "modalities must be ['text'] or ['text', 'audio'] (in any order)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput(f"{msg}, got {value!r}")
    items = list(value)
    if any(not isinstance(m, str) for m in items) or len(set(items)) != len(items):
        raise InvalidInput(f"{msg}, got {items!r}")
    if set(items) == {"text"}:
        return ("text",)
    if set(items) == {"text", "audio"}:
        return ("text", "audio")
    if set(items) == {"audio"}:
        raise InvalidInput(f"{msg}; the server refuses ['audio'] alone: use ['text', 'audio']")
    raise InvalidInput(f"{msg}, got {items!r}")


def _check_tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    shape = (
        "{'type': 'function', 'function': {'name': ..., 'description': ..., 'parameters': {...}}}"
    )
    if not isinstance(tool, Mapping):
        raise InvalidInput(f"{where} must be a dict shaped {shape}, got {type(tool).__name__}")
    if tool.get("type") != "function":
        raise InvalidInput(f"{where}.type must be 'function', got {tool.get('type')!r}")
    fn = tool.get("function")
    if not isinstance(fn, Mapping):
        hint = (
            " (the flat OpenAI-Realtime shape is not accepted by Qwen: nest name/parameters "
            "under 'function')"
            if "name" in tool
            else ""
        )
        raise InvalidInput(f"{where} must be shaped {shape}{hint}")
    name = fn.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise InvalidInput(
            f"{where}.function.name must match ^[a-zA-Z0-9_-]{{1,64}}$, got {name!r}"
        )
    desc = fn.get("description", "")
    if not isinstance(desc, str):
        raise InvalidInput(f"{where}.function.description must be a string, got {desc!r}")
    if "parameters" in fn:
        params = fn["parameters"]
        if not isinstance(params, Mapping) or params.get("type") != "object":
            raise InvalidInput(
                f"{where}.function.parameters must be a JSON schema object "
                f"({{'type': 'object', 'properties': {{...}}, 'required': [...]}}), got {params!r}"
            )
        props = params.get("properties", {})
        if not isinstance(props, Mapping):
            raise InvalidInput(f"{where}.function.parameters.properties must be a mapping")
        required = params.get("required", [])
        if isinstance(required, str) or not isinstance(required, Sequence):
            raise InvalidInput(f"{where}.function.parameters.required must be a list of names")
        if any(not isinstance(r, str) for r in required):
            raise InvalidInput(f"{where}.function.parameters.required must be a list of names")
    return copy.deepcopy(dict(tool))


def _tools(
    value: Sequence[Mapping[str, Any]] | UnsetType,
) -> tuple[dict[str, Any], ...] | UnsetType:
    if value is UNSET:
        return UNSET
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidInput(f"tools must be a list of tool dicts, got {type(value).__name__}")
    tools = tuple(_check_tool(t, i) for i, t in enumerate(value))
    names = [t["function"]["name"] for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"tools declares the same function name twice: {', '.join(dupes)}")
    return tools


# --- turn detection -------------------------------------------------------------------------


def _set_items(obj: Any, skip: tuple[str, ...] = ("extra",)) -> list[tuple[str, Any]]:
    return [
        (f.name, getattr(obj, f.name))
        for f in attrs.fields(type(obj))
        if f.name not in skip and getattr(obj, f.name) is not UNSET
    ]


def _repr(obj: Any) -> str:
    parts = [f"{k}={v!r}" for k, v in _set_items(obj)]
    if obj.extra:
        parts.append(f"extra={dict(obj.extra)!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


_VadT = TypeVar("_VadT", bound="_BaseVAD")


@attrs.frozen(kw_only=True, repr=False)
class _BaseVAD:
    """Fields common to both VAD types (docs/protocol.md §5.1)."""

    TYPE: ClassVar[str] = ""

    threshold: float | UnsetType = attrs.field(
        default=UNSET, validator=_number(-1.0, 1.0, prefix="turn_detection.")
    )
    """[-1.0, 1.0]; lower is more sensitive (server default 0.5)."""
    silence_duration_ms: int | UnsetType = attrs.field(
        default=UNSET, validator=_number(200, 6000, integer=True, prefix="turn_detection.")
    )
    """[200, 6000] ms of silence that ends a turn (server default 800)."""
    prefix_padding_ms: int | UnsetType = attrs.field(
        default=UNSET, validator=_number(0, integer=True, prefix="turn_detection.")
    )
    """Audio kept before speech start. Not in the client docs; a client saw it refused."""
    create_response: bool | UnsetType = attrs.field(
        default=UNSET, validator=_bool("turn_detection.")
    )
    interrupt_response: bool | UnsetType = attrs.field(
        default=UNSET, validator=_bool("turn_detection.")
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_vad_extra)
    """Unmodelled ``turn_detection`` keys, merged last."""

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object: ``type`` plus the fields that were set."""
        out: dict[str, Any] = {"type": self.TYPE}
        out.update(_set_items(self))
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_wire(cls: type[_VadT], data: Mapping[str, Any]) -> _VadT:
        """Tolerant parse of a ``turn_detection`` dict; unknown or invalid keys go to ``extra``."""
        known = {f.name for f in attrs.fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key == "type":
                continue
            if key in known and _accepts(cls, key, value):
                kwargs[key] = value
            else:
                extra[key] = value
        return cls(extra=extra, **kwargs)

    def merge(self: _VadT, other: _BaseVAD) -> _VadT:
        """A copy with every field set in ``other`` (of the same type) replacing this one's."""
        if type(other) is not type(self):
            raise InvalidInput(
                f"cannot merge {type(other).__name__} into {type(self).__name__}; "
                "replace the whole turn_detection instead"
            )
        changes: dict[str, Any] = dict(_set_items(other))
        if other.extra:
            changes["extra"] = {**self.extra, **other.extra}
        return attrs.evolve(self, **changes)

    def __repr__(self) -> str:
        return _repr(self)


@attrs.frozen(kw_only=True, repr=False)
class ServerVAD(_BaseVAD):
    """``{"type": "server_vad", ...}``: the server detects turns by voice activity."""

    TYPE: ClassVar[str] = "server_vad"

    idle_timeout_ms: int | UnsetType = attrs.field(
        default=UNSET, validator=_number(5000, 30000, integer=True, prefix="turn_detection.")
    )
    """[5000, 30000]: the model speaks up after this much user silence (qwen3.5 only)."""


@attrs.frozen(kw_only=True, repr=False)
class SemanticVAD(_BaseVAD):
    """``{"type": "semantic_vad", ...}``: ignores back-channel and background talk (qwen3.5)."""

    TYPE: ClassVar[str] = "semantic_vad"


_VAD_TYPES: Mapping[str, type[_BaseVAD]] = {"server_vad": ServerVAD, "semantic_vad": SemanticVAD}


def _accepts(cls: type[Any], name: str, value: Any) -> bool:
    try:
        cls(**{name: value})
    except (InvalidInput, TypeError):
        return False
    return True


# --- the session config ---------------------------------------------------------------------


def _unsupported(info: ModelInfo, feature: str, message: str) -> UnsupportedByModel:
    return UnsupportedByModel(f"{info.name}: {message}", model=info.name, feature=feature)


def _resolve(model: ModelInfo | str) -> ModelInfo:
    if isinstance(model, ModelInfo):
        return model
    return get_model(model)


@attrs.frozen(kw_only=True, repr=False)
class SessionConfig:
    """The ``session`` object of ``session.update``; every field is optional (see module doc)."""

    modalities: tuple[str, ...] | UnsetType = attrs.field(default=UNSET, converter=_modalities)
    """``["text"]`` or ``["text", "audio"]`` (any order; stored in that order)."""
    voice: str | UnsetType = attrs.field(default=UNSET, validator=_non_empty_str)
    instructions: str | UnsetType = attrs.field(default=UNSET, validator=_str)
    input_audio_format: str | UnsetType = attrs.field(
        default=UNSET,
        validator=_choice((*LEGACY_AUDIO_FORMATS, "wav"), "'wav' only on qwen3.5 models"),
    )
    output_audio_format: str | UnsetType = attrs.field(
        default=UNSET,
        validator=_choice((*LEGACY_AUDIO_FORMATS, "wav"), "'wav' only on qwen3.5 models"),
    )
    input_sample_rate: int | UnsetType = attrs.field(
        default=UNSET, validator=_choice(SAMPLE_RATES, "Hz")
    )
    """Other than the model's default only on qwen3.5 (sent as ``audio.input.format``)."""
    output_sample_rate: int | UnsetType = attrs.field(
        default=UNSET, validator=_choice(SAMPLE_RATES, "Hz")
    )
    turn_detection: ServerVAD | SemanticVAD | UnsetType | None = attrs.field(
        default=UNSET, validator=_vad
    )
    """A VAD, or None for manual mode (commit + response.create yourself)."""
    input_transcription: bool | UnsetType = attrs.field(default=UNSET, validator=_bool())
    """Transcribe the user's audio (``input_audio_transcription``); False sends null."""
    temperature: float | UnsetType = attrs.field(
        default=UNSET, validator=_number(0, 2, hi_open=True)
    )
    top_p: float | UnsetType = attrs.field(default=UNSET, validator=_number(0, 1, lo_open=True))
    top_k: int | UnsetType | None = attrs.field(
        default=UNSET, validator=_number(0, integer=True, allow=(None,))
    )
    """>= 0; None (or > 100) disables top-k."""
    max_tokens: int | UnsetType = attrs.field(default=UNSET, validator=_number(1, integer=True))
    repetition_penalty: float | UnsetType = attrs.field(
        default=UNSET, validator=_number(0, lo_open=True)
    )
    presence_penalty: float | UnsetType = attrs.field(default=UNSET, validator=_number(-2, 2))
    seed: int | UnsetType = attrs.field(
        default=UNSET, validator=_number(0, _SEED_MAX, integer=True, allow=(-1,))
    )
    """[0, 2**31-1], or -1 for a random seed (the server's default)."""
    smooth_output: bool | UnsetType | None = attrs.field(
        default=UNSET, validator=_bool(allow_none=True)
    )
    """qwen3-omni-flash: True conversational, False formal, None auto (sent as null)."""
    enable_search: bool | UnsetType = attrs.field(default=UNSET, validator=_bool())
    search_options: Mapping[str, Any] | UnsetType = attrs.field(
        default=UNSET, converter=_search_options
    )
    tools: tuple[dict[str, Any], ...] | UnsetType = attrs.field(default=UNSET, converter=_tools)
    """Wire-shaped ``{"type": "function", "function": {name, description, parameters}}``."""
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_extra)
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
                {"model": info.transcription_model} if self.input_transcription else None
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
            raise _unsupported(info, "tool_choice", _TOOL_CHOICE_MSG)
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_wire(cls, session: Mapping[str, Any]) -> SessionConfig:
        """Tolerant parse of a ``session`` object (``session.created``/``session.updated``).

        Meant for showing the effective config. Server echoes such as ``prefix_padding_ms`` are
        kept, so resend the config you built rather than this one. Unknown or invalid keys go to
        ``extra``; ``id``, ``object``, ``model``, ``max_response_output_token`` and
        ``tool_choice`` are dropped.
        """
        if not isinstance(session, Mapping):
            raise InvalidInput(f"session must be a mapping, got {type(session).__name__}")
        plain = {f.name for f in attrs.fields(cls)} - {
            "turn_detection",
            "input_transcription",
            "input_sample_rate",
            "output_sample_rate",
            "extra",
        }
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in session.items():
            if key in _IGNORED_WIRE_KEYS:
                continue
            parsed: dict[str, Any] | None = None
            if key in plain:
                parsed = {key: value} if _accepts(cls, key, value) else None
            elif key == "input_audio_transcription":
                parsed = _transcription_from_wire(value)
            elif key == "turn_detection":
                parsed = _vad_from_wire(value)
            elif key == "audio":
                parsed = _audio_from_wire(value)
            if parsed is None:
                if key in plain or key in ("input_audio_transcription", "turn_detection", "audio"):
                    log.debug("session.%s=%r not understood; kept in extra", key, value)
                extra[key] = value
            else:
                kwargs.update(parsed)
        return cls(extra=extra, **kwargs)

    # --- model checks ------------------------------------------------------------------

    @staticmethod
    def _check_voice(info: ModelInfo, voice: str) -> None:
        if info.accepts_voice(voice):
            return
        if info.voices is not None:
            choose = f"choose one of: {', '.join(info.voices)}"
        else:
            choose = f"it is known to be refused; the model's default is {info.default_voice!r}"
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
        if not info.audio_format_object:
            raise _unsupported(
                info,
                name,
                f"{name}={rate} is not supported: this model only takes {default} Hz "
                f"(other rates need a qwen3.5 model); resample the audio instead",
            )
        if rate not in allowed:
            rates = ", ".join(str(r) for r in allowed)
            raise _unsupported(info, name, f"{name}={rate} is not supported; use one of {rates}")

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
            audio[side] = {
                "format": {
                    "type": "wav" if fmt == "wav" else "pcm",
                    "sample_rate": default if rate is UNSET else rate,
                }
            }
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
            )
        return vad.to_wire()

    def _sampling_wire(self, info: ModelInfo) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _SAMPLING_FIELDS}
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
                "tools and enable_search=True cannot be used together; choose one of them"
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


def _transcription_from_wire(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {"input_transcription": False}
    if isinstance(value, Mapping):
        return {"input_transcription": True}
    return None


def _vad_from_wire(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {"turn_detection": None}
    if isinstance(value, Mapping):
        cls = _VAD_TYPES.get(value.get("type", "server_vad"))
        if cls is not None:
            return {"turn_detection": cls.from_wire(value)}
    return None


def _audio_from_wire(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping) or not set(value) <= {"input", "output"}:
        return None
    out: dict[str, Any] = {}
    for side in ("input", "output"):
        if side not in value:
            continue
        part = value[side]
        if not isinstance(part, Mapping) or set(part) != {"format"}:
            return None
        fmt = part["format"]
        if not isinstance(fmt, Mapping) or not set(fmt) <= {"type", "sample_rate"}:
            return None
        if "type" in fmt:
            if fmt["type"] not in AUDIO_FORMATS:
                return None
            out[f"{side}_audio_format"] = fmt["type"]
        if "sample_rate" in fmt:
            if not _accepts(SessionConfig, f"{side}_sample_rate", fmt["sample_rate"]):
                return None
            out[f"{side}_sample_rate"] = fmt["sample_rate"]
    return out
