"""Resampler speed and quality, streaming against streaming: AudioConverter and its peers.

Feeds a 1 kHz sine in 100 ms chunks, as a microphone would, to one resampler per run that keeps
its state from chunk to chunk (so chunk borders are seamless in every method), and reports CPU
time per 100 ms chunk (``time.thread_time``), speed as a multiple of real time (audio seconds
per CPU second) and the SNR of the result against an ideal sine at the target rate. Medians and
IQR over the repeats, each repeat running every method once. Methods:

* ``AudioConverter (soxr HQ)``: ours, the whole path (any input layout to exact 100 ms chunks of
  mono PCM16);
* ``soxr.ResampleStream HQ, plain``: the same library called plainly (downmix, resample, int16);
* ``samplerate Resampler sinc_medium``: libsamplerate's streaming resampler (python-samplerate);
* ``scipy lfilter + decimate``: scipy's streaming route for an integer ratio: the FIR that
  ``resample_poly`` designs, run by ``lfilter`` with its state carried (48 kHz -> 16 kHz only).

Run: ``python bench/bench_resampler.py [--seconds 10] [--repeats 5]``.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import bench_main, fmt_stat, ratio_stats, stat

from dashscope_rt.audio import AudioConverter

__all__ = ["run_resampler_bench"]

CHUNK_MS = 100
TONE_HZ = 1000.0
AMPLITUDE = 0.5

# make(in_rate, out_rate, channels) -> (step(chunk), finish() -> float64 output in [-1, 1])
Maker = Callable[[int, int, int], tuple[Callable[[Any], None], Callable[[], Any]]]


def _sine(rate: int, seconds: float, channels: int, dtype: str) -> npt.NDArray[Any]:
    t = np.arange(int(rate * seconds)) / rate
    x = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    x = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    if dtype == "int16":
        return np.round(x * 32767).astype(np.int16)
    return x.astype(dtype)


def _snr_db(y: npt.NDArray[np.float64], rate: int, delay: int) -> float:
    """SNR against the ideal sine, the method's group delay (in output samples) removed."""
    y = y[delay:]
    ref = AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(len(y)) / rate)
    edge = rate // 50
    err = y[edge:-edge] - ref[edge:-edge]
    return 10 * math.log10(float(np.sum(ref[edge:-edge] ** 2)) / max(float(np.sum(err**2)), 1e-30))


def _mono_f32(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    f = x.astype(np.float32)
    if x.dtype == np.int16:
        f *= np.float32(1 / 32768)
    if f.ndim == 2:
        m: npt.NDArray[np.float32] = f[:, 0].copy()
        for c in range(1, f.shape[1]):
            m += f[:, c]
        m *= np.float32(1 / f.shape[1])
        return m
    return f


def _to_int16(y: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    out: npt.NDArray[np.int16] = np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)
    return out


def _converter(in_rate: int, out_rate: int, channels: int) -> Any:
    conv = AudioConverter(out_rate, input_rate=in_rate, channels=channels, chunk_ms=CHUNK_MS)
    out: list[bytes] = []

    def step(chunk: npt.NDArray[Any]) -> None:
        out.extend(conv.convert(chunk))

    def finish() -> npt.NDArray[np.float64]:
        out.extend(conv.flush())
        return np.frombuffer(b"".join(out), "<i2") / 32768.0

    return step, finish


def _streaming(resample: Callable[[npt.NDArray[np.float32], bool], Any]) -> Any:
    """step/finish around a stateful ``resample(mono_f32, last)``, int16 out like ours."""
    out: list[npt.NDArray[np.int16]] = []

    def step(chunk: npt.NDArray[Any]) -> None:
        out.append(_to_int16(resample(_mono_f32(chunk), False)))

    def finish() -> npt.NDArray[np.float64]:
        out.append(_to_int16(resample(np.zeros(0, np.float32), True)))
        return np.concatenate(out) / 32768.0

    return step, finish


def _soxr_plain(in_rate: int, out_rate: int, channels: int) -> Any:
    rs = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
    return _streaming(lambda x, last: rs.resample_chunk(x, last=last))


def _samplerate(in_rate: int, out_rate: int, channels: int) -> Any:
    import samplerate

    rs = samplerate.Resampler("sinc_medium", channels=1)
    ratio = out_rate / in_rate
    return _streaming(lambda x, last: rs.process(x, ratio, end_of_input=last))


def _scipy_lfilter(in_rate: int, out_rate: int, channels: int) -> Any:
    from scipy.signal import firwin, lfilter

    down = in_rate // out_rate
    taps = firwin(2 * 10 * down + 1, 1.0 / down, window=("kaiser", 5.0))  # resample_poly's
    zi = np.zeros(len(taps) - 1)
    phase = [0]

    def resample(x: npt.NDArray[np.float32], last: bool) -> Any:
        nonlocal zi
        if not x.size:
            return np.zeros(0)
        y, zi = lfilter(taps, 1.0, x.astype(np.float64), zi=zi)
        out = y[phase[0] :: down]
        phase[0] = (phase[0] - len(x)) % down
        return out

    return _streaming(resample)


def _methods(in_rate: int, out_rate: int) -> dict[str, Maker]:
    methods: dict[str, Maker] = {
        "AudioConverter (soxr HQ)": _converter,
        "soxr.ResampleStream HQ, plain": _soxr_plain,
    }
    try:
        import samplerate  # noqa: F401
    except ImportError:
        pass
    else:
        methods["samplerate Resampler sinc_medium"] = _samplerate
    if in_rate % out_rate == 0:
        methods["scipy lfilter + decimate"] = _scipy_lfilter
    return methods


def _snr_best(y: npt.NDArray[np.float64], rate: int) -> float:
    """SNR at the best alignment: a causal filter delays its output (scipy's by ~10 samples)."""
    return max(_snr_db(y, rate, d) for d in range(48))


CASES = [
    ("48 kHz stereo float32 -> 16 kHz mono", 48000, 16000, 2, "float32"),
    ("48 kHz mono int16 -> 16 kHz", 48000, 16000, 1, "int16"),
    ("44.1 kHz stereo int16 -> 16 kHz mono", 44100, 16000, 2, "int16"),
]


def _case(
    in_rate: int, out_rate: int, channels: int, dtype: str, seconds: float, repeats: int
) -> dict[str, Any]:
    x = _sine(in_rate, seconds, channels, dtype)
    n = in_rate * CHUNK_MS // 1000
    chunks = [x[i : i + n] for i in range(0, len(x), n)]
    methods = _methods(in_rate, out_rate)
    names = list(methods)
    cpus: dict[str, list[float]] = {k: [] for k in names}
    outputs: dict[str, npt.NDArray[np.float64]] = {}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step, finish = methods[name](in_rate, out_rate, channels)
            t0 = time.thread_time()
            for c in chunks:
                step(c)
            outputs[name] = finish()
            cpus[name].append(time.thread_time() - t0)
    ours = "AudioConverter (soxr HQ)"
    return {
        "cpu_us_per_chunk": {k: stat([c / len(chunks) * 1e6 for c in v]) for k, v in cpus.items()},
        "x_realtime": {k: stat([seconds / c for c in v], 0) for k, v in cpus.items()},
        "snr_db": {k: round(_snr_best(y, out_rate), 1) for k, y in outputs.items()},
        "ratios": {f"{ours} / {k}": ratio_stats(cpus[ours], cpus[k]) for k in names if k != ours},
    }


def run_resampler_bench(seconds: float = 10.0, repeats: int = 5) -> dict[str, Any]:
    """Every case and method; a JSON-ready dict."""
    cases = {
        label: _case(in_rate, out_rate, channels, dtype, seconds, repeats)
        for label, in_rate, out_rate, channels, dtype in CASES
    }
    return {
        "bench": "resampler",
        "chunk_ms": CHUNK_MS,
        "signal_seconds": seconds,
        "repeats": repeats,
        "tone_hz": TONE_HZ,
        "python": platform.python_version(),
        "soxr": getattr(soxr, "__version__", "?"),
        "numpy": np.__version__,
        "cases": cases,
    }


def _show(report: dict[str, Any]) -> None:
    print(f"{report['signal_seconds']} s of a 1 kHz sine in {report['chunk_ms']} ms chunks")
    for label, case in report["cases"].items():
        print(f"\n{label}")
        for name, s in case["cpu_us_per_chunk"].items():
            print(
                f"  {name:36s} {fmt_stat(s, '.1f')} us CPU/chunk, "
                f"{case['x_realtime'][name]['median']:.0f}x real time, "
                f"SNR {case['snr_db'][name]:.1f} dB"
            )
        for name, s in case["ratios"].items():
            print(f"  {name:70s} {fmt_stat(s, unit='x')}")


def main() -> None:
    bench_main(__doc__, run_resampler_bench, _show, seconds=10.0, repeats=5)


if __name__ == "__main__":
    main()
