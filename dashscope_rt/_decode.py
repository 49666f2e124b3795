"""Decoding server frames: :func:`decode` (public through :mod:`dashscope_rt.events`).

Tolerant: missing or wrong-typed fields read as None, unknown types become
:class:`~dashscope_rt.events.UnknownEvent`, the older DashScope ``choices`` shape becomes
:class:`~dashscope_rt.events.LegacyChoices`; only :class:`~dashscope_rt.errors.ProtocolError` is
raised. Audio deltas take the fast path of :mod:`dashscope_rt._decode_audio`.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable
from typing import Any

from ._decode_audio import _decode_audio_fast, _decode_audio_fast_bytes, _new_audio_delta
from ._payloads import ErrorDetail, Response, SessionInfo, _int, _item, _map, _part, _str
from ._server_events import (
    SERVER_EVENT_TYPES,
    ConversationItemCreated,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ErrorEvent,
    InputAudioBufferCleared,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    LegacyChoices,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseTextDelta,
    ResponseTextDone,
    ServerEvent,
    SessionCreated,
    SessionFinished,
    SessionUpdated,
    UnknownEvent,
)
from .errors import ProtocolError

__all__ = ["decode"]

logger = logging.getLogger("dashscope_rt.events")

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
