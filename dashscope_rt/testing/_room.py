"""A synthetic room for echo cancellation: the speaker's sound comes back into the microphone.

What the speaker plays (the model's reply, 24 kHz) reaches a 16 kHz microphone delayed, scaled,
followed by an exponentially decaying reverberant tail, over a noise floor; near-end speech (the
user) can be mixed in. Everything is deterministic for a given ``seed``. The conversion from the
speaker's rate to the microphone's is done in one piece with soxr at its best quality (the air
has no chunk boundaries), independently of whatever the canceller does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import soxr

from ._speech import silence, synthesize

__all__ = [
    "EchoRoom",
    "RoomRecording",
    "erle_db",
    "power_db",
    "replies_with_pauses",
    "run_lockstep",
]

F32 = npt.NDArray[np.float32]


def to_float32(pcm: Any) -> F32:
    """PCM16LE bytes or an int16/float array as float32 in [-1, 1)."""
    a = pcm if isinstance(pcm, np.ndarray) else np.frombuffer(bytes(pcm), dtype="<i2")
    out: F32 = a.astype(np.float32)
    if a.dtype.kind == "i":
        out /= np.float32(32768.0)
    return out


def power_db(x: npt.NDArray[Any]) -> float:
    """Mean power of float audio in dB relative to full scale (-200 for silence)."""
    p = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(p) if p > 1e-20 else -200.0


def erle_db(echo: npt.NDArray[Any], residual: npt.NDArray[Any]) -> float:
    """Echo return loss enhancement: echo power over the power left after cancellation, in dB."""
    return power_db(echo) - power_db(residual)


@attrs.frozen(kw_only=True)
class RoomRecording:
    """What the microphone captured (``mic``) and its parts, float32 at the microphone's rate."""

    mic: F32
    echo: F32
    near: F32
    noise: F32
    rate: int

    def mic_pcm16(self) -> bytes:
        return (np.clip(self.mic, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@attrs.frozen(kw_only=True)
class EchoRoom:
    """A loudspeaker and a microphone in a small room.

    ``delay_ms``: speaker to microphone (output and input latency plus the air); ``echo_gain_db``:
    level of the direct echo against what is played; ``rt60_ms``: time for the reverberant tail to
    fall by 60 dB; ``reverb_db``: energy of the tail against the direct sound; ``noise_dbfs``: the
    microphone's noise floor.
    """

    mic_rate: int = 16000
    delay_ms: float = 60.0
    echo_gain_db: float = -6.0
    rt60_ms: float = 250.0
    reverb_db: float = -6.0
    noise_dbfs: float = -60.0
    seed: int = 0

    def impulse_response(self) -> F32:
        """The speaker-to-microphone response at the microphone's rate."""
        rate = self.mic_rate
        rng = np.random.default_rng(self.seed)
        delay = round(self.delay_ms * rate / 1000.0)
        n_tail = max(1, int(self.rt60_ms * rate / 1000.0))
        t = np.arange(n_tail) / rate
        tail = rng.standard_normal(n_tail) * np.exp(-math.log(1000.0) * t / (self.rt60_ms / 1e3))
        tail[: int(0.002 * rate)] = 0.0  # the first reflection comes a little after the direct path
        tail *= math.sqrt(10 ** (self.reverb_db / 10) / float(np.sum(tail**2)))
        h = np.zeros(delay + n_tail, dtype=np.float64)
        h[delay] = 1.0
        h[delay:] += tail
        out: F32 = (h * 10 ** (self.echo_gain_db / 20)).astype(np.float32)
        return out

    def echo(self, playback: Any, playback_rate: int = 24000) -> F32:
        """The echo of ``playback`` (PCM16LE bytes or an array) as the microphone hears it."""
        x = to_float32(playback)
        if playback_rate != self.mic_rate:
            x = soxr.resample(x, playback_rate, self.mic_rate, quality="VHQ")
        h = self.impulse_response()
        n = len(x)
        size = 1 << math.ceil(math.log2(max(2, n + len(h))))
        y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:n]
        out: F32 = y.astype(np.float32)
        return out

    def record(
        self, playback: Any, playback_rate: int = 24000, *, near: Any = None, near_rate: int = 0
    ) -> RoomRecording:
        """The microphone signal while ``playback`` plays, with optional near-end speech.

        ``near`` (PCM16LE bytes or an array, at ``near_rate`` or the microphone's rate) starts
        with the playback; the recording is as long as the longer of the two.
        """
        echo = self.echo(playback, playback_rate)
        near_f = np.zeros(0, dtype=np.float32)
        if near is not None:
            near_f = to_float32(near)
            if near_rate and near_rate != self.mic_rate:
                near_f = soxr.resample(near_f, near_rate, self.mic_rate, quality="VHQ")
        n = max(len(echo), len(near_f))
        echo = np.pad(echo, (0, n - len(echo)))
        near_f = np.pad(near_f, (0, n - len(near_f))).astype(np.float32)
        rng = np.random.default_rng(self.seed + 1)
        noise = (rng.standard_normal(n) * 10 ** (self.noise_dbfs / 20)).astype(np.float32)
        mic = (echo + near_f + noise).astype(np.float32)
        return RoomRecording(mic=mic, echo=echo, near=near_f, noise=noise, rate=self.mic_rate)


def replies_with_pauses(
    texts: Sequence[str], *, pause_ms: float = 1500.0, rate: int = 24000
) -> tuple[bytes, list[tuple[float, float]]]:
    """Speaker output for several replies (synthesized speech), each after ``pause_ms`` of
    silence, plus a final pause: PCM16LE, and each reply's (start, end) in seconds."""
    pause = silence(pause_ms, rate)
    parts: list[bytes] = []
    spans: list[tuple[float, float]] = []
    t = 0.0
    for text in texts:
        audio = synthesize(text, rate)
        t += len(pause) / 2 / rate
        spans.append((t, t + len(audio) / 2 / rate))
        t = spans[-1][1]
        parts += [pause, audio]
    parts.append(pause)
    return b"".join(parts), spans


def run_lockstep(
    canceller: Any,
    playback: bytes,
    recording: RoomRecording,
    *,
    playback_rate: int = 24000,
    mic: npt.NDArray[Any] | None = None,
    mic_rate: int = 0,
    chunk_ms: float | Iterable[float] = 20.0,
    feed: Callable[[float, float], bool] | None = None,
) -> F32:
    """Drive an echo canceller as two audio callbacks would, in step: for each chunk of time,
    ``feed_playback`` what the speaker played, then ``process`` what the microphone heard.

    ``mic`` replaces ``recording.mic`` (e.g. the same signal at another rate or dtype, at
    ``mic_rate``); ``chunk_ms`` is one duration or a sequence of them (cycled); ``feed(t0, t1)``
    says whether playback of that span is fed (default: all of it, silence included). Returns
    the cleaned audio, float32 at the canceller's rate.
    """
    mic_arr = recording.mic if mic is None else mic
    rate = mic_rate or recording.rate
    pb = np.frombuffer(playback, dtype="<i2")
    durations = itertools.cycle([chunk_ms] if isinstance(chunk_ms, (int, float)) else chunk_ms)
    out: list[bytes] = []
    t = 0.0
    i_pb = i_mic = 0
    while i_mic < len(mic_arr):
        t1 = t + next(durations) / 1000.0
        j_pb, j_mic = round(t1 * playback_rate), round(t1 * rate)
        if i_pb < len(pb) and (feed is None or feed(t, t1)):
            canceller.feed_playback(pb[i_pb:j_pb].tobytes(), sample_rate=playback_rate)
        out.append(canceller.process(mic_arr[i_mic:j_mic], sample_rate=rate))
        t, i_pb, i_mic = t1, j_pb, j_mic
    return to_float32(b"".join(out))
