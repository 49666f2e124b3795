"""Phone calls: a Twilio Media Streams bridge on :class:`~dashscope_rt.Session`.

Point a Twilio number at a WebSocket route with ``<Connect><Stream url="wss://.../media"/>``
and hand each connection to :meth:`TwilioBridge.serve`::

    bridge = TwilioBridge.for_model("qwen3.5-omni-flash-realtime", config=SessionConfig(...))

    @sock.route("/media")            # flask-sock
    def media(ws):
        bridge.serve(ws)

Each call gets its own Session: the caller's μ-law goes in (at 8 kHz natively on qwen3.5
models, see :func:`phone_config`; resampled on the others), the reply comes back as μ-law in
20 ms frames paced in real time, with a mark after each reply chunk so the bridge knows what
the caller heard, and a ``clear`` the moment the caller talks over it. ``samples/twilio_bridge.py``
is a runnable server.

The message codec (:func:`parse_message`, :func:`media_message`, ...) and the :class:`Pacer`
are public for bridges to other Twilio-compatible providers.
"""

from __future__ import annotations

from ._bridge import CallReport, CallSocket, SessionFactory, TwilioBridge, phone_config
from ._pacer import Pacer
from ._twilio import (
    MEDIA_ENCODINGS,
    Connected,
    Dtmf,
    Mark,
    Media,
    OtherMessage,
    Start,
    Stop,
    TwilioMessage,
    clear_message,
    mark_message,
    media_message,
    parse_message,
)

__all__ = [
    "MEDIA_ENCODINGS",
    "CallReport",
    "CallSocket",
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "OtherMessage",
    "Pacer",
    "SessionFactory",
    "Start",
    "Stop",
    "TwilioBridge",
    "TwilioMessage",
    "clear_message",
    "mark_message",
    "media_message",
    "parse_message",
    "phone_config",
]
