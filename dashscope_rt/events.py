"""Typed client and server events of the Qwen-Omni-Realtime protocol, with ``encode``/``decode``.

Server events are frozen attrs classes built by :func:`decode`; every one keeps the decoded JSON
object in ``raw`` (left out of ``==`` and ``repr``). Unknown types become :class:`UnknownEvent`, the
older DashScope ``choices`` reply shape becomes :class:`LegacyChoices`. Decoding never raises
anything but :class:`~dashscope_rt.errors.ProtocolError`; missing or wrong-typed fields read as
``None``. Client events are encoded to compact JSON text by :func:`encode`. The SDK's own events
(:class:`Closed`, :class:`Reconnecting`, :class:`Reconnected`, :class:`RolledOver`,
:class:`SessionExpiring`) are here too: :data:`SessionEvent` is everything a session's
``events()`` yields.

The other direction, for the simulator (:mod:`dashscope_rt.testing`) and tests: every server event
has ``to_wire()`` and :func:`encode_server` (``decode(encode_server(ev)) == ev``; a decoded event
writes back its frame, unknown keys included), and :func:`decode_client` reads client frames.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from ._client_events import (
    CLIENT_EVENT_TYPES,
    ClientEvent,
    ConversationItemCreate,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    InputImageBufferAppend,
    ResponseCancel,
    ResponseCreate,
    SessionFinish,
    SessionUpdate,
    decode_client,
    encode,
)
from ._sdk_events import Closed, Reconnected, Reconnecting, RolledOver, SessionExpiring
from ._wire import WireObject, dumps, new_event_id, new_id, pybase64, write
from .errors import InvalidInput, ProtocolError

__all__ = [
    "CLIENT_EVENT_TYPES",
    "SERVER_EVENT_TYPES",
    "ClientEvent",
    "Closed",
    "ContentPart",
    "ConversationItemCreate",
    "ConversationItemCreated",
    "ConversationItemInputAudioTranscriptionCompleted",
    "ConversationItemInputAudioTranscriptionDelta",
    "ConversationItemInputAudioTranscriptionFailed",
    "ErrorDetail",
    "ErrorEvent",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCleared",
    "InputAudioBufferCommit",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputImageBufferAppend",
    "Item",
    "LegacyChoices",
    "Reconnected",
    "Reconnecting",
    "Response",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseCancel",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreate",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "RolledOver",
    "SdkEvent",
    "ServerEvent",
    "SessionCreated",
    "SessionEvent",
    "SessionExpiring",
    "SessionFinish",
    "SessionFinished",
    "SessionInfo",
    "SessionUpdate",
    "SessionUpdated",
    "UnknownEvent",
    "Usage",
    "decode",
    "decode_client",
    "encode",
    "encode_server",
    "new_event_id",
    "new_id",
]

logger = logging.getLogger("dashscope_rt.events")


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


# --------------------------------------------------------------------------------------------
# Server events


class _Server(WireObject):
    """Mixin: ``type`` reads the class's wire type ``TYPE``; ``to_wire`` writes the event."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""

    @property
    def type(self) -> str:
        """The wire ``type`` string."""
        return self.TYPE

    def to_wire(self, *, event_id: str | None = None) -> dict[str, Any]:
        """The event's wire dict; ``event_id``, when given, replaces the event's own id.

        A decoded event writes back the frame it came from (keys it does not model included).
        """
        return write(self, event_type=self.TYPE, event_id=event_id)


@attrs.frozen(kw_only=True)
class ErrorEvent(_Server):
    """``error``: a request failed; most errors are recoverable."""

    TYPE: ClassVar[str] = "error"
    event_id: str | None = None
    error: ErrorDetail = attrs.field(factory=ErrorDetail)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class SessionCreated(_Server):
    """``session.created``: first event after connect, with the default configuration."""

    TYPE: ClassVar[str] = "session.created"
    event_id: str | None = None
    session: SessionInfo = attrs.field(factory=SessionInfo)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class SessionUpdated(_Server):
    """``session.updated``: the complete effective configuration after ``session.update``."""

    TYPE: ClassVar[str] = "session.updated"
    event_id: str | None = None
    session: SessionInfo = attrs.field(factory=SessionInfo)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class SessionFinished(_Server):
    """``session.finished``: pending work is done after ``session.finish``; safe to disconnect."""

    TYPE: ClassVar[str] = "session.finished"
    event_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class InputAudioBufferSpeechStarted(_Server):
    """``input_audio_buffer.speech_started`` (VAD mode)."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    event_id: str | None = None
    audio_start_ms: int | None = None
    item_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class InputAudioBufferSpeechStopped(_Server):
    """``input_audio_buffer.speech_stopped`` (VAD mode)."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    event_id: str | None = None
    audio_end_ms: int | None = None
    item_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class InputAudioBufferCommitted(_Server):
    """``input_audio_buffer.committed`` (``previous_item_id`` is not documented for Qwen)."""

    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    event_id: str | None = None
    item_id: str | None = None
    previous_item_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class InputAudioBufferCleared(_Server):
    """``input_audio_buffer.cleared``."""

    TYPE: ClassVar[str] = "input_audio_buffer.cleared"
    event_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ConversationItemCreated(_Server):
    """``conversation.item.created`` (``previous_item_id`` is not documented for Qwen)."""

    TYPE: ClassVar[str] = "conversation.item.created"
    event_id: str | None = None
    item: Item | None = None
    previous_item_id: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ConversationItemInputAudioTranscriptionDelta(_Server):
    """``...input_audio_transcription.delta``: ``text`` (final) + ``stash`` (provisional)."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    event_id: str | None = None
    item_id: str | None = None
    content_index: int | None = None
    text: str | None = None
    stash: str | None = None
    language: str | None = None
    emotion: str | None = None
    delta: str | None = None  # OpenAI's field; not documented for Qwen
    raw: Mapping[str, Any] = _raw()

    @property
    def preview(self) -> str:
        """The current best transcript: ``text + stash``."""
        return (self.text or "") + (self.stash or "")


@attrs.frozen(kw_only=True)
class ConversationItemInputAudioTranscriptionCompleted(_Server):
    """``...input_audio_transcription.completed``: the user's final transcript."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    event_id: str | None = None
    item_id: str | None = None
    content_index: int | None = None
    transcript: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ConversationItemInputAudioTranscriptionFailed(_Server):
    """``...input_audio_transcription.failed``."""

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    event_id: str | None = None
    item_id: str | None = None
    content_index: int | None = None
    error: ErrorDetail = attrs.field(factory=ErrorDetail)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseCreated(_Server):
    """``response.created``."""

    TYPE: ClassVar[str] = "response.created"
    event_id: str | None = None
    response: Response = attrs.field(factory=Response)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseDone(_Server):
    """``response.done``: all output items (without audio) and ``usage``."""

    TYPE: ClassVar[str] = "response.done"
    event_id: str | None = None
    response: Response = attrs.field(factory=Response)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseOutputItemAdded(_Server):
    """``response.output_item.added``."""

    TYPE: ClassVar[str] = "response.output_item.added"
    event_id: str | None = None
    response_id: str | None = None
    output_index: int | None = None
    item: Item | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseOutputItemDone(_Server):
    """``response.output_item.done``."""

    TYPE: ClassVar[str] = "response.output_item.done"
    event_id: str | None = None
    response_id: str | None = None
    output_index: int | None = None
    item: Item | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseContentPartAdded(_Server):
    """``response.content_part.added``."""

    TYPE: ClassVar[str] = "response.content_part.added"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    part: ContentPart | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseContentPartDone(_Server):
    """``response.content_part.done``."""

    TYPE: ClassVar[str] = "response.content_part.done"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    part: ContentPart | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseAudioTranscriptDelta(_Server):
    """``response.audio_transcript.delta``: text of the spoken answer."""

    TYPE: ClassVar[str] = "response.audio_transcript.delta"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    delta: str = ""
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseAudioTranscriptDone(_Server):
    """``response.audio_transcript.done``."""

    TYPE: ClassVar[str] = "response.audio_transcript.done"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    transcript: str | None = None
    raw: Mapping[str, Any] = _raw()


def _bytes_repr(b: bytes) -> str:
    return f"<{len(b)} bytes>"


@attrs.frozen(kw_only=True)
class ResponseAudioDelta(_Server):
    """``response.audio.delta``; ``audio`` is the decoded PCM (24 kHz mono PCM16LE by default).

    ``raw`` is the frame without its ``delta`` key.
    """

    TYPE: ClassVar[str] = "response.audio.delta"
    _WIRE_KEYS: ClassVar[Mapping[str, str]] = {"audio": "delta"}
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    audio: bytes = attrs.field(default=b"", repr=_bytes_repr)
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseAudioDone(_Server):
    """``response.audio.done`` (also sent for interrupted/cancelled responses)."""

    TYPE: ClassVar[str] = "response.audio.done"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseTextDelta(_Server):
    """``response.text.delta`` (text-only output)."""

    TYPE: ClassVar[str] = "response.text.delta"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    delta: str = ""
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseTextDone(_Server):
    """``response.text.done``."""

    TYPE: ClassVar[str] = "response.text.done"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None
    text: str | None = None
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDelta(_Server):
    """``response.function_call_arguments.delta`` (qwen3.5 tools)."""

    TYPE: ClassVar[str] = "response.function_call_arguments.delta"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    call_id: str | None = None
    delta: str = ""
    raw: Mapping[str, Any] = _raw()


@attrs.frozen(kw_only=True)
class ResponseFunctionCallArgumentsDone(_Server):
    """``response.function_call_arguments.done``: the authoritative tool call."""

    TYPE: ClassVar[str] = "response.function_call_arguments.done"
    event_id: str | None = None
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    raw: Mapping[str, Any] = _raw()

    def parsed_arguments(self) -> Any:
        """``arguments`` parsed as JSON (the service pads it with a space); ``{}`` when empty.

        Raises :class:`~dashscope_rt.errors.ProtocolError` if it is not valid JSON.
        """
        text = self.arguments.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as e:
            raise ProtocolError(f"tool arguments are not valid JSON: {e}", frame=text) from None


@attrs.frozen(kw_only=True)
class UnknownEvent(WireObject):
    """A server event whose ``type`` this SDK does not know (or a frame without ``type``)."""

    TYPE: ClassVar[str] = ""
    type: str = ""
    event_id: str | None = None
    raw: Mapping[str, Any] = _raw()

    def to_wire(self, *, event_id: str | None = None) -> dict[str, Any]:
        """``raw`` with ``type`` and the event id (``event_id`` replaces the own one)."""
        return write(self, event_id=event_id)


@attrs.frozen(kw_only=True)
class LegacyChoices(_Server):
    """The older DashScope reply shape (``output.choices`` or top-level ``choices``, no ``type``).

    ``text`` concatenates the text of the first choice's message (or delta) content.
    """

    TYPE: ClassVar[str] = "legacy.choices"  # synthetic; never on the wire
    event_id: str | None = None
    request_id: str | None = None
    role: str | None = None
    text: str = ""
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = _raw()

    def to_wire(self, *, event_id: str | None = None) -> dict[str, Any]:
        """The ``output.choices`` shape (or ``raw`` as received, when decoded)."""
        if self.raw:
            out = dict(self.raw)
        else:
            message: dict[str, Any] = {"content": self.text}
            if self.role is not None:
                message = {"role": self.role, **message}
            choice: dict[str, Any] = {"message": message}
            if self.finish_reason is not None:
                choice["finish_reason"] = self.finish_reason
            out = {"output": {"choices": [choice]}}
            if self.request_id is not None:
                out["request_id"] = self.request_id
            if self.usage is not None:
                out["usage"] = dict(self.usage)
        eid = event_id if event_id is not None else self.event_id
        if eid is None or out.get("event_id") == eid:
            return out
        return {"event_id": eid, **{k: v for k, v in out.items() if k != "event_id"}}


ServerEvent = (
    ErrorEvent
    | SessionCreated
    | SessionUpdated
    | SessionFinished
    | InputAudioBufferSpeechStarted
    | InputAudioBufferSpeechStopped
    | InputAudioBufferCommitted
    | InputAudioBufferCleared
    | ConversationItemCreated
    | ConversationItemInputAudioTranscriptionDelta
    | ConversationItemInputAudioTranscriptionCompleted
    | ConversationItemInputAudioTranscriptionFailed
    | ResponseCreated
    | ResponseDone
    | ResponseOutputItemAdded
    | ResponseOutputItemDone
    | ResponseContentPartAdded
    | ResponseContentPartDone
    | ResponseAudioTranscriptDelta
    | ResponseAudioTranscriptDone
    | ResponseAudioDelta
    | ResponseAudioDone
    | ResponseTextDelta
    | ResponseTextDone
    | ResponseFunctionCallArgumentsDelta
    | ResponseFunctionCallArgumentsDone
    | UnknownEvent
    | LegacyChoices
)

SdkEvent = Closed | Reconnecting | Reconnected | RolledOver | SessionExpiring
"""The SDK's own events (no wire form): the session ended, a redial, the 120-minute cap."""

SessionEvent = ServerEvent | SdkEvent
"""What ``Session.events()`` yields and ``Session.on_event`` handlers receive."""

# --------------------------------------------------------------------------------------------
# Decoding

_Builder = Callable[[dict[str, Any]], Any]


def _ids(d: dict[str, Any]) -> dict[str, Any]:
    """The response_id/item_id/output_index/content_index group of ``response.*`` events."""
    return {
        "event_id": _str(d.get("event_id")),
        "response_id": _str(d.get("response_id")),
        "item_id": _str(d.get("item_id")),
        "output_index": _int(d.get("output_index")),
        "content_index": _int(d.get("content_index")),
    }


def _session(v: Any) -> SessionInfo:
    return SessionInfo.from_wire(v) if type(v) is dict else SessionInfo()


def _response(v: Any) -> Response:
    return Response.from_wire(v) if type(v) is dict else Response()


def _fc_done(d: dict[str, Any]) -> ResponseFunctionCallArgumentsDone:
    return ResponseFunctionCallArgumentsDone(
        event_id=_str(d.get("event_id")),
        response_id=_str(d.get("response_id")),
        item_id=_str(d.get("item_id")),
        output_index=_int(d.get("output_index")),
        call_id=_str(d.get("call_id")),
        name=_str(d.get("name")),
        arguments=_str(d.get("arguments")) or "",
        raw=d,
    )


def _audio_delta_slow(d: dict[str, Any]) -> ResponseAudioDelta:
    delta = d.pop("delta", None)
    if delta is None:
        pcm = b""
    elif type(delta) is str:
        try:
            pcm = binascii.a2b_base64(delta)
        except ValueError as e:  # binascii.Error, or non-ASCII text
            raise ProtocolError(f"response.audio.delta: bad base64: {e}", frame=d) from None
    else:
        raise ProtocolError("response.audio.delta: 'delta' is not a string", frame=d)
    return _new_audio_delta(d, pcm)


def _new_audio_delta(d: dict[str, Any], pcm: bytes) -> ResponseAudioDelta:
    # Same values as the attrs __init__ with _str/_int, set through the slot descriptors with
    # the type checks inlined: about half the cost on this hot path.
    ev: ResponseAudioDelta = _new(ResponseAudioDelta)
    get = d.get
    v = get("event_id")
    _ad_event_id(ev, v if type(v) is str else None)
    v = get("response_id")
    _ad_response_id(ev, v if type(v) is str else None)
    v = get("item_id")
    _ad_item_id(ev, v if type(v) is str else None)
    v = get("output_index")
    _ad_output_index(ev, v if type(v) is int else None)
    v = get("content_index")
    _ad_content_index(ev, v if type(v) is int else None)
    _ad_audio(ev, pcm)
    _ad_raw(ev, d)
    return ev


_new: Any = object.__new__
_slot_set: dict[str, Any] = {
    f.name: ResponseAudioDelta.__dict__[f.name].__set__ for f in attrs.fields(ResponseAudioDelta)
}
_ad_event_id = _slot_set["event_id"]
_ad_response_id = _slot_set["response_id"]
_ad_item_id = _slot_set["item_id"]
_ad_output_index = _slot_set["output_index"]
_ad_content_index = _slot_set["content_index"]
_ad_audio = _slot_set["audio"]
_ad_raw = _slot_set["raw"]
assert len(_slot_set) == 7, "update _new_audio_delta when ResponseAudioDelta changes"


_BUILDERS: dict[str, _Builder] = {
    "error": lambda d: ErrorEvent(
        event_id=_str(d.get("event_id")), error=ErrorDetail.from_event(d), raw=d
    ),
    "session.created": lambda d: SessionCreated(
        event_id=_str(d.get("event_id")), session=_session(d.get("session")), raw=d
    ),
    "session.updated": lambda d: SessionUpdated(
        event_id=_str(d.get("event_id")), session=_session(d.get("session")), raw=d
    ),
    "session.finished": lambda d: SessionFinished(event_id=_str(d.get("event_id")), raw=d),
    "input_audio_buffer.speech_started": lambda d: InputAudioBufferSpeechStarted(
        event_id=_str(d.get("event_id")),
        audio_start_ms=_int(d.get("audio_start_ms")),
        item_id=_str(d.get("item_id")),
        raw=d,
    ),
    "input_audio_buffer.speech_stopped": lambda d: InputAudioBufferSpeechStopped(
        event_id=_str(d.get("event_id")),
        audio_end_ms=_int(d.get("audio_end_ms")),
        item_id=_str(d.get("item_id")),
        raw=d,
    ),
    "input_audio_buffer.committed": lambda d: InputAudioBufferCommitted(
        event_id=_str(d.get("event_id")),
        item_id=_str(d.get("item_id")),
        previous_item_id=_str(d.get("previous_item_id")),
        raw=d,
    ),
    "input_audio_buffer.cleared": lambda d: InputAudioBufferCleared(
        event_id=_str(d.get("event_id")), raw=d
    ),
    "conversation.item.created": lambda d: ConversationItemCreated(
        event_id=_str(d.get("event_id")),
        item=_item(d.get("item")),
        previous_item_id=_str(d.get("previous_item_id")),
        raw=d,
    ),
    "conversation.item.input_audio_transcription.delta": lambda d: (
        ConversationItemInputAudioTranscriptionDelta(
            event_id=_str(d.get("event_id")),
            item_id=_str(d.get("item_id")),
            content_index=_int(d.get("content_index")),
            text=_str(d.get("text")),
            stash=_str(d.get("stash")),
            language=_str(d.get("language")),
            emotion=_str(d.get("emotion")),
            delta=_str(d.get("delta")),
            raw=d,
        )
    ),
    "conversation.item.input_audio_transcription.completed": (
        lambda d: ConversationItemInputAudioTranscriptionCompleted(
            event_id=_str(d.get("event_id")),
            item_id=_str(d.get("item_id")),
            content_index=_int(d.get("content_index")),
            transcript=_str(d.get("transcript")),
            raw=d,
        )
    ),
    "conversation.item.input_audio_transcription.failed": lambda d: (
        ConversationItemInputAudioTranscriptionFailed(
            event_id=_str(d.get("event_id")),
            item_id=_str(d.get("item_id")),
            content_index=_int(d.get("content_index")),
            error=ErrorDetail.from_event(d),
            raw=d,
        )
    ),
    "response.created": lambda d: ResponseCreated(
        event_id=_str(d.get("event_id")), response=_response(d.get("response")), raw=d
    ),
    "response.done": lambda d: ResponseDone(
        event_id=_str(d.get("event_id")), response=_response(d.get("response")), raw=d
    ),
    "response.output_item.added": lambda d: ResponseOutputItemAdded(
        event_id=_str(d.get("event_id")),
        response_id=_str(d.get("response_id")),
        output_index=_int(d.get("output_index")),
        item=_item(d.get("item")),
        raw=d,
    ),
    "response.output_item.done": lambda d: ResponseOutputItemDone(
        event_id=_str(d.get("event_id")),
        response_id=_str(d.get("response_id")),
        output_index=_int(d.get("output_index")),
        item=_item(d.get("item")),
        raw=d,
    ),
    "response.content_part.added": lambda d: ResponseContentPartAdded(
        **_ids(d), part=_part(d.get("part")), raw=d
    ),
    "response.content_part.done": lambda d: ResponseContentPartDone(
        **_ids(d), part=_part(d.get("part")), raw=d
    ),
    "response.audio_transcript.delta": lambda d: ResponseAudioTranscriptDelta(
        **_ids(d), delta=_str(d.get("delta")) or "", raw=d
    ),
    "response.audio_transcript.done": lambda d: ResponseAudioTranscriptDone(
        **_ids(d), transcript=_str(d.get("transcript")), raw=d
    ),
    "response.audio.delta": _audio_delta_slow,
    "response.audio.done": lambda d: ResponseAudioDone(**_ids(d), raw=d),
    "response.text.delta": lambda d: ResponseTextDelta(
        **_ids(d), delta=_str(d.get("delta")) or "", raw=d
    ),
    "response.text.done": lambda d: ResponseTextDone(**_ids(d), text=_str(d.get("text")), raw=d),
    "response.function_call_arguments.delta": lambda d: ResponseFunctionCallArgumentsDelta(
        event_id=_str(d.get("event_id")),
        response_id=_str(d.get("response_id")),
        item_id=_str(d.get("item_id")),
        output_index=_int(d.get("output_index")),
        call_id=_str(d.get("call_id")),
        delta=_str(d.get("delta")) or "",
        raw=d,
    ),
    "response.function_call_arguments.done": _fc_done,
}

SERVER_EVENT_TYPES: Mapping[str, type] = {
    cls.TYPE: cls
    for cls in (
        ErrorEvent,
        SessionCreated,
        SessionUpdated,
        SessionFinished,
        InputAudioBufferSpeechStarted,
        InputAudioBufferSpeechStopped,
        InputAudioBufferCommitted,
        InputAudioBufferCleared,
        ConversationItemCreated,
        ConversationItemInputAudioTranscriptionDelta,
        ConversationItemInputAudioTranscriptionCompleted,
        ConversationItemInputAudioTranscriptionFailed,
        ResponseCreated,
        ResponseDone,
        ResponseOutputItemAdded,
        ResponseOutputItemDone,
        ResponseContentPartAdded,
        ResponseContentPartDone,
        ResponseAudioTranscriptDelta,
        ResponseAudioTranscriptDone,
        ResponseAudioDelta,
        ResponseAudioDone,
        ResponseTextDelta,
        ResponseTextDone,
        ResponseFunctionCallArgumentsDelta,
        ResponseFunctionCallArgumentsDone,
    )
}
assert set(SERVER_EVENT_TYPES) == set(_BUILDERS)


def _content_text(content: Any) -> str:
    if type(content) is str:
        return content
    if type(content) is not list:
        return ""
    out = []
    for c in content:
        if type(c) is str:
            out.append(c)
        elif type(c) is dict and type(c.get("text")) is str:
            out.append(c["text"])
    return "".join(out)


def _legacy(d: dict[str, Any]) -> LegacyChoices | None:
    """Decode the older DashScope ``choices`` shape, or return None if ``d`` is not one."""
    payload = d.get("payload")
    top = payload if type(payload) is dict else d  # DashScope WebSocket {"header","payload"}
    output = top.get("output")
    choices = output.get("choices") if type(output) is dict else None
    if choices is None:
        choices = top.get("choices")
    if type(choices) is not list:
        if type(output) is dict and type(output.get("text")) is str:  # result_format="text"
            choices = [{"message": {"content": output["text"]}, **output}]
        else:
            return None
    first = choices[0] if choices and type(choices[0]) is dict else {}
    message = first.get("message")
    if type(message) is not dict:
        message = first.get("delta")  # OpenAI-style stream chunk
    message = message if type(message) is dict else {}
    header = d.get("header")
    request_id = _str(top.get("request_id")) or _str(d.get("request_id")) or _str(d.get("id"))
    if request_id is None and type(header) is dict:
        request_id = _str(header.get("task_id"))
    return LegacyChoices(
        event_id=_str(d.get("event_id")),
        request_id=request_id,
        role=_str(message.get("role")),
        text=_content_text(message.get("content")),
        finish_reason=_str(first.get("finish_reason"))
        or (_str(output.get("finish_reason")) if type(output) is dict else None),
        usage=_map(top.get("usage")),
        raw=d,
    )


def _from_dict(d: Any, frame: Any) -> ServerEvent:
    if type(d) is not dict:
        raise ProtocolError(f"frame is JSON {type(d).__name__}, not an object", frame=frame)
    t = d.get("type")
    builder = _BUILDERS.get(t) if type(t) is str else None
    if builder is not None:
        ev: ServerEvent = builder(d)
        return ev
    if t is None:
        legacy = _legacy(d)
        if legacy is not None:
            return legacy
    logger.debug("unknown server event type %r", t)
    return UnknownEvent(type=t if type(t) is str else "", event_id=_str(d.get("event_id")), raw=d)


def _text(frame: Any) -> str:
    if type(frame) is str:
        return frame
    if isinstance(frame, (bytes, bytearray, memoryview)):
        try:
            return bytes(frame).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"frame is not valid UTF-8: {e}", frame=frame) from None
    if isinstance(frame, str):
        return str(frame)
    raise ProtocolError(f"frame is {type(frame).__name__}, not str or bytes", frame=frame)


def _decode_slow(frame: str | bytes) -> ServerEvent:
    """Reference route: ``json.loads`` of the whole frame, then build the event."""
    text = _text(frame)
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"frame is not valid JSON: {e}", frame=frame) from None
    return _from_dict(d, frame)


_WS = " \t\n\r"
_scan_once: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


# Constants of the fast path, as str and as bytes: (key, whitespace, ":", quote, type, "\\",
# "=", "==", escaped slash, slash, the two usual separators before the value).
_K_STR = (
    *('"delta"', _WS, ":", '"', '"response.audio.delta"', "\\", "=", "==", "\\/", "/"),
    *(': "', ':"'),
)
_K_BYTES = tuple(k.encode() for k in _K_STR)


def _a2b_exact(b64: Any, k: tuple[Any, ...]) -> bytes | None:
    """``a2b_base64(b64)`` if it used every character of ``b64``, else None.

    a2b_base64 silently skips characters outside the alphabet (quotes, backslashes, control
    characters, non-ASCII...); the exact output length proves none were skipped, so ``b64`` was
    a plain JSON string body without escapes and decodes as json.loads + b64decode would.
    """
    size = len(b64)
    if not size & 3 and pybase64 is not None:
        try:
            return pybase64.b64decode(b64, validate=True)  # strict: refuses any other character
        except ValueError:
            pass
    elif not size & 3:
        try:
            # Measured, cause unknown: after JSON scanning, the next large a2b_base64 call ran
            # ~1.6x slower on the dev machine (AMD EPYC, CPython 3.11) unless preceded by any
            # other a2b_base64 call. The empty call costs ~0.1 us (see bench/bench_decode.py).
            binascii.a2b_base64("")
            pcm = binascii.a2b_base64(b64)
        except ValueError:
            pass
        else:
            pad = 2 if b64.endswith(k[7]) else 1 if b64.endswith(k[6]) else 0
            if len(pcm) == (size >> 2) * 3 - pad:
                return pcm
    if k[5] in b64:  # some encoders escape "/" as "\\/"; any other escape: give up
        b64 = b64.replace(k[8], k[9])
        if k[5] not in b64:
            return _a2b_exact(b64, k)
    return None


def _split(text: Any, k: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """Cut the ``"delta"`` string body out of an audio frame: ``(rest, body)``, or None.

    ``rest`` is the frame with ``"delta": ""``. None unless it has the audio type, no escapes
    and exactly one ``"delta"``: then the one we found is the only delta key, and a top-level
    ``"delta": ""`` in the parsed rest (checked by the caller) must be it.
    """
    key, quote = k[0], k[3]
    s = text.find(key)
    if s < 0:
        return None
    i = s + 7
    if text.startswith(k[10], i):  # '": "' as json.dumps writes it, or compact '":"'
        vs = i + 3
    elif text.startswith(k[11], i):
        vs = i + 2
    else:
        vs = _value_start(text, i, k)
        if vs < 0:
            return None
    ve = text.find(quote, vs)
    if ve < 0:
        return None
    rest = text[:vs] + text[ve:]
    if k[4] not in rest or k[5] in rest or rest.find(key, s + 1) >= 0:
        return None
    return rest, text[vs:ve]


def _value_start(text: Any, i: int, k: tuple[Any, ...]) -> int:
    """Index after the opening quote of the value whose ``:`` is at or after ``i`` (any JSON
    whitespace around it), or -1."""
    ws, n = k[1], len(text)
    while i < n and text[i : i + 1] in ws:
        i += 1
    if i >= n or text[i : i + 1] != k[2]:
        return -1
    i += 1
    while i < n and text[i : i + 1] in ws:
        i += 1
    if i >= n or text[i : i + 1] != k[3]:
        return -1
    return i + 1


def _finish(rest: str, pcm: bytes) -> ResponseAudioDelta | None:
    try:
        # The C scanner without json.loads' regex whitespace handling; measurably cheaper here.
        start = 0 if rest[:1] == "{" else len(rest) - len(rest.lstrip(_WS))
        d, end = _scan_once(rest, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(rest) and rest[end:].strip(_WS):
        return None
    if type(d) is not dict or d.get("type") != "response.audio.delta" or d.get("delta") != "":
        return None
    del d["delta"]
    return _new_audio_delta(d, pcm)


def _decode_audio_fast(text: str) -> ResponseAudioDelta | None:
    """Decode a ``response.audio.delta`` without running the JSON scanner over the base64.

    Returns None (the caller takes the plain route) whenever anything is unusual.
    """
    parts = _split(text, _K_STR)
    if parts is None:
        return None
    pcm = _a2b_exact(parts[1], _K_STR)
    return None if pcm is None else _finish(parts[0], pcm)


def _decode_audio_fast_bytes(data: bytes) -> ResponseAudioDelta | None:
    """:func:`_decode_audio_fast` on UTF-8 bytes: only the small rest is UTF-8 decoded (the
    base64 part is proven ASCII by :func:`_a2b_exact`)."""
    parts = _split(data, _K_BYTES)
    if parts is None:
        return None
    pcm = _a2b_exact(parts[1], _K_BYTES)
    if pcm is None:
        return None
    try:
        rest = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _finish(rest, pcm)


def decode(frame: str | bytes) -> ServerEvent:
    """Decode one server frame (JSON text or UTF-8 bytes) into a typed event.

    Raises :class:`~dashscope_rt.errors.ProtocolError` (and nothing else) for malformed JSON, a
    non-object, invalid UTF-8 or bad base64 audio. Audio deltas take a fast path; passing the
    raw ``bytes`` of the WebSocket frame is cheapest (no UTF-8 decode of the audio).
    """
    ev: ResponseAudioDelta | None = None
    if type(frame) is str:
        if len(frame) > 512:  # audio deltas; small frames go straight to the plain route
            ev = _decode_audio_fast(frame)
    elif type(frame) is bytes and len(frame) > 512:
        ev = _decode_audio_fast_bytes(frame)
    if ev is not None:
        return ev
    text = frame if type(frame) is str else _text(frame)
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"frame is not valid JSON: {e}", frame=frame) from None
    return _from_dict(d, frame)


def encode_server(event: ServerEvent, *, event_id: str | None = None) -> str:
    """Encode a server event as compact JSON text: what the simulator sends.

    The id is ``event_id``, else the event's own, else a new one (:func:`new_event_id`); an
    empty string is kept (the service sends some errors with an empty id).
    ``decode(encode_server(ev)) == ev`` for every event :func:`decode` can return.
    """
    if not isinstance(event, (_Server, UnknownEvent)):
        raise InvalidInput(f"not a server event: {type(event).__name__}")
    if event_id is None and event.event_id is None:
        event_id = new_event_id()
    try:
        return dumps(event.to_wire(event_id=event_id))
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidInput(f"event is not JSON-serializable: {e}") from None
