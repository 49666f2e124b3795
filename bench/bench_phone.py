"""Phone calls: G.711 codec throughput, and the bridge's CPU time per 20 ms frame.

Codecs: each function over 10 s of 8 kHz speech-like audio in one call, and over 20 ms frames
(160 samples, what a call passes); throughput counts the *input* bytes (PCM16 for the encoders,
G.711 for the decoders). Where ``audioop`` exists (Python <= 3.12) its functions run side by
side on the same input, and the ratio is ours / audioop's CPU time (below 1: we are faster).

Bridge: the CPU time of the work the Twilio bridge does per 20 ms frame, measured on its code
path: inbound, ``parse_message`` (JSON + base64) then ``Session.append_audio(encoding="ulaw")``
on a live session against the in-process simulator (G.711 decode, resampling where the model
needs it, the SDK's chunking and event encoding); outbound, the reply handler's work for a
100 ms delta (``G711Encoder`` + framing, a fifth of it per frame) plus one ``media_message``.
Everything is CPU time of the measuring thread (``time.thread_time``), median of ``--repeats``
batches with the 10th-90th percentile spread.

Run: ``python bench/bench_phone.py [--repeats 25]``; writes ``bench/results/phone.json``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dashscope_rt import Session, SessionConfig
from dashscope_rt.audio import (
    G711Encoder,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from dashscope_rt.telephony import Media, mark_message, media_message, parse_message, phone_config
from dashscope_rt.testing import Simulator, synthesize

__all__ = ["run_phone_bench"]

RESULTS = Path(__file__).resolve().parent / "results" / "phone.json"
FRAME = 160
KEY = "sk-bench"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13
        audioop = None  # type: ignore[assignment]


QWEN35 = "qwen3.5-omni-flash-realtime"
FLASH = "qwen3-omni-flash-realtime"
CODECS = (
    ("ulaw_encode", ulaw_encode, "lin2ulaw", True),
    ("ulaw_decode", ulaw_decode, "ulaw2lin", False),
    ("alaw_encode", alaw_encode, "lin2alaw", True),
    ("alaw_decode", alaw_decode, "alaw2lin", False),
)


def _stats(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median and 10th/90th percentiles of ``values * scale``."""
    v = sorted(x * scale for x in values)
    q = statistics.quantiles(v, n=10, method="inclusive") if len(v) > 1 else [v[0]] * 9
    return {"median": statistics.median(v), "p10": q[0], "p90": q[-1]}


def _paired(fns: dict[str, Callable[[], Any]], items: int, repeats: int) -> dict[str, list[float]]:
    """CPU seconds per item of each function, the functions taking turns in every repeat."""
    for fn in fns.values():
        fn()  # warm up (tables, caches)
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.thread_time()
            fn()
            out[name].append((time.thread_time() - c0) / items)
    return out


def _ratio(ours: list[float], theirs: list[float]) -> dict[str, float]:
    return _stats([a / b for a, b in zip(ours, theirs, strict=True)])


def _each(fn: Callable[..., Any], items: list[bytes], extra: tuple[int, ...]) -> None:
    for item in items:
        fn(item, *extra)


def bench_codecs(repeats: int) -> list[dict[str, Any]]:
    """Each codec over 10 s of audio in one call and in 20 ms frames, beside audioop."""
    pcm = synthesize("the quick brown fox jumps over the lazy dog " * 4, 8000)[: 10 * 8000 * 2]
    codes = ulaw_encode(pcm)
    rows = []
    for name, fn, peer_name, linear in CODECS:
        data = pcm if linear else codes
        step = 2 * FRAME if linear else FRAME
        frames = [data[i : i + step] for i in range(0, len(data), step)]
        # audioop's functions take the sample width too (2 bytes).
        calls: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {"ours": (fn, ())}
        if audioop is not None:
            calls["audioop"] = (getattr(audioop, peer_name), (2,))
        whole = _paired(
            {k: functools.partial(f, data, *extra) for k, (f, extra) in calls.items()}, 1, repeats
        )
        framed = _paired(
            {k: functools.partial(_each, f, frames, extra) for k, (f, extra) in calls.items()},
            len(frames),
            repeats,
        )
        row: dict[str, Any] = {"function": name, "input_bytes": len(data)}
        for who in calls:
            row[who] = {
                "MB_per_s": _stats([len(data) / s / 1e6 for s in whole[who]]),
                "us_per_20ms_frame": _stats(framed[who], 1e6),
            }
        if audioop is not None:
            row["ratio_ours_over_audioop"] = {
                "block": _ratio(whole["ours"], whole["audioop"]),
                "frame": _ratio(framed["ours"], framed["audioop"]),
            }
        rows.append(row)
    return rows


def _inbound(session: Session, messages: list[str], *, bridge_only: bool) -> Callable[[], None]:
    def run() -> None:
        for text in messages:
            media = parse_message(text)
            assert isinstance(media, Media)
            if bridge_only:
                ulaw_decode(media.payload)
            else:
                session.append_audio(media.payload, 8000, encoding="ulaw")

    return run


def _outbound(rate: int, seconds: float) -> tuple[Callable[[], None], int]:
    """The reply handler's calls for ``seconds`` of 100 ms deltas at ``rate``, and the frames."""
    pcm = synthesize("here is a spoken answer that goes on for a while " * 3, rate)
    pcm = pcm[: int(seconds * rate) * 2]
    step = rate // 10 * 2
    deltas = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    encoder = G711Encoder(rate, "ulaw")

    def run() -> None:
        carry = b""
        for delta in deltas:
            data = carry + encoder.encode(delta)
            whole = len(data) - len(data) % FRAME
            carry = data[whole:]
            for i in range(0, whole, FRAME):
                media_message("MZbench", data[i : i + FRAME])
            mark_message("MZbench", "resp#1")
        encoder.flush()

    return run, int(seconds * 50)


def bench_bridge(repeats: int, seconds: float = 5.0) -> list[dict[str, Any]]:
    """Inbound and outbound CPU time per 20 ms frame, on the 8 kHz native path and resampled."""
    pcm = synthesize("hello, I would like to ask about my order " * 3, 8000)
    mulaw = ulaw_encode(pcm[: int(seconds * 8000) * 2])
    messages = [
        json.dumps(
            {
                "event": "media",
                "streamSid": "MZbench",
                "media": {
                    "track": "inbound",
                    "payload": base64.b64encode(mulaw[i : i + FRAME]).decode(),
                },
            }
        )
        for i in range(0, len(mulaw), FRAME)
    ]
    rows = []
    with Simulator(api_key=KEY, record=False) as sim:
        for model in (QWEN35, FLASH):
            cfg = phone_config(model, SessionConfig(turn_detection=None))
            with Session(model, api_key=KEY, url=sim.url, config=cfg) as session:
                inbound = _paired(
                    {
                        "bridge only (parse + decode)": _inbound(
                            session, messages, bridge_only=True
                        ),
                        "with append_audio": _inbound(session, messages, bridge_only=False),
                    },
                    len(messages),
                    repeats,
                )
                rate = session.output_rate
                in_rate = session.input_rate
                session.clear_audio()
            out_run, out_frames = _outbound(rate, seconds)
            outbound = _paired({"reply frames": out_run}, out_frames, repeats)
            rows.append(
                {
                    "model": model,
                    "session_rates": f"{in_rate} Hz in, {rate} Hz out",
                    "inbound_us_per_frame": {k: _stats(v, 1e6) for k, v in inbound.items()},
                    "outbound_us_per_frame": _stats(outbound["reply frames"], 1e6),
                }
            )
    return rows


def run_phone_bench(repeats: int = 25) -> dict[str, Any]:
    """Run both parts; return a JSON-ready dict."""
    return {
        "bench": "phone",
        "repeats": repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "audioop": audioop is not None,
        "codecs": bench_codecs(repeats),
        "bridge": bench_bridge(repeats),
    }


def _fmt(s: dict[str, float], unit: str = "") -> str:
    return f"{s['median']:8.2f}{unit} [{s['p10']:.2f}-{s['p90']:.2f}]"


def _print(report: dict[str, Any]) -> None:
    print(f"Python {report['python']}, median [p10-p90] of {report['repeats']} batches, CPU time")
    print("\nG.711 codecs (MB/s of input; us per 20 ms frame of 160 samples)")
    print(f"{'function':12} {'who':8} {'MB/s':>24} {'us/frame':>24}")
    for row in report["codecs"]:
        for who in ("ours", "audioop"):
            if who in row:
                r = row[who]
                print(
                    f"{row['function']:12} {who:8} {_fmt(r['MB_per_s']):>24} "
                    f"{_fmt(r['us_per_20ms_frame']):>24}"
                )
        if "ratio_ours_over_audioop" in row:
            rr = row["ratio_ours_over_audioop"]
            print(
                f"{'':12} {'ratio':8} {_fmt(rr['block']):>24} {_fmt(rr['frame']):>24}"
                "   (ours / audioop CPU time)"
            )
    print("\nBridge CPU time per 20 ms frame (us)")
    for row in report["bridge"]:
        print(f"{row['model']} ({row['session_rates']})")
        for k, v in row["inbound_us_per_frame"].items():
            print(f"  inbound  {k:30} {_fmt(v)}")
        print(f"  outbound {'reply frames':30} {_fmt(row['outbound_us_per_frame'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args(argv)
    report = run_phone_bench(args.repeats)
    _print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
