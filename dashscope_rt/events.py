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

This module is the public face; the code lives in private modules by concern: ``_payloads``
(nested objects), ``_server_events``, ``_decode`` and ``_decode_audio`` (the audio fast path),
``_client_events`` and ``_sdk_events``.
"""

from __future__ import annotations

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
from ._decode import decode
from ._payloads import ContentPart, ErrorDetail, Item, Response, SessionInfo, Usage
from ._sdk_events import Closed, Reconnected, Reconnecting, RolledOver, SessionExpiring
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
    encode_server,
)
from ._wire import new_event_id, new_id

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


SdkEvent = Closed | Reconnecting | Reconnected | RolledOver | SessionExpiring
"""The SDK's own events (no wire form): the session ended, a redial, the 120-minute cap."""

SessionEvent = ServerEvent | SdkEvent
"""What ``Session.events()`` yields and ``Session.on_event`` handlers receive."""
