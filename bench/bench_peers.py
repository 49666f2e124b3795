"""Decode + dispatch throughput: dashscope_rt against the floor and the peers, on the same frames.

Every decoder gets the frames of ``bench_decode.build_frames`` (mostly 100 ms 24 kHz audio
deltas) one by one and must end with the event handed to a no-op handler:

* ``floor``: ``json.loads`` + ``base64.b64decode`` of the audio (the least any client does).
* ``dashscope_rt decode``: :func:`dashscope_rt.events.decode` alone.
* ``dashscope_rt decode+dispatch``: decode, then the session's real dispatch step
  (``Engine._dispatch_one``: conversation state, handler lookup, lag sample, a no-op handler).
* ``dashscope (official)``: ``OmniRealtimeConversation._on_message`` (its websocket-client
  ``on_message``: ``json.loads`` and ``callback.on_event(dict)``), with a no-op callback; the
  ``+b64`` row also decodes the audio in the callback, as a user must to play it.
* ``openai parse_event``: openai-python's realtime ``parse_event`` (``json.loads`` +
  ``construct_type_unchecked`` into the beta event models, whose names Qwen uses); ``+b64``
  likewise decodes the audio.

Run alone: ``python bench/bench_peers.py``.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_decode import build_frames, run_decode_bench

from dashscope_rt import events as ev

__all__ = ["peer_decoders", "run_peers_bench"]

_KEY = "sk-bench-not-a-real-key"
_KEEP: list[Any] = []


def _noop(_: Any) -> None:
    return None


def _ours_dispatch(frames: list[str] | None = None) -> Callable[[str], Any]:
    """decode + the session's dispatch step, on this thread, with one no-op handler."""
    from dashscope_rt.session import Session

    session = Session(
        "qwen3-omni-flash-realtime", api_key=_KEY, url="ws://127.0.0.1:9/api-ws/v1/realtime"
    )
    session.on_audio_delta(_noop)
    session.on_transcript_delta(_noop)
    engine = session._engine
    dispatch_one = engine._dispatch_one
    decode = ev.decode
    monotonic = time.monotonic
    _KEEP.append(session)  # its finaliser would close the engine

    if frames is None:

        def run(frame: str) -> None:
            dispatch_one(monotonic(), decode(frame))

        return run
    payload = {f: f.encode("utf-8") for f in frames}  # what the reader really gets: bytes

    def run_bytes(frame: str) -> None:
        dispatch_one(monotonic(), decode(payload[frame]))

    return run_bytes


def _dashscope(b64: bool) -> Callable[[str], Any] | None:
    try:
        from dashscope.audio.qwen_omni import OmniRealtimeCallback, OmniRealtimeConversation
    except ImportError:
        return None
    b64decode = base64.b64decode

    class Callback(OmniRealtimeCallback):
        def on_event(self, message: Any) -> None:
            if b64 and message.get("type") == "response.audio.delta":
                b64decode(message["delta"])

    conv = OmniRealtimeConversation(
        model="qwen3-omni-flash-realtime", callback=Callback(), api_key=_KEY
    )
    on_message = conv._on_message

    def run(frame: str) -> None:
        on_message(None, frame)  # type: ignore[no-untyped-call]

    return run


def _openai(b64: bool) -> Callable[[str], Any] | None:
    try:
        from openai.resources.beta.realtime.realtime import RealtimeConnection
    except ImportError:
        return None
    conn = RealtimeConnection.__new__(RealtimeConnection)  # parse_event uses no connection state
    parse = conn.parse_event
    b64decode = base64.b64decode

    def run(frame: str) -> None:
        event = parse(frame)
        if b64 and event.type == "response.audio.delta":
            b64decode(event.delta)
        _noop(event)

    return run


def _websocket_client_utf8_us(frames: list[str], sample: int = 200) -> float | None:
    """µs per frame of websocket-client's UTF-8 check, on an evenly spaced sample of frames."""
    try:
        from websocket._utils import validate_utf8
    except ImportError:
        return None
    step = max(1, len(frames) // sample)
    data = [f.encode("utf-8") for f in frames[::step]]
    t0 = time.perf_counter()
    for b in data:
        validate_utf8(b)
    return (time.perf_counter() - t0) / len(data) * 1e6


def peer_decoders(frames: list[str]) -> dict[str, Callable[[str], Any]]:
    """Every decoder to time besides the floor and ``dashscope_rt`` (decode only)."""
    out: dict[str, Callable[[str], Any]] = {
        "dashscope_rt decode+dispatch": _ours_dispatch(),
        "dashscope_rt decode+dispatch (bytes)": _ours_dispatch(frames),
    }
    makers: list[tuple[str, Callable[[], Callable[[str], Any] | None]]] = [
        ("dashscope (official)", lambda: _dashscope(False)),
        ("dashscope (official) +b64", lambda: _dashscope(True)),
        ("openai parse_event", lambda: _openai(False)),
        ("openai parse_event +b64", lambda: _openai(True)),
    ]
    for name, make in makers:
        fn = make()
        if fn is not None:
            out[name] = fn
    return out


def run_peers_bench(turns: int = 20, repeat: int = 7) -> dict[str, Any]:
    """Time every decoder over the same frames; add ratios against the floor and each peer."""
    frames = build_frames(turns=turns)
    res = run_decode_bench(frames, repeat=repeat, extra=peer_decoders(frames))
    dec = res["decoders"]
    utf8 = _websocket_client_utf8_us(frames)
    if utf8 is not None and "dashscope (official) +b64" in dec:
        # The official SDK's socket layer (websocket-client's WebSocketApp) validates the UTF-8
        # of every text frame in pure Python unless wsaccel is installed; dashscope_rt's
        # transport skips that (the JSON decoder validates in C). Too slow to run over every
        # frame with the others, so it is timed on a sample and added to the measured path.
        base = dec["dashscope (official) +b64"]
        us = base["us_per_event"] + utf8
        dec["dashscope (official) +b64 +socket UTF-8 check"] = {
            "seconds": us * len(frames) / 1e6,
            "events_per_s": round(1e6 / us),
            "us_per_event": round(us, 3),
            "ratio_to_floor": round(us / dec["floor"]["us_per_event"], 3),
            "note": f"measured +b64 path plus websocket-client validate_utf8 ({utf8:.1f} us/event)",
        }
    ours = dec["dashscope_rt decode+dispatch"]["seconds"]
    res["ours_vs"] = {
        name: round(ours / entry["seconds"], 3)
        for name, entry in dec.items()
        if name != "dashscope_rt decode+dispatch"
    }
    res["targets"] = {
        "ours/floor <= 0.8": res["ours_vs"]["floor"] <= 0.8,
        "ours/openai <= 0.3": (res["ours_vs"].get("openai parse_event +b64", float("inf")) <= 0.3),
    }
    return res


def main() -> None:
    res = run_peers_bench()
    print(f"{res['frames']} frames, {res['audio_fraction']:.0%} audio deltas, best of 7")
    for name, r in res["decoders"].items():
        print(
            f"  {name:32s} {r['events_per_s']:>9,d} ev/s {r['us_per_event']:8.2f} us/ev"
            f"  ours/this {res['ours_vs'].get(name, 1.0):6.3f}"
        )
    print(json.dumps(res["targets"]))


if __name__ == "__main__":
    main()
