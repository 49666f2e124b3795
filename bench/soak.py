"""Soak: a long simulated conversation at real-time pace; RSS must not grow after warm-up.

One session, server VAD, against the simulator in real-time mode (its own process). A
microphone thread streams 48 kHz stereo float audio in 100 ms blocks at real-time pace: a
spoken sentence, then silence while the reply plays, again and again. RSS is sampled every
``--interval`` seconds; the slope after the warm-up (a least-squares fit) is printed and
written to ``bench/results/soak-<time>.json``. Not part of CI.
Run: ``python bench/soak.py [--minutes 10] [--interval 10]``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_loopback import MODEL, SimProcess  # noqa: E402

__all__ = ["run_soak"]

REPLY = "Sure, I can help with that. Here is a short answer for you."


def _turn_audio() -> list[np.ndarray]:
    """One user turn: speech then silence, as 100 ms blocks of 48 kHz stereo float32."""
    from dashscope_rt.testing import silence, synthesize

    pcm = synthesize("could you tell me what the weather is like today", 16000)
    pcm += silence(6000, 16000)
    mono = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    up = np.repeat(mono, 3)
    stereo = np.stack([up, up], axis=1)
    return [stereo[i : i + 4800] for i in range(0, len(stereo) - 4799, 4800)]


def run_soak(minutes: float = 10.0, interval: float = 10.0) -> dict[str, Any]:
    import psutil

    from dashscope_rt.session import Session

    proc = psutil.Process()
    blocks = _turn_audio()
    replies = [0]
    deltas = [0]
    errors: list[str] = []
    samples: list[tuple[float, float]] = []
    with SimProcess(speed=1.0, reply=REPLY) as sim:
        s = Session(MODEL, api_key=sim.api_key, url=sim.url)
        s.on_audio_delta(lambda e: deltas.__setitem__(0, deltas[0] + 1))
        s.on("response.done", lambda e: replies.__setitem__(0, replies[0] + 1))
        s.on_error(lambda exc: errors.append(repr(exc)))
        stop = threading.Event()

        def mic() -> None:
            nxt = time.monotonic()
            i = 0
            while not stop.is_set():
                s.append_audio(blocks[i % len(blocks)], 48000, 2)
                i += 1
                nxt += 0.1
                stop.wait(max(0.0, nxt - time.monotonic()))

        with s:
            t0 = time.monotonic()
            feeder = threading.Thread(target=mic, name="soak-mic", daemon=True)
            feeder.start()
            end = t0 + minutes * 60
            while time.monotonic() < end and not s.closed:
                gc.collect()
                samples.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
                print(
                    f"{samples[-1][0]:7.1f} s  RSS {samples[-1][1]:7.2f} MB  "
                    f"replies {replies[0]}  deltas {deltas[0]}",
                    flush=True,
                )
                time.sleep(min(interval, max(0.0, end - time.monotonic())))
            stop.set()
            feeder.join()
            closed_early = s.closed
    warm = min(120.0, 0.3 * minutes * 60)
    after = [(t, m) for t, m in samples if t >= warm]
    slope = (
        float(np.polyfit([t for t, _ in after], [m for _, m in after], 1)[0])
        if len(after) >= 3
        else float("nan")
    )
    growth = after[-1][1] - after[0][1] if len(after) >= 2 else float("nan")
    return {
        "bench": "soak",
        "minutes": minutes,
        "interval_s": interval,
        "warmup_s": warm,
        "replies": replies[0],
        "audio_deltas": deltas[0],
        "errors": errors,
        "closed_early": closed_early,
        "rss_mb": [[round(t, 1), round(m, 3)] for t, m in samples],
        "slope_kb_per_min": round(slope * 1024 * 60, 2),
        "growth_after_warmup_mb": round(growth, 3),
        "no_growth": bool(slope * 60 * 1024 < 64 and not closed_early),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="long real-time conversation, RSS over time")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    res = run_soak(args.minutes, args.interval)
    print(
        f"\n{res['replies']} replies, {res['audio_deltas']} audio deltas, "
        f"{len(res['errors'])} errors; RSS slope after {res['warmup_s']:.0f} s warm-up: "
        f"{res['slope_kb_per_min']:+.1f} KB/min (growth {res['growth_after_warmup_mb']:+.2f} MB)"
        f" -> {'OK' if res['no_growth'] else 'GROWS'}"
    )
    out = (
        HERE
        / "results"
        / f"soak-{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
