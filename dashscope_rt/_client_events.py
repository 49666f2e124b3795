"""Client events both ways: the attrs classes, :func:`encode` (what the SDK sends) and
:func:`decode_client` (what the simulator reads). Re-exported by :mod:`dashscope_rt.events`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from ._wire import b64decode, b64encode, dumps, new_event_id
from .errors import InvalidInput, ProtocolError

__all__ = [
    "CLIENT_EVENT_TYPES",
    "ClientEvent",
    "ConversationItemCreate",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "InputImageBufferAppend",
    "ResponseCancel",
    "ResponseCreate",
    "SessionFinish",
    "SessionUpdate",
    "decode_client",
    "encode",
]


def _bytes_repr(b: bytes) -> str:
    return f"<{len(b)} bytes>"


@attrs.frozen(kw_only=True)
class SessionUpdate:
    """``session.update``; ``session`` is the wire-shaped dict (see ``SessionConfig.to_wire``)."""

    TYPE: ClassVar[str] = "session.update"
    session: Mapping[str, Any]
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class InputAudioBufferAppend:
    """``input_audio_buffer.append``: raw PCM bytes, base64-encoded on the wire."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: bytes = attrs.field(repr=_bytes_repr)
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class InputAudioBufferCommit:
    """``input_audio_buffer.commit`` (manual mode)."""

    TYPE: ClassVar[str] = "input_audio_buffer.commit"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class InputAudioBufferClear:
    """``input_audio_buffer.clear``."""

    TYPE: ClassVar[str] = "input_audio_buffer.clear"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class InputImageBufferAppend:
    """``input_image_buffer.append``: JPEG bytes, base64-encoded on the wire."""

    TYPE: ClassVar[str] = "input_image_buffer.append"
    image: bytes = attrs.field(repr=_bytes_repr)
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class ResponseCreate:
    """``response.create``; without fields it is sent bare, else with a ``response`` object."""

    TYPE: ClassVar[str] = "response.create"
    instructions: str | None = None
    modalities: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class ResponseCancel:
    """``response.cancel``."""

    TYPE: ClassVar[str] = "response.cancel"
    event_id: str | None = None


@attrs.frozen(kw_only=True)
class ConversationItemCreate:
    """``conversation.item.create`` with a wire-shaped ``item`` dict."""

    TYPE: ClassVar[str] = "conversation.item.create"
    item: Mapping[str, Any]
    event_id: str | None = None

    @classmethod
    def function_call_output(
        cls, call_id: str, output: str, *, item_id: str | None = None
    ) -> ConversationItemCreate:
        """A tool result for ``call_id`` (send ``response.create`` afterwards)."""
        item: dict[str, Any] = {
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
        }
        if item_id is not None:
            item = {"id": item_id, **item}
        return cls(item=item)

    @classmethod
    def user_text(cls, text: str) -> ConversationItemCreate:
        """A user text message (``input_text``); UNCONFIRMED on flash/turbo models."""
        return cls(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }
        )


@attrs.frozen(kw_only=True)
class SessionFinish:
    """``session.finish``: ask the server to finish; it replies ``session.finished``."""

    TYPE: ClassVar[str] = "session.finish"
    event_id: str | None = None


ClientEvent = (
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | InputImageBufferAppend
    | ResponseCreate
    | ResponseCancel
    | ConversationItemCreate
    | SessionFinish
)

CLIENT_EVENT_TYPES: Mapping[str, type] = {
    cls.TYPE: cls
    for cls in (
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferCommit,
        InputAudioBufferClear,
        InputImageBufferAppend,
        ResponseCreate,
        ResponseCancel,
        ConversationItemCreate,
        SessionFinish,
    )
}
"""Wire type -> client event class."""

# --------------------------------------------------------------------------------------------
# Encoding (the SDK's side)


def _b64(data: Any, what: str) -> str:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"{what} must be bytes, got {type(data).__name__}", param=what)
    return b64encode(data)


def _dumps(obj: Any) -> str:
    try:
        return dumps(obj)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidInput(f"event is not JSON-serializable: {e}") from None


def _payload(event: Any) -> dict[str, Any] | None:
    if isinstance(event, SessionUpdate):
        return {"session": event.session}
    if isinstance(event, ConversationItemCreate):
        return {"item": event.item}
    if isinstance(event, InputImageBufferAppend):
        return {"image": _b64(event.image, "image")}
    if isinstance(event, ResponseCreate):
        response: dict[str, Any] = {}
        if event.instructions is not None:
            response["instructions"] = event.instructions
        if event.modalities is not None:
            response["modalities"] = list(event.modalities)
        response.update(event.extra)
        return {"response": response} if response else None
    if isinstance(
        event, (InputAudioBufferCommit, InputAudioBufferClear, ResponseCancel, SessionFinish)
    ):
        return None
    raise InvalidInput(f"not a client event: {type(event).__name__}")


def encode(event: ClientEvent, *, event_id: str | None = None) -> str:
    """Encode a client event as compact JSON text.

    The id is ``event_id``, else ``event.event_id``, else a new one (:func:`new_event_id`).
    Raises :class:`~dashscope_rt.errors.InvalidInput` for values that cannot be sent.
    """
    eid = event_id or getattr(event, "event_id", None) or new_event_id()
    if type(eid) is not str:
        raise InvalidInput(f"event_id must be a string, got {type(eid).__name__}")
    head = '{"event_id":' + _dumps(eid) + ',"type":"' + event.TYPE + '"'
    if type(event) is InputAudioBufferAppend:  # uplink hot path: no JSON scan of the base64
        return head + ',"audio":"' + _b64(event.audio, "audio") + '"}'
    payload = _payload(event)
    if payload is None:
        return head + "}"
    return head + "," + _dumps(payload)[1:]


# --------------------------------------------------------------------------------------------
# Decoding (the simulator's side)


def _bad(message: str, frame: Any, param: str, *, missing: bool = False) -> ProtocolError:
    return ProtocolError(message, frame=frame, param=param, missing=missing)


def _base64_field(d: dict[str, Any], key: str) -> bytes:
    if key not in d:
        raise _bad(f"{d['type']}: missing required parameter {key!r}", d, key, missing=True)
    value = d[key]
    if type(value) is not str:
        raise _bad(f"{d['type']}: {key!r} must be a Base64 string", d, key)
    try:
        return b64decode(value)
    except ValueError:
        raise _bad(f"{d['type']}: {key!r} is not valid Base64", d, key) from None


def _object_field(d: dict[str, Any], key: str, *, empty: bool = False) -> dict[str, Any]:
    value = d.get(key)
    if type(value) is not dict or not (value or empty):
        raise _bad(f"{d['type']}: missing required object {key!r}", d, key, missing=True)
    return value


def _response_create(d: dict[str, Any], eid: str | None) -> ResponseCreate:
    opts = d.get("response")
    if opts is None:
        return ResponseCreate(event_id=eid)
    if type(opts) is not dict:
        raise _bad("response.create: 'response' must be an object", d, "response")
    extra = dict(opts)
    instructions = extra.pop("instructions", None)
    if instructions is not None and type(instructions) is not str:
        raise _bad("response.create: instructions must be a string", d, "response.instructions")
    mods = extra.pop("modalities", None)
    if mods is not None and (type(mods) is not list or any(type(m) is not str for m in mods)):
        raise _bad(
            "response.create: modalities must be a list of strings", d, "response.modalities"
        )
    return ResponseCreate(
        instructions=instructions,
        modalities=None if mods is None else tuple(mods),
        extra=extra,
        event_id=eid,
    )


_ClientParser = Callable[[dict[str, Any], "str | None"], ClientEvent]

_PARSERS: dict[str, _ClientParser] = {
    "session.update": lambda d, eid: SessionUpdate(
        session=_object_field(d, "session", empty=True), event_id=eid
    ),
    "input_audio_buffer.append": lambda d, eid: InputAudioBufferAppend(
        audio=_base64_field(d, "audio"), event_id=eid
    ),
    "input_audio_buffer.commit": lambda d, eid: InputAudioBufferCommit(event_id=eid),
    "input_audio_buffer.clear": lambda d, eid: InputAudioBufferClear(event_id=eid),
    "input_image_buffer.append": lambda d, eid: InputImageBufferAppend(
        image=_base64_field(d, "image"), event_id=eid
    ),
    "response.create": _response_create,
    "response.cancel": lambda d, eid: ResponseCancel(event_id=eid),
    "conversation.item.create": lambda d, eid: ConversationItemCreate(
        item=_object_field(d, "item"), event_id=eid
    ),
    "session.finish": lambda d, eid: SessionFinish(event_id=eid),
}
assert set(_PARSERS) == set(CLIENT_EVENT_TYPES)


def decode_client(frame: str | bytes) -> ClientEvent:
    """Decode one client frame into its typed event (the server's side of :func:`encode`).

    Strict, as a server is: raises :class:`~dashscope_rt.errors.ProtocolError` for text that is
    not a JSON object (``param`` None), an unknown ``type`` (``param`` ``"type"``), or a missing
    (``missing`` True) or invalid field, named by ``param`` (``"audio"``, ``"session"``,
    ``"response.modalities"``...). ``frame`` is then the parsed object when there was one, so
    the caller can still read its ``event_id``.
    """
    try:
        d = json.loads(frame)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"client frame is not valid JSON: {e}", frame=frame) from None
    if type(d) is not dict:
        raise ProtocolError(f"client frame is JSON {type(d).__name__}, not an object", frame=frame)
    etype = d.get("type")
    parser = _PARSERS.get(etype) if type(etype) is str else None
    if parser is None:
        raise _bad(f"unknown client event type {etype!r}", d, "type")
    eid = d.get("event_id")
    return parser(d, eid if type(eid) is str else None)
