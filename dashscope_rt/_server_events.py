"""Server events: one frozen attrs class per wire type, their union, and :func:`encode_server`.

Every event keeps its decoded JSON object in ``raw`` and writes it back with ``to_wire()``
(``decode(encode_server(ev)) == ev``). Decoding is in :mod:`dashscope_rt._decode`; all of it is
public through :mod:`dashscope_rt.events`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ._payloads import ContentPart, ErrorDetail, Item, Response, SessionInfo, _raw
from ._wire import WireObject, dumps, new_event_id, write
from .errors import InvalidInput, ProtocolError

__all__ = [
    "SERVER_EVENT_TYPES",
    "ConversationItemCreated",
    "ConversationItemInputAudioTranscriptionCompleted",
    "ConversationItemInputAudioTranscriptionDelta",
    "ConversationItemInputAudioTranscriptionFailed",
    "ErrorEvent",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "LegacyChoices",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "ServerEvent",
    "SessionCreated",
    "SessionFinished",
    "SessionUpdated",
    "UnknownEvent",
    "encode_server",
]


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
