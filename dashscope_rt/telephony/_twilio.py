"""Twilio Media Streams messages: parse what Twilio sends, build what it accepts. No I/O.

Twilio sends ``connected``, ``start`` (the ``streamSid`` and the ``mediaFormat``), ``media``
(base64 G.711, 20 ms each), ``dtmf``, ``mark`` (echoing ours) and ``stop``. A bidirectional
stream (``<Connect><Stream>``) accepts ``media``, ``mark`` and ``clear`` back, each naming the
``streamSid``. See https://www.twilio.com/docs/voice/media-streams/websocket-messages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import ProtocolError

__all__ = [
    "MEDIA_ENCODINGS",
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "OtherMessage",
    "Start",
    "Stop",
    "TwilioMessage",
    "clear_message",
    "mark_message",
    "media_message",
    "parse_message",
]

#: ``mediaFormat.encoding`` values, and the G.711 law each names.
MEDIA_ENCODINGS: Mapping[str, str] = {"audio/x-mulaw": "ulaw", "audio/x-alaw": "alaw"}


@attrs.frozen(kw_only=True)
class Connected:
    """The first message of a stream."""

    protocol: str = ""
    version: str = ""


@attrs.frozen(kw_only=True)
class Start:
    """The stream's metadata: ids, custom ``<Parameter>`` values and the audio format."""

    stream_sid: str
    call_sid: str = ""
    account_sid: str = ""
    tracks: tuple[str, ...] = ()
    custom_parameters: Mapping[str, str] = attrs.field(factory=dict)
    encoding: str = "ulaw"
    """The G.711 law: ``"ulaw"`` (Twilio's only format) or ``"alaw"``."""
    sample_rate: int = 8000
    channels: int = 1


@attrs.frozen(kw_only=True)
class Media:
    """20 ms of the caller's audio, decoded from base64 (still G.711)."""

    stream_sid: str
    payload: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = None
    """Milliseconds since the stream started."""


@attrs.frozen(kw_only=True)
class Mark:
    """Twilio's echo of a mark we sent: the audio before it has played (or was cleared)."""

    stream_sid: str
    name: str


@attrs.frozen(kw_only=True)
class Dtmf:
    """A key the caller pressed."""

    stream_sid: str
    digit: str


@attrs.frozen(kw_only=True)
class Stop:
    """The stream ended (the caller hung up, or the call moved on)."""

    stream_sid: str
    call_sid: str = ""


@attrs.frozen(kw_only=True)
class OtherMessage:
    """A message of a type this module does not know; ``raw`` is the decoded object."""

    event: str
    raw: Mapping[str, Any]


TwilioMessage = Connected | Start | Media | Mark | Dtmf | Stop | OtherMessage


def _obj(d: Mapping[str, Any], key: str, frame: Any) -> Mapping[str, Any]:
    value = d.get(key)
    if not isinstance(value, Mapping):
        raise ProtocolError(
            f"Twilio {d.get('event')!r} message without a {key!r} object", frame=frame
        )
    return value


def _sid(d: Mapping[str, Any], frame: Any) -> str:
    sid = d.get("streamSid")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError(f"Twilio {d.get('event')!r} message without a streamSid", frame=frame)
    return sid


def _opt_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _start(d: Mapping[str, Any], frame: Any) -> Start:
    start = _obj(d, "start", frame)
    fmt = start.get("mediaFormat") or {}
    if not isinstance(fmt, Mapping):
        raise ProtocolError("Twilio start message: mediaFormat is not an object", frame=frame)
    name = str(fmt.get("encoding", "audio/x-mulaw")).lower()
    law = MEDIA_ENCODINGS.get(name)
    if law is None:
        raise ProtocolError(
            f"Twilio start message: mediaFormat.encoding {name!r} is not G.711 "
            f"(expected one of {', '.join(MEDIA_ENCODINGS)})",
            frame=frame,
        )
    rate, channels = _opt_int(fmt.get("sampleRate", 8000)), _opt_int(fmt.get("channels", 1))
    if rate is None or rate <= 0 or channels != 1:
        raise ProtocolError(
            f"Twilio start message: unsupported mediaFormat {dict(fmt)!r} (mono, rate in Hz)",
            frame=frame,
        )
    params = start.get("customParameters") or {}
    tracks = start.get("tracks") or ()
    return Start(
        stream_sid=str(start.get("streamSid") or _sid(d, frame)),
        call_sid=str(start.get("callSid", "")),
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else (),
        custom_parameters=(
            {str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {}
        ),
        encoding=law,
        sample_rate=rate,
        channels=channels,
    )


def _media(d: Mapping[str, Any], frame: Any) -> Media:
    media = _obj(d, "media", frame)
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise ProtocolError("Twilio media message without a payload string", frame=frame)
    try:
        audio = base64.b64decode(payload, validate=True)
    except ValueError as exc:
        raise ProtocolError(f"Twilio media payload is not base64: {exc}", frame=frame) from None
    return Media(
        stream_sid=_sid(d, frame),
        payload=audio,
        track=str(media.get("track", "inbound")),
        chunk=_opt_int(media.get("chunk")),
        timestamp=_opt_int(media.get("timestamp")),
    )


def parse_message(frame: str | bytes) -> TwilioMessage:
    """Decode one WebSocket message from Twilio; raise ProtocolError for a malformed one."""
    try:
        d = json.loads(frame)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"Twilio sent a message that is not JSON: {exc}", frame=frame) from None
    if not isinstance(d, dict) or not isinstance(d.get("event"), str):
        raise ProtocolError("Twilio sent a message without an 'event' string", frame=frame)
    event = d["event"]
    if event == "media":
        return _media(d, frame)
    if event == "mark":
        return Mark(stream_sid=_sid(d, frame), name=str(_obj(d, "mark", frame).get("name", "")))
    if event == "start":
        return _start(d, frame)
    if event == "connected":
        return Connected(protocol=str(d.get("protocol", "")), version=str(d.get("version", "")))
    if event == "stop":
        stop = d.get("stop")
        call_sid = stop.get("callSid", "") if isinstance(stop, Mapping) else ""
        return Stop(stream_sid=_sid(d, frame), call_sid=str(call_sid))
    if event == "dtmf":
        return Dtmf(stream_sid=_sid(d, frame), digit=str(_obj(d, "dtmf", frame).get("digit", "")))
    return OtherMessage(event=event, raw=d)


def media_message(stream_sid: str, payload: bytes) -> str:
    """An outbound ``media`` message carrying ``payload`` (G.711 bytes) as base64."""
    b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return f'{{"event":"media","streamSid":{json.dumps(stream_sid)},"media":{{"payload":"{b64}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    """An outbound ``mark``: Twilio echoes it once the audio sent before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """An outbound ``clear``: Twilio drops the audio it has buffered and echoes pending marks."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})
