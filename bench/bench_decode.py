"""Decode throughput: ``dashscope_rt.events.decode`` against the plain ``json.loads`` floor.

Frame mix per simulated turn: ~90 % ``response.audio.delta`` (100 ms of 24 kHz PCM16 = 4800 bytes
each), some ``response.audio_transcript.delta`` and a few control events. The floor is
``json.loads(frame)`` plus ``base64.b64decode(d["delta"])`` for audio deltas. Prints events/s and
the ratio (decode time / floor time; < 1 means decode is faster). On a shared machine the
ratio moves by +-0.05 between runs; compare ratios from one run only. Run:
``.venv/bin/python bench/bench_decode.py``. Peers can ``from bench_decode import build_frames,
run_decode_bench`` and add their own decoders via ``extra``.
"""

from __future__ import annotations

import base64
import binascii
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashscope_rt.events import decode

__all__ = ["build_frames", "floor_decode", "floor_warm_decode", "run_decode_bench"]

PCM_BYTES = 4800  # 100 ms of 24 kHz mono PCM16


def _id(prefix: str, rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(21))


def build_frames(turns: int = 20, seed: int = 1) -> list[str]:
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
        for k in range(90):
            if k % 15 == 5:
                add({"type": "response.audio_transcript.delta", **ids, "delta": "有什么可以帮你"})
            pcm = rng.randbytes(PCM_BYTES)
            add({"type": "response.audio.delta", **ids, "delta": base64.b64encode(pcm).decode()})
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


def floor_decode(frame: str | bytes) -> Any:
    """The floor: what any client must do at least (parse JSON, decode the audio)."""
    d = json.loads(frame)
    if d.get("type") == "response.audio.delta":
        return base64.b64decode(d["delta"])
    return d


def floor_warm_decode(frame: str | bytes) -> Any:
    """The floor plus the empty ``a2b_base64`` call that ``decode`` makes before the real one.

    Reference only: shows how much of decode's lead comes from that call, not its fast path.
    """
    d = json.loads(frame)
    if d.get("type") == "response.audio.delta":
        binascii.a2b_base64("")
        return base64.b64decode(d["delta"])
    return d


def _time(fn: Callable[[Any], Any], frames: list[Any]) -> float:
    t0 = time.perf_counter()
    for f in frames:
        fn(f)
    return time.perf_counter() - t0


def run_decode_bench(
    frames: list[str],
    *,
    repeat: int = 15,
    extra: dict[str, Callable[[str], Any]] | None = None,
) -> dict[str, Any]:
    """Time ``decode``, the floor and any ``extra`` decoders over ``frames`` (str).

    ``*_bytes`` entries get the same frames as UTF-8 bytes (what a WebSocket delivers before
    text decoding); their ratio is against ``floor_bytes``. Runs are interleaved (each repeat
    times every decoder once) and the best run counts, so a busy shared machine does not favour
    one side.
    """
    as_bytes = [f.encode("utf-8") for f in frames]
    decoders: dict[str, tuple[Callable[[Any], Any], list[Any], str]] = {
        "floor": (floor_decode, frames, "floor"),
        "dashscope_rt": (decode, frames, "floor"),
        "floor_bytes": (floor_decode, as_bytes, "floor_bytes"),
        "dashscope_rt_bytes": (decode, as_bytes, "floor_bytes"),
        "floor_warm": (floor_warm_decode, frames, "floor"),
    }
    for name, fn in (extra or {}).items():
        decoders[name] = (fn, frames, "floor")
    for fn, inputs, _ in decoders.values():  # warm up
        for f in inputs[:200]:
            fn(f)
    n = len(frames)
    audio = sum(1 for f in frames if '"response.audio.delta"' in f)
    results: dict[str, Any] = {
        "frames": n,
        "audio_fraction": round(audio / n, 3),
        "repeat": repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "decoders": {},
    }
    best = dict.fromkeys(decoders, float("inf"))
    for _ in range(repeat):
        for name, (fn, inputs, _) in decoders.items():
            best[name] = min(best[name], _time(fn, inputs))
    for name, secs in best.items():
        results["decoders"][name] = {
            "seconds": secs,
            "events_per_s": round(n / secs),
            "us_per_event": round(secs / n * 1e6, 3),
            "ratio_to_floor": round(secs / best[decoders[name][2]], 3),
            "floor": decoders[name][2],
        }
    results["ratio"] = results["decoders"]["dashscope_rt"]["ratio_to_floor"]
    results["ratio_bytes"] = results["decoders"]["dashscope_rt_bytes"]["ratio_to_floor"]
    return results


def main() -> None:
    frames = build_frames()
    res = run_decode_bench(frames)
    print(
        f"{res['frames']} frames, {res['audio_fraction']:.0%} audio deltas, best of {res['repeat']}"
    )
    for name, r in res["decoders"].items():
        print(
            f"  {name:18s} {r['events_per_s']:>9,d} events/s  {r['us_per_event']:7.2f} us/event"
            f"  ratio {r['ratio_to_floor']:.3f}"
        )
    out = Path(__file__).resolve().parent / "results" / "decode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"decode / floor = {res['ratio']:.3f} (str), {res['ratio_bytes']:.3f} (bytes)  -> {out}")


if __name__ == "__main__":
    main()
