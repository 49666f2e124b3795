"""The peers' decode paths for ``bench_decode.py``, each finishing with the audio decoded.

* ``dashscope (official)``: ``OmniRealtimeConversation._on_message`` (websocket-client's
  ``on_message``: ``json.loads`` and ``callback.on_event(dict)``) with a no-op callback; the
  ``+b64`` row's callback also decodes the audio, as a user must to play it.
* ``openai parse_event``: openai-python's realtime ``parse_event`` (``json.loads`` +
  ``construct_type_unchecked`` into the beta event models, whose names Qwen uses); ``+b64``
  likewise decodes the audio.

The base64 decoder is passed in, so both sides of a comparison use the same library. A peer that
is not installed (``pip install -e .[bench]``) is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["close_conversation", "peer_decoders"]

_KEY = "sk-bench-not-a-real-key"


def _dashscope(b64decode: Callable[[str], bytes] | None) -> Callable[[str], Any] | None:
    try:
        from dashscope.audio.qwen_omni import OmniRealtimeCallback, OmniRealtimeConversation
    except ImportError:
        return None

    class Callback(OmniRealtimeCallback):
        def on_event(self, message: Any) -> None:
            if b64decode is not None and message.get("type") == "response.audio.delta":
                b64decode(message["delta"])

    conv = OmniRealtimeConversation(
        model="qwen3-omni-flash-realtime", callback=Callback(), api_key=_KEY
    )
    on_message = conv._on_message

    def run(frame: str) -> None:
        on_message(None, frame)  # type: ignore[no-untyped-call]

    return run


def _openai(b64decode: Callable[[str], bytes] | None) -> Callable[[str], Any] | None:
    try:
        from openai.resources.beta.realtime.realtime import RealtimeConnection
    except ImportError:
        return None
    conn = RealtimeConnection.__new__(RealtimeConnection)  # parse_event uses no connection state
    parse = conn.parse_event

    def run(frame: str) -> Any:
        event = parse(frame)
        if b64decode is not None and event.type == "response.audio.delta":
            b64decode(event.delta)
        return event

    return run


def peer_decoders(b64decode: Callable[[str], bytes]) -> dict[str, Callable[[str], Any]]:
    """The installed peers' decoders, without and with the audio decode."""
    out: dict[str, Callable[[str], Any]] = {}
    for name, make in (("dashscope (official)", _dashscope), ("openai parse_event", _openai)):
        for suffix, dec in (("", None), (" +b64", b64decode)):
            fn = make(dec)
            if fn is not None:
                out[name + suffix] = fn
    return out


def close_conversation(conv: Any) -> None:
    """Close an ``OmniRealtimeConversation`` and wait for its websocket-client thread."""
    conv.close()
    thread = getattr(conv, "thread", None)
    if thread is not None:
        thread.join(5)
