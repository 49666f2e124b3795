"""The objects nested in server events (error details, session, items, content, usage,
response), and the tolerant readers that build them: a wrong-typed JSON value reads as None.

Public through :mod:`dashscope_rt.events`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ._wire import WireObject, write

__all__ = ["ContentPart", "ErrorDetail", "Item", "Response", "SessionInfo", "Usage"]


def _raw() -> Any:
    return attrs.field(factory=dict, eq=False, repr=False)


# --------------------------------------------------------------------------------------------
# Tolerant readers: a wrong-typed JSON value reads as None (bool is never an int here).


def _str(v: Any) -> str | None:
    return v if type(v) is str else None


def _int(v: Any) -> int | None:
    return v if type(v) is int else None


def _num(v: Any) -> float | None:
    return v if type(v) is int or type(v) is float else None


def _bool(v: Any) -> bool | None:
    return v if type(v) is bool else None


def _map(v: Any) -> Mapping[str, Any] | None:
    return v if type(v) is dict else None


def _strs(v: Any) -> tuple[str, ...] | None:
    if type(v) is not list:
        return None
    return tuple(x for x in v if type(x) is str)


def _maps(v: Any) -> tuple[Mapping[str, Any], ...] | None:
    if type(v) is not list:
        return None
    return tuple(x for x in v if type(x) is dict)


# --------------------------------------------------------------------------------------------
# Nested objects


@attrs.frozen(kw_only=True)
class ErrorDetail(WireObject):
    """The ``error`` object of an ``error`` or ``...transcription.failed`` event."""

    _WIRE_ALWAYS: ClassVar[frozenset[str]] = frozenset({"type", "code", "message", "param"})

    type: str | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None
    event_id: str | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ErrorDetail:
        """Build from the wire dict (tolerant: the text survives whatever its shape)."""
        inner = d.get("error")
        nested = inner if type(inner) is dict else {}
        return cls(
            type=_either(_str(d.get("type")), _str(nested.get("type"))),
            code=_either(_code(d.get("code")), _code(nested.get("code"))),
            message=_message(d),
            param=_either(_str(d.get("param")), _str(nested.get("param"))),
            event_id=_str(d.get("event_id")),
            raw=d,
        )

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ErrorDetail:
        """The ``error`` of an event: an object, a bare string, or absent (then the event's own
        ``message``/``code`` fields)."""
        v = event.get("error")
        if type(v) is dict:
            return cls.from_wire(v)
        if v is None:
            return cls.from_wire({k: event[k] for k in ("code", "message", "param") if k in event})
        return cls.from_wire({"message": v})


def _either(value: str | None, fallback: str | None) -> str | None:
    """``value`` unless it is missing (an empty string is kept: the wire said so)."""
    return value if value is not None else fallback


def _code(v: Any) -> str | None:
    if type(v) is str:
        return v
    return str(v) if type(v) is int else None


def _message(d: Mapping[str, Any], depth: int = 0) -> str | None:
    """The human text of an error object, looked for in ``message``, ``msg``, ``detail`` and a
    nested ``error``; a value that is not a string is kept as JSON."""
    for key in ("message", "msg", "detail", "error"):
        v = d.get(key)
        if v is None or v == "":
            continue
        if type(v) is str:
            return v
        if type(v) is dict and depth < 4:
            found = _message(v, depth + 1)
            if found is not None:
                return found
        return json.dumps(v, ensure_ascii=False, default=str)
    return "" if d.get("message") == "" else None


@attrs.frozen(kw_only=True)
class SessionInfo(WireObject):
    """The effective session configuration echoed by ``session.created``/``session.updated``.

    ``turn_detection`` and ``input_audio_transcription`` are None when off (manual mode, no
    transcription) and when not echoed; ``raw`` tells which (the service writes null, or leaves
    the key out). A built one writes null only for the fields named by ``with_nulls()``.
    """

    id: str | None = None
    object: str | None = None
    model: str | None = None
    modalities: tuple[str, ...] | None = None
    voice: str | None = None
    instructions: str | None = None
    input_audio_format: str | None = None
    output_audio_format: str | None = None
    audio: Mapping[str, Any] | None = None
    input_audio_transcription: Mapping[str, Any] | None = None
    turn_detection: Mapping[str, Any] | None = None
    enable_search: bool | None = None
    search_options: Mapping[str, Any] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | None = None
    smooth_output: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    max_response_output_token: int | str | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> SessionInfo:
        """Build from the wire dict (tolerant)."""
        mrot = d.get("max_response_output_token")
        return cls(
            id=_str(d.get("id")),
            object=_str(d.get("object")),
            model=_str(d.get("model")),
            modalities=_strs(d.get("modalities")),
            voice=_str(d.get("voice")),
            instructions=_str(d.get("instructions")),
            input_audio_format=_str(d.get("input_audio_format")),
            output_audio_format=_str(d.get("output_audio_format")),
            audio=_map(d.get("audio")),
            input_audio_transcription=_map(d.get("input_audio_transcription")),
            turn_detection=_map(d.get("turn_detection")),
            enable_search=_bool(d.get("enable_search")),
            search_options=_map(d.get("search_options")),
            tools=_maps(d.get("tools")),
            tool_choice=_str(d.get("tool_choice")),
            smooth_output=_bool(d.get("smooth_output")),
            temperature=_num(d.get("temperature")),
            top_p=_num(d.get("top_p")),
            top_k=_int(d.get("top_k")),
            max_tokens=_int(d.get("max_tokens")),
            max_response_output_token=mrot if type(mrot) is int or type(mrot) is str else None,
            repetition_penalty=_num(d.get("repetition_penalty")),
            presence_penalty=_num(d.get("presence_penalty")),
            seed=_int(d.get("seed")),
            raw=d,
        )


@attrs.frozen(kw_only=True)
class ContentPart(WireObject):
    """One content part of an item. Qwen puts the text in ``text`` or ``transcript``."""

    type: str | None = None
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None  # base64 as sent; not documented for Qwen
    raw: Mapping[str, Any] = _raw()

    @property
    def text_or_transcript(self) -> str | None:
        """``text`` if present (and non-empty), else ``transcript``."""
        return self.text or self.transcript or self.text

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ContentPart:
        """Build from the wire dict (tolerant)."""
        return cls(
            type=_str(d.get("type")),
            text=_str(d.get("text")),
            transcript=_str(d.get("transcript")),
            audio=_str(d.get("audio")),
            raw=d,
        )


def _part(v: Any) -> ContentPart | None:
    return ContentPart.from_wire(v) if type(v) is dict else None


@attrs.frozen(kw_only=True)
class Item(WireObject):
    """A conversation item: a ``message`` (with ``content``), a ``function_call`` or its
    ``function_call_output`` (``call_id`` + ``output``)."""

    id: str | None = None
    object: str | None = None
    type: str | None = None
    status: str | None = None
    role: str | None = None
    content: tuple[ContentPart, ...] = ()
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    raw: Mapping[str, Any] = _raw()

    @property
    def text(self) -> str:
        """Concatenated text (or transcript) of all content parts."""
        return "".join(p.text_or_transcript or "" for p in self.content)

    def to_wire(self) -> dict[str, Any]:
        """The wire dict; a built message always has its ``content`` list, even empty."""
        out = write(self)
        if self.type == "message" and not self.raw:
            out.setdefault("content", [])
        return out

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Item:
        """Build from the wire dict (tolerant)."""
        content = d.get("content")
        parts = (
            tuple(ContentPart.from_wire(p) for p in content if type(p) is dict)
            if type(content) is list
            else ()
        )
        return cls(
            id=_str(d.get("id")),
            object=_str(d.get("object")),
            type=_str(d.get("type")),
            status=_str(d.get("status")),
            role=_str(d.get("role")),
            content=parts,
            call_id=_str(d.get("call_id")),
            name=_str(d.get("name")),
            arguments=_str(d.get("arguments")),
            output=_str(d.get("output")),
            raw=d,
        )


def _item(v: Any) -> Item | None:
    return Item.from_wire(v) if type(v) is dict else None


@attrs.frozen(kw_only=True)
class Usage(WireObject):
    """Token usage of a response (billing-relevant)."""

    total_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: Mapping[str, Any] = attrs.field(factory=dict)
    output_tokens_details: Mapping[str, Any] = attrs.field(factory=dict)
    plugins: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Usage:
        """Build from the wire dict (tolerant)."""
        return cls(
            total_tokens=_int(d.get("total_tokens")),
            input_tokens=_int(d.get("input_tokens")),
            output_tokens=_int(d.get("output_tokens")),
            input_tokens_details=_map(d.get("input_tokens_details")) or {},
            output_tokens_details=_map(d.get("output_tokens_details")) or {},
            plugins=_map(d.get("plugins")),
            raw=d,
        )


@attrs.frozen(kw_only=True)
class Response(WireObject):
    """A response object (``response.created`` / ``response.done``)."""

    _WIRE_ALWAYS: ClassVar[frozenset[str]] = frozenset({"output"})

    id: str | None = None
    object: str | None = None
    conversation_id: str | None = None
    status: str | None = None
    status_details: Mapping[str, Any] | None = None
    modalities: tuple[str, ...] | None = None
    voice: str | None = None
    output_audio_format: str | None = None
    output: tuple[Item, ...] = ()
    usage: Usage | None = None
    raw: Mapping[str, Any] = _raw()

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Response:
        """Build from the wire dict (tolerant)."""
        output = d.get("output")
        usage = d.get("usage")
        return cls(
            id=_str(d.get("id")),
            object=_str(d.get("object")),
            conversation_id=_str(d.get("conversation_id")),
            status=_str(d.get("status")),
            status_details=_map(d.get("status_details")),
            modalities=_strs(d.get("modalities")),
            voice=_str(d.get("voice")),
            output_audio_format=_str(d.get("output_audio_format")),
            output=(
                tuple(Item.from_wire(i) for i in output if type(i) is dict)
                if type(output) is list
                else ()
            ),
            usage=Usage.from_wire(usage) if type(usage) is dict else None,
            raw=d,
        )
