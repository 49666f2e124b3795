"""Echo cancellation in a synthetic room: ERLE, false barge-ins, double talk, formats, CPU.

Three replies of synthesized speech (24 kHz) separated by 1.5 s pauses play in a room
(:class:`dashscope_rt.testing.EchoRoom`: delay 30-120 ms, a decaying reverberant tail, a -60 dBFS
noise floor) and come back into a 16 kHz microphone. The canceller is driven as two audio
callbacks would drive it, in step, 20 ms at a time. Side by side, on the same signals:

* ``dashscope_rt``: :class:`~dashscope_rt.audio.EchoCanceller` (WebRTC AEC3 via pywebrtc-audio);
* ``FIFO + soxr stream``: the same engine with the reference resampled by a streaming soxr
  resampler and paired with the microphone first in, first out (what a first prototype does);
* ``livekit APM``: LiveKit's ``AudioProcessingModule`` (also WebRTC AEC3), fed the reference
  and the microphone in 10 ms frames as it expects, when ``livekit`` is installed.

Each is fed the speaker's whole output (silence included, as ``Player`` does) and, separately,
the replies only (an app that feeds what it plays). ERLE "after convergence" leaves out the first
second of the first reply; "at reply start" is the first 0.5 s of the later replies. False
barge-ins are ``speech_started`` events of the simulator's VAD, offline on every room and over a
real socket on one. CPU is process time per 10 ms frame, median of the repeats with min-max.

Run: ``python bench/bench_aec.py [--quick]``; writes ``bench/results/aec.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from dashscope_rt import Session
from dashscope_rt.audio import EchoCanceller, float32_to_pcm16, to_float32
from dashscope_rt.testing import (
    EchoRoom,
    EnergyVAD,
    RoomRecording,
    Simulator,
    erle_db,
    power_db,
    replies_with_pauses,
    run_lockstep,
    synthesize,
)

__all__ = ["run_aec_bench"]

RESULTS = Path(__file__).resolve().parent / "results" / "aec.json"
RATE = 16000
FLASH = "qwen3-omni-flash-realtime"
DELAYS_MS = (30, 60, 90, 120)
REPLIES = (
    "Hello there, this is the first reply of the assistant, it talks for a while.",
    "Here is a second answer after a pause, it is a bit shorter.",
    "And a third one, to check that nothing moves after each silence between replies.",
)
F32 = npt.NDArray[np.float32]
Spans = list[tuple[float, float]]


class FifoSoxrCanceller:
    """The prototype: reference through a soxr stream, paired with the microphone in order."""

    def __init__(self, rate: int = RATE) -> None:
        self._ap = importlib.import_module("pywebrtc_audio").AudioProcessor(
            sample_rate=rate, echo_cancellation=True
        )
        self._rate = rate
        self._rs: Any = None
        self._ref = np.zeros(0, dtype=np.float32)
        self._mic = np.zeros(0, dtype=np.float32)

    def feed_playback(self, pcm: Any, sample_rate: int = 24000) -> None:
        if self._rs is None:
            self._rs = soxr.ResampleStream(sample_rate, self._rate, 1, dtype="float32")
        self._ref = np.concatenate((self._ref, self._rs.resample_chunk(to_float32(pcm))))

    def process(self, pcm: Any, sample_rate: int = RATE) -> bytes:
        self._mic = np.concatenate((self._mic, to_float32(pcm)))
        n = len(self._mic) // 160 * 160
        far = np.zeros(n, dtype=np.float32)
        k = min(n, len(self._ref))
        far[:k], self._ref = self._ref[:k], self._ref[k:]
        out = self._ap.process(self._mic[:n], far) if n else np.zeros(0, np.float32)
        self._mic = self._mic[n:]
        return float32_to_pcm16(out)


class LiveKitCanceller:
    """livekit.rtc.AudioProcessingModule behind the same two calls (10 ms frames inside)."""

    def __init__(self, rate: int = RATE) -> None:
        self._rtc = importlib.import_module("livekit.rtc")
        self._apm = self._rtc.AudioProcessingModule(echo_cancellation=True)
        self._rate = rate
        self._ref = np.zeros(0, dtype=np.int16)
        self._mic = np.zeros(0, dtype=np.int16)

    def feed_playback(self, pcm: Any, sample_rate: int = 24000) -> None:
        self._ref = np.concatenate((self._ref, np.frombuffer(pcm, dtype="<i2")))
        n = sample_rate // 100
        while len(self._ref) >= n:
            frame = self._rtc.AudioFrame(self._ref[:n].tobytes(), sample_rate, 1, n)
            self._apm.process_reverse_stream(frame)
            self._ref = self._ref[n:]

    def process(self, pcm: Any, sample_rate: int = RATE) -> bytes:
        mic = np.asarray(pcm)
        mic16 = mic if mic.dtype == np.int16 else (np.clip(mic, -1, 1) * 32767).astype(np.int16)
        self._mic = np.concatenate((self._mic, mic16))
        n, out = self._rate // 100, []
        while len(self._mic) >= n:
            frame = self._rtc.AudioFrame(self._mic[:n].tobytes(), self._rate, 1, n)
            self._apm.process_stream(frame)
            out.append(bytes(frame.data))
            self._mic = self._mic[n:]
        return b"".join(out)


def _livekit_available() -> bool:
    try:
        importlib.import_module("livekit.rtc")
    except Exception:
        return False
    return True


def _cancellers() -> dict[str, Callable[[], Any]]:
    found: dict[str, Callable[[], Any]] = {
        "dashscope_rt": lambda: EchoCanceller(RATE),
        "FIFO + soxr stream": FifoSoxrCanceller,
    }
    if _livekit_available():
        found["livekit APM"] = LiveKitCanceller
    return found


def _slice(t0: float, t1: float, n: int) -> slice:
    return slice(int(t0 * RATE), min(int(t1 * RATE), n))


def _erle(rec: RoomRecording, y: F32, spans: Spans) -> tuple[float, float]:
    """(ERLE after convergence, worst ERLE at a later reply's start)."""
    n = min(len(y), len(rec.mic))
    parts = [_slice(spans[0][0] + 1.0, spans[0][1], n)] + [_slice(a, b, n) for a, b in spans[1:]]
    mic = np.concatenate([rec.mic[s] for s in parts])
    out = np.concatenate([y[s] for s in parts])
    starts = [erle_db(rec.mic[s], y[s]) for s in (_slice(a, a + 0.5, n) for a, _ in spans[1:])]
    return erle_db(mic, out), min(starts)


def _vad_starts(x: F32) -> int:
    vad = EnergyVAD(rate=RATE)
    return sum(e.kind == "start" for e in vad.feed(float32_to_pcm16(x)))


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def erle_section(playback: bytes, spans: Spans) -> dict[str, Any]:
    """ERLE and offline false barge-ins for every canceller, feeding mode and room."""

    def replies_only(t0: float, t1: float) -> bool:
        return any(a < t1 and t0 < b for a, b in spans)

    out: dict[str, Any] = {}
    rooms = [EchoRoom(delay_ms=d, seed=d).record(playback) for d in DELAYS_MS]
    out["raw_vad_starts"] = [_vad_starts(r.mic) for r in rooms]
    for name, make in _cancellers().items():
        for mode, feed in (("speaker output", None), ("replies only", replies_only)):
            conv, start, starts = [], [], []
            for rec in rooms:
                y = run_lockstep(make(), playback, rec, feed=feed)
                c, s = _erle(rec, y, spans)
                conv.append(c)
                start.append(s)
                starts.append(_vad_starts(y))
            out[f"{name} | {mode}"] = {
                "erle_db": _stats(conv),
                "erle_at_reply_start_db": _stats(start),
                "vad_starts": starts,
            }
    return out


def socket_barge_ins(playback: bytes) -> dict[str, int]:
    """``speech_started`` events the simulator sends for the raw and the cleaned microphone."""
    rec = EchoRoom(delay_ms=60).record(playback)
    cleaned = run_lockstep(EchoCanceller(RATE), playback, rec)
    return {
        "without cancellation": _speech_started_over_socket(rec.mic),
        "with dashscope_rt": _speech_started_over_socket(cleaned),
    }


def _speech_started_over_socket(x: F32) -> int:
    pcm = float32_to_pcm16(x)
    pcm += bytes(-len(pcm) % 3200)  # whole 100 ms chunks: nothing held back
    chunks = len(pcm) // 3200
    with (
        Simulator(api_key="sk-bench") as sim,
        Session(FLASH, url=sim.url, api_key="sk-bench", close_timeout=2.0) as s,
    ):
        s.append_audio(pcm, sample_rate=RATE)
        appended = sim.last.received_events
        sim.wait_for(lambda: len(appended("input_audio_buffer.append")) >= chunks or None, 30)
        return len(sim.last.sent_events("input_audio_buffer.speech_started"))


def double_talk_section() -> dict[str, Any]:
    """The user speaks 3.5 s into a long reply: is it heard, and at what level?"""
    playback, _ = replies_with_pauses(
        [
            "This is a long answer from the assistant that goes on and on for quite a few "
            "seconds, so the user may well want to say something."
        ],
        pause_ms=500,
    )
    near = to_float32(synthesize("wait, stop please, I have a question", RATE, pitch_hz=120))
    onset = 4 * RATE  # 0.5 s pause + 3.5 s of reply
    out: dict[str, Any] = {}
    for label, gain in (("near end 4 dB above the echo", 1.0), ("2 dB below", 0.5)):
        track = np.concatenate([np.zeros(onset, dtype=np.float32), near * gain])
        rec = EchoRoom(delay_ms=60).record(playback, near=track)
        talk = slice(onset, onset + len(near))
        speaker_on = np.convolve(np.abs(rec.echo) > 10 ** (-50 / 20), np.ones(RATE // 2))
        gate = np.where(speaker_on[: len(rec.mic)] > 0, 0.0, rec.mic).astype(np.float32)
        signals = {
            "dashscope_rt": run_lockstep(EchoCanceller(RATE), playback, rec),
            "half-duplex gate": gate,
            "no processing": rec.mic,
        }
        rows = {}
        for name, y in signals.items():
            vad = EnergyVAD(rate=RATE)
            starts = [e.ms for e in vad.feed(float32_to_pcm16(y)) if e.kind == "start"]
            heard = [ms - onset * 1000 // RATE for ms in starts if ms >= onset * 1000 // RATE]
            rows[name] = {
                "vad_start_after_ms": heard[0] if heard else None,
                "false_starts_before": sum(ms < onset * 1000 // RATE for ms in starts),
                "near_level_change_db": round(power_db(y[talk]) - power_db(rec.near[talk]), 1),
            }
        out[label] = {
            "echo_vs_near_db": round(power_db(rec.near[talk]) - power_db(rec.echo[talk]), 1),
            **rows,
        }
    return out


def formats_section(playback: bytes, spans: Spans) -> dict[str, Any]:
    """ERLE with microphone blocks as callbacks deliver them: odd sizes, int16/float32, 48 kHz."""
    rec = EchoRoom(delay_ms=80).record(playback)
    cases = {
        "16 kHz int16, odd blocks": (RATE, "int16", [7.3, 13.1, 21.7, 3.9]),
        "16 kHz float32": (RATE, "float32", [10.0]),
        "48 kHz float32, odd blocks": (48000, "float32", [5.0, 20.0, 11.3]),
        "48 kHz int16": (48000, "int16", [2.7, 40.0]),
    }
    out = {}
    for label, (rate, dtype, chunks) in cases.items():
        mic = rec.mic if rate == RATE else soxr.resample(rec.mic, RATE, rate, quality="VHQ")
        mic = (np.clip(mic, -1, 1) * 32767).astype(np.int16) if dtype == "int16" else mic
        y = run_lockstep(
            EchoCanceller(RATE), playback, rec, mic=mic, mic_rate=rate, chunk_ms=chunks
        )
        out[label] = {"erle_db": round(_erle(rec, y, spans)[0], 1), "vad_starts": _vad_starts(y)}
    return out


def cpu_section(playback: bytes, repeats: int) -> dict[str, Any]:
    """Process time per 10 ms microphone frame, feeding included."""
    rec = EchoRoom(delay_ms=60).record(playback)
    frames = len(rec.mic) // (RATE // 100)
    engine = importlib.import_module("pywebrtc_audio")
    ref = soxr.resample(to_float32(playback), 24000, RATE, quality="HQ").astype(np.float32)
    ref = np.pad(ref, (0, max(0, len(rec.mic) - len(ref))))[: len(rec.mic)]

    def engine_alone() -> None:
        ap = engine.AudioProcessor(sample_rate=RATE, echo_cancellation=True)
        for i in range(0, len(rec.mic) - 319, 320):
            ap.process(rec.mic[i : i + 320], ref[i : i + 320])

    def lockstep(make: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: run_lockstep(make(), playback, rec)

    runs = {name: lockstep(make) for name, make in _cancellers().items()}
    runs["pywebrtc-audio engine alone (reference pre-resampled)"] = engine_alone
    out: dict[str, Any] = {"frames": frames, "repeats": repeats}
    for name, fn in runs.items():
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append((time.process_time() - t0) / frames * 1e6)
        out[name] = {
            **_stats(times),
            "share_of_one_core_pct": round(statistics.median(times) / 10000 * 100, 2),
        }
    return out


def run_aec_bench(quick: bool = False) -> dict[str, Any]:
    """Every section; a JSON-ready dict (also used by bench/run.py)."""
    playback, spans = replies_with_pauses(list(REPLIES), pause_ms=1500)
    return {
        "bench": "aec",
        "rooms_delay_ms": list(DELAYS_MS),
        "livekit": _livekit_available(),
        "erle": erle_section(playback, spans),
        "false_barge_ins_over_socket": socket_barge_ins(playback),
        "double_talk": double_talk_section(),
        "formats": formats_section(playback, spans),
        "cpu_us_per_frame": cpu_section(playback, 2 if quick else 5),
    }


def _print(r: dict[str, Any]) -> None:
    print(f"rooms: delay {r['rooms_delay_ms']} ms; raw VAD starts {r['erle']['raw_vad_starts']}")
    print(
        f"{'canceller | fed with':46} {'ERLE dB med (min)':>18} {'at reply start':>15} {'VAD':>9}"
    )
    for key, v in r["erle"].items():
        if key == "raw_vad_starts":
            continue
        e, s = v["erle_db"], v["erle_at_reply_start_db"]
        print(
            f"{key:46} {e['median']:>10} ({e['min']:>5}) {s['median']:>7} ({s['min']:>5}) "
            f"{v['vad_starts']!s:>9}"
        )
    print("false barge-ins over a socket:", r["false_barge_ins_over_socket"])
    for label, rows in r["double_talk"].items():
        print(f"double talk, {label}: {rows}")
    print("formats:", r["formats"])
    for name, v in r["cpu_us_per_frame"].items():
        if isinstance(v, dict):
            print(f"CPU {name}: {v['median']} us/frame ({v['min']}-{v['max']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run_aec_bench(args.quick)
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
