"""Resampler throughput and quality: AudioConverter against per-chunk alternatives.

Feeds a 1 kHz sine in 100 ms chunks, as a microphone would, and reports for each method the
speed as a multiple of real time, the CPU time per 100 ms chunk, and the SNR of the result against
an ideal sine at the target rate. The per-chunk alternatives are what users of other SDKs wrote
(anchors.md §5.5): ``scipy.signal.resample_poly`` and one-shot ``soxr.resample`` on every chunk.

Run: ``python bench/bench_resampler.py [--seconds 10] [--repeats 5]``; writes
``bench/results/resampler.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from dashscope_rt.audio import AudioConverter

__all__ = ["run_resampler_bench"]

RESULTS = Path(__file__).resolve().parent / "results" / "resampler.json"
CHUNK_MS = 100
TONE_HZ = 1000.0
AMPLITUDE = 0.5

Chunker = Callable[[npt.NDArray[Any]], npt.NDArray[np.float64] | None]


def _sine(rate: int, seconds: float, channels: int, dtype: str) -> npt.NDArray[Any]:
    t = np.arange(int(rate * seconds)) / rate
    x = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    x = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    if dtype == "int16":
        return np.round(x * 32767).astype(np.int16)
    return x.astype(dtype)


def _snr_db(y: npt.NDArray[np.float64], rate: int) -> float:
    ref = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(len(y)) / rate)
    edge = rate // 50
    err = y[edge:-edge] - ref[edge:-edge]
    return 10 * math.log10(float(np.sum(ref[edge:-edge] ** 2)) / max(float(np.sum(err**2)), 1e-30))


def _as_float(x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    f = x.astype(np.float64)
    if x.dtype == np.int16:
        f /= 32768.0
    return f.mean(axis=1) if f.ndim == 2 else f


def _converter(in_rate: int, out_rate: int, channels: int) -> tuple[Chunker, Callable[[], Any]]:
    conv = AudioConverter(out_rate, input_rate=in_rate, channels=channels, chunk_ms=CHUNK_MS)
    out: list[bytes] = []

    def step(chunk: npt.NDArray[Any]) -> None:
        out.extend(conv.convert(chunk))

    def finish() -> npt.NDArray[np.float64]:
        out.extend(conv.flush())
        return np.frombuffer(b"".join(out), "<i2") / 32768.0

    return step, finish


def _per_chunk(
    fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[Any]],
) -> Callable[[int, int, int], tuple[Chunker, Callable[[], Any]]]:
    def make(in_rate: int, out_rate: int, channels: int) -> tuple[Chunker, Callable[[], Any]]:
        out: list[npt.NDArray[Any]] = []

        def step(chunk: npt.NDArray[Any]) -> None:
            y = fn(_as_float(chunk))
            out.append(np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16))

        def finish() -> npt.NDArray[np.float64]:
            return np.concatenate(out) / 32768.0

        return step, finish

    return make


def _methods(in_rate: int, out_rate: int) -> dict[str, Callable[[int, int, int], Any]]:
    methods: dict[str, Callable[[int, int, int], Any]] = {
        "AudioConverter (soxr stream, HQ)": _converter
    }
    g = math.gcd(in_rate, out_rate)
    try:
        from scipy.signal import resample_poly

        methods["scipy resample_poly per chunk"] = _per_chunk(
            lambda x: resample_poly(x, out_rate // g, in_rate // g)
        )
    except ImportError:  # pragma: no cover - scipy is in the bench extra
        pass
    methods["soxr.resample one-shot per chunk"] = _per_chunk(
        lambda x: soxr.resample(x, in_rate, out_rate, quality="HQ")
    )
    return methods


def _measure(
    make: Callable[[int, int, int], Any],
    x: npt.NDArray[Any],
    in_rate: int,
    out_rate: int,
    channels: int,
    repeats: int,
) -> dict[str, float]:
    n = in_rate * CHUNK_MS // 1000
    chunks = [x[i : i + n] for i in range(0, len(x), n)]
    seconds = len(x) / in_rate
    walls, cpus = [], []
    y: npt.NDArray[np.float64] = np.zeros(0)
    for _ in range(repeats):
        step, finish = make(in_rate, out_rate, channels)
        c0, w0 = time.thread_time(), time.perf_counter()
        for c in chunks:
            step(c)
        y = finish()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    wall = statistics.median(walls)
    return {
        "x_realtime": seconds / wall,
        "cpu_us_per_chunk": statistics.median(cpus) / len(chunks) * 1e6,
        "snr_db": _snr_db(y, out_rate),
        "output_samples": float(len(y)),
    }


CASES = [
    ("48 kHz stereo float32 -> 16 kHz mono", 48000, 16000, 2, "float32"),
    ("48 kHz mono int16 -> 16 kHz", 48000, 16000, 1, "int16"),
    ("44.1 kHz stereo int16 -> 16 kHz mono", 44100, 16000, 2, "int16"),
    ("16 kHz mono int16 -> 16 kHz (framing only)", 16000, 16000, 1, "int16"),
]


def run_resampler_bench(seconds: float = 10.0, repeats: int = 5) -> dict[str, Any]:
    """Run every case and method; return a JSON-ready dict (also used by an aggregate runner)."""
    cases = []
    for label, in_rate, out_rate, channels, dtype in CASES:
        x = _sine(in_rate, seconds, channels, dtype)
        methods = (
            _methods(in_rate, out_rate)
            if in_rate != out_rate
            else {"AudioConverter (passthrough)": _converter}
        )
        results = {
            name: _measure(make, x, in_rate, out_rate, channels, repeats)
            for name, make in methods.items()
        }
        cases.append(
            {
                "case": label,
                "input_rate": in_rate,
                "output_rate": out_rate,
                "channels": channels,
                "dtype": dtype,
                "results": results,
            }
        )
    return {
        "bench": "resampler",
        "chunk_ms": CHUNK_MS,
        "signal_seconds": seconds,
        "repeats": repeats,
        "tone_hz": TONE_HZ,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "soxr": getattr(soxr, "__version__", "?"),
        "numpy": np.__version__,
        "cases": cases,
    }


def _print(report: dict[str, Any]) -> None:
    print(
        f"chunks of {report['chunk_ms']} ms, {report['signal_seconds']} s of a 1 kHz sine, "
        f"median of {report['repeats']} runs"
    )
    header = f"{'method':34} {'x real time':>12} {'CPU us/chunk':>13} {'SNR dB':>8}"
    for case in report["cases"]:
        print(f"\n{case['case']}")
        print(header)
        for name, r in case["results"].items():
            print(
                f"{name:34} {r['x_realtime']:12.0f} {r['cpu_us_per_chunk']:13.1f} "
                f"{r['snr_db']:8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run_resampler_bench(args.seconds, args.repeats)
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
