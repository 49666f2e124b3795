"""Decode (+ dispatch) CPU per server event on one thread, against the floor and the peers.

Frames per simulated turn: 90 ``response.audio.delta`` (100 ms of 24 kHz PCM16 = 4800 bytes
each), 6 transcript deltas and 6 control events (:func:`build_frames`). Every decoder gets every
frame and must end with the audio decoded to bytes:

* ``floor``: ``json.loads`` + base64 decode of the audio, with the fastest call of the base64
  library dashscope_rt uses in this process (:func:`benchlib.b64decode_fn`): the least any client
  does. ``floor (bytes)`` parses the frame's UTF-8 bytes, as a socket delivers them.
* ``dashscope_rt decode``: :func:`dashscope_rt.events.decode`; ``+dispatch`` adds the session's
  dispatch step on this thread (conversation state, handler lookup, a no-op handler). The
  reader really gets bytes: the ``(bytes)`` rows are the real path.
* the official ``dashscope`` SDK: its websocket-client ``on_message`` (``json.loads`` +
  ``callback.on_event(dict)``) with a callback that decodes the audio with the same library;
  openai-python's realtime ``parse_event`` likewise. Both are handed ``str`` (what their socket
  layer gives them); what that layer costs is in ``bench_e2e.py``.

CPU time of this thread, each repeat timing every decoder once in rotating order; medians and
IQR over the repeats, ratios paired per repeat. ``--json`` prints the result for
:func:`benchlib.run_child`. Run: ``python bench/bench_decode.py [--turns 20]``.
"""

from __future__ import annotations

import base64
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import b64_library, b64decode_fn, bench_main, fmt_stat, ratio_stats, stat

__all__ = ["build_frames", "run_decode_bench"]

PCM_BYTES = 4800  # 100 ms of 24 kHz mono PCM16
AUDIO_TYPE = "response.audio.delta"


def _id(prefix: str, rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(21))


def build_frames(turns: int = 20, seed: int = 1, deltas: int = 90) -> list[str]:
    """Realistic server frames: per turn 90 audio deltas, 6 transcript deltas, 6 controls."""
    rng = random.Random(seed)
    frames: list[str] = []

    def add(d: dict[str, Any]) -> None:
        frames.append(json.dumps({"event_id": _id("event_", rng), **d}, ensure_ascii=False))

    for _ in range(turns):
        resp, item = _id("resp_", rng), _id("item_", rng)
        ids = {"response_id": resp, "item_id": item, "output_index": 0, "content_index": 0}
        add({"type": "input_audio_buffer.speech_started", "audio_start_ms": 1200, "item_id": item})
        add({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2400, "item_id": item})
        add(
            {
                "type": "response.created",
                "response": {
                    "id": resp,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "modalities": ["text", "audio"],
                    "output": [],
                },
            }
        )
        for k in range(deltas):
            if k % 15 == 5:
                add({"type": "response.audio_transcript.delta", **ids, "delta": "有什么可以帮你"})
            pcm = rng.randbytes(PCM_BYTES)
            add({"type": AUDIO_TYPE, **ids, "delta": base64.b64encode(pcm).decode()})
        add({"type": "response.audio.done", **ids})
        add(
            {
                "type": "response.done",
                "response": {
                    "id": resp,
                    "status": "completed",
                    "output": [],
                    "usage": {"total_tokens": 377, "input_tokens": 336, "output_tokens": 41},
                },
            }
        )
    return frames


def _floor() -> Callable[[Any], Any]:
    """json.loads + the fastest base64 decode of this process's library (str or bytes in)."""
    loads = json.loads
    b64decode = b64decode_fn()

    def floor(frame: str | bytes) -> Any:
        d = loads(frame)
        if d.get("type") == AUDIO_TYPE:
            return b64decode(d["delta"])
        return d

    return floor


_KEEP: list[Any] = []


def _noop(_: Any) -> None:
    return None


def _ours_dispatch() -> Callable[[Any], Any]:
    """decode + the session's dispatch step, on this thread, with no-op handlers."""
    from dashscope_rt import events as ev
    from dashscope_rt.session import Session

    session = Session(
        "qwen3-omni-flash-realtime", api_key="sk-bench", url="ws://127.0.0.1:9/api-ws/v1/realtime"
    )
    session.on_audio_delta(_noop)
    session.on_transcript_delta(_noop)
    dispatch_one = session._engine._dispatch_one
    decode = ev.decode
    monotonic = time.monotonic
    _KEEP.append(session)  # its finaliser would close the engine

    def run(frame: str | bytes) -> None:
        dispatch_one(monotonic(), decode(frame))

    return run


def _decoders() -> dict[str, tuple[Callable[[Any], Any], bool]]:
    """name -> (decoder, takes bytes)."""
    from bench_peers import peer_decoders

    from dashscope_rt.events import decode

    floor = _floor()
    dispatch = _ours_dispatch()
    out: dict[str, tuple[Callable[[Any], Any], bool]] = {
        "floor": (floor, False),
        "floor (bytes)": (floor, True),
        "dashscope_rt decode": (decode, False),
        "dashscope_rt decode (bytes)": (decode, True),
        "dashscope_rt decode+dispatch": (dispatch, False),
        "dashscope_rt decode+dispatch (bytes)": (dispatch, True),
    }
    for name, fn in peer_decoders(b64decode_fn()).items():
        out[name] = (fn, False)
    return out


# Ratios the report shows: (numerator, denominator).
RATIOS = [
    ("dashscope_rt decode (bytes)", "floor (bytes)"),
    ("dashscope_rt decode+dispatch (bytes)", "floor (bytes)"),
    ("dashscope_rt decode", "floor"),
    ("dashscope_rt decode+dispatch", "floor"),
    ("dashscope_rt decode+dispatch", "dashscope (official) +b64"),
    ("dashscope_rt decode+dispatch", "openai parse_event +b64"),
]


def run_decode_bench(turns: int = 20, repeat: int = 15) -> dict[str, Any]:
    """µs of CPU per event for every decoder (median, IQR) and the paired ratios."""
    frames = build_frames(turns=turns)
    as_bytes = [f.encode("utf-8") for f in frames]
    decoders = _decoders()
    for fn, raw in decoders.values():  # warm up
        for f in (as_bytes if raw else frames)[:300]:
            fn(f)
    names = list(decoders)
    runs: dict[str, list[float]] = {name: [] for name in names}
    thread_time = time.thread_time
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, raw = decoders[name]
            inputs = as_bytes if raw else frames
            t0 = thread_time()
            for f in inputs:
                fn(f)
            runs[name].append((thread_time() - t0) / len(inputs) * 1e6)
    n = len(frames)
    return {
        "bench": "decode",
        "b64_library": b64_library(),
        "frames": n,
        "audio_fraction": round(sum(AUDIO_TYPE in f for f in frames) / n, 3),
        "repeat": repeat,
        "python": platform.python_version(),
        "us_per_event": {name: stat(v) for name, v in runs.items()},
        "ratios": {
            f"{a} / {b}": ratio_stats(runs[a], runs[b])
            for a, b in RATIOS
            if a in runs and b in runs
        },
    }


def _show(res: dict[str, Any]) -> None:
    print(
        f"{res['frames']} frames, {res['audio_fraction']:.0%} audio deltas, base64: "
        f"{res['b64_library']}, median (IQR) of {res['repeat']} runs, CPU us per event"
    )
    for name, s in res["us_per_event"].items():
        print(f"  {name:40s} {fmt_stat(s)}")
    for name, s in res["ratios"].items():
        print(f"  {name:70s} {fmt_stat(s, unit='x')}")


def main() -> None:
    bench_main(__doc__, run_decode_bench, _show, turns=20, repeat=15)


if __name__ == "__main__":
    main()
