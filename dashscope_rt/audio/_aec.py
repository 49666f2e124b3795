"""Acoustic echo cancellation: remove what the speaker played from what the microphone heard.

The engine is WebRTC's audio processing module (AEC3, with optional noise suppression and gain
control) from ``pywebrtc-audio`` (``pip install 'dashscope-rt[aec]'``), imported when an
:class:`EchoCanceller` is made.

Alignment. AEC3 finds the echo's delay itself, but only if the reference keeps one position
against the microphone: every move costs a re-convergence during which echo leaks. Both streams
are therefore put on one sample timeline at the microphone's rate, and a reference sample keeps
the place it got when it was fed:

* the reference is resampled by :class:`~dashscope_rt.audio._sinc.SincResampler`, whose output
  timing depends only on how many samples went in, never on chunk sizes, and which is never
  flushed or restarted between replies (soxr's stream holds back a variable amount, which would
  shift the reference at the start of every reply);
* a microphone frame waits (at most twice ``jitter_ms``) for the reference that covers it, so a
  speaker callback that runs a little after the microphone's loses nothing;
* feed what the speaker plays, silence included (:class:`Player` does): then the reference is
  placed once and never moves. Audio fed after a pause in feeding longer than ``jitter_ms`` is
  placed at the microphone's position at the time it was fed (a new placement, counted in
  :attr:`EchoCanceller.placements`); if the speaker ran before the microphone started, the latest
  reference is lined up with the first microphone block.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput
from ._device import import_webrtc_audio
from ._pcm import _as_bytes, to_float32, to_int16
from ._sinc import SincResampler

__all__ = ["EchoCanceller"]

_log = logging.getLogger("dashscope_rt.audio")

_MAX_LEAD_S = 5.0


def _check_rate(name: str, rate: Any) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 384000:
        raise InvalidInput(f"{name}: expected an int from 8000 to 384000 Hz, got {rate!r}")
    return rate


class _Mono:
    """PCM16LE bytes or int16/float arrays (1-D or (frames, channels)) to mono float32."""

    def __init__(self) -> None:
        self._odd = b""

    def __call__(self, data: Any) -> npt.NDArray[np.float32]:
        if isinstance(data, np.ndarray):
            x = to_float32(data)
            if x.ndim == 2:
                x = x.mean(axis=1, dtype=np.float32)
            elif x.ndim != 1:
                raise InvalidInput(
                    f"audio arrays must be 1-D or (frames, channels), not {x.ndim}-D"
                )
            return np.array(x, dtype=np.float32)  # a copy: callers reuse their buffers
        raw = _as_bytes(data)
        if self._odd:
            raw = memoryview(self._odd + raw.tobytes())
        usable = len(raw) - len(raw) % 2
        self._odd = raw[usable:].tobytes()
        return to_float32(np.frombuffer(raw[:usable], dtype="<i2"))


class EchoCanceller:
    """Removes the speaker's echo from microphone audio (WebRTC AEC3).

    ::

        aec = EchoCanceller(sample_rate=16000)           # the rate of the audio you send
        aec.feed_playback(pcm, sample_rate=24000)        # what the speaker plays, as it plays
        clean = aec.process(mic_pcm, sample_rate=16000)  # -> PCM16LE at sample_rate, echo removed

    Both take PCM16LE bytes or int16/float32 numpy arrays (mono, or ``(frames, channels)`` which
    is averaged) of any length, at any rate (resampled to ``sample_rate``). :meth:`process`
    returns whole 10 ms frames and keeps the rest (and any frame still waiting for its
    reference) for the next call. :meth:`feed_playback` is cheap and may be called from an audio
    callback on another thread; call :meth:`process` from one thread at a time.

    Parameters
    ----------
    sample_rate:
        Rate of the cleaned audio, and of the engine (a multiple of 100 Hz; 16000 for the model).
    noise_suppression:
        False, True (level 1), or a level from 0 (6 dB) to 3 (21 dB).
    gain_control:
        Automatic gain control (WebRTC AGC2) after the echo canceller.
    stream_delay_ms:
        Hint for the delay from handing audio to the speaker to hearing it in the microphone;
        0 lets AEC3 estimate it (it does within a second or so).
    jitter_ms:
        How far apart the speaker's and the microphone's callbacks may run. A microphone frame
        waits up to twice this for its reference; audio fed after a longer pause in feeding is
        placed at the microphone's current position instead of right after the previous audio.

    Raises :class:`~dashscope_rt.errors.MissingExtra` (an ImportError) with the pip command when
    the ``aec`` extra is not installed.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        noise_suppression: bool | int = False,
        gain_control: bool = False,
        stream_delay_ms: int = 0,
        jitter_ms: int = 50,
    ) -> None:
        rate = _check_rate("sample_rate", sample_rate)
        if rate % 100:
            raise InvalidInput(f"sample_rate: {rate} Hz has no whole number of samples in 10 ms")
        if noise_suppression is True:
            ns_level = 1
        elif noise_suppression is False:
            ns_level = -1
        elif isinstance(noise_suppression, int) and 0 <= noise_suppression <= 3:
            ns_level = noise_suppression
        else:
            raise InvalidInput(
                f"noise_suppression: expected True, False or a level 0-3, got {noise_suppression!r}"
            )
        for name, value in (("stream_delay_ms", stream_delay_ms), ("jitter_ms", jitter_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2000:
                raise InvalidInput(f"{name}: expected an int from 0 to 2000, got {value!r}")
        webrtc = import_webrtc_audio()
        self._engine = webrtc.AudioProcessor(
            sample_rate=rate,
            echo_cancellation=True,
            noise_suppression=ns_level >= 0,
            ns_level=max(ns_level, 0),
            auto_gain_control=bool(gain_control),
            stream_delay_ms=stream_delay_ms,
        )
        self._rate = rate
        self._frame = rate // 100
        self._jitter = rate * jitter_ms // 1000
        self._max_wait = 2 * self._jitter
        self._feed_lock = threading.Lock()
        self._process_lock = threading.Lock()
        self._fed: list[tuple[npt.NDArray[np.float32], int, int]] = []
        self._ref_mono = _Mono()
        self._mic_mono = _Mono()
        self._reset_timeline()

    def _reset_timeline(self) -> None:
        # The reference: samples from absolute index ``_ref_start``, from resampler ``_ref_rs``.
        self._ref = np.zeros(0, dtype=np.float32)
        self._ref_start = 0
        self._ref_rs: SincResampler | None = None
        self._ref_live = False
        # The microphone: samples waiting from absolute index ``_mic_start`` (= processed count).
        self._mic = np.zeros(0, dtype=np.float32)
        self._mic_start = 0
        self._mic_rs: SincResampler | None = None
        self._mic_now = 0  # timeline position of the latest microphone sample received
        self._started = False
        self.placements = 0
        """How many times the reference was (re)placed on the timeline (1 while feeding never
        paused for longer than ``jitter_ms``)."""
        self.frames = 0
        """10 ms frames processed so far."""

    # -- properties ---------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def pending_ms(self) -> float:
        """Microphone audio received but not returned yet (partial frame or waiting)."""
        return len(self._mic) * 1000.0 / self._rate

    @property
    def speech_probability(self) -> float:
        """The engine's speech probability for the latest processed audio (0-1)."""
        return float(self._engine.speech_probability)

    # -- input --------------------------------------------------------------------------------

    def feed_playback(self, pcm: Any, sample_rate: int = 24000) -> None:
        """Tell the canceller what the speaker is playing now (silence included, ideally)."""
        rate = _check_rate("sample_rate", sample_rate)
        x = self._ref_mono(pcm)
        if x.size:
            with self._feed_lock:
                self._fed.append((x, rate, self._mic_now))

    def process(self, pcm: Any, sample_rate: int | None = None) -> bytes:
        """Cancel the echo in microphone audio; return PCM16LE mono at :attr:`sample_rate`."""
        rate = self._rate if sample_rate is None else _check_rate("sample_rate", sample_rate)
        x = self._mic_mono(pcm)
        with self._process_lock:
            if rate != self._rate:
                if self._mic_rs is None or self._mic_rs.in_rate != rate:
                    self._mic_rs = SincResampler(rate, self._rate)
                x = self._mic_rs.push(x)
            elif self._mic_rs is not None:
                self._mic_rs = None
            self._mic = np.concatenate((self._mic, x))
            lookahead = self._mic_rs.lookahead if self._mic_rs is not None else 0
            with self._feed_lock:
                self._mic_now = self._mic_start + len(self._mic) + lookahead
                fed, self._fed = self._fed, []
            for chunk, ref_rate, placed_at in fed:
                self._add_reference(chunk, ref_rate, placed_at)
            if not self._started:
                self._started = True
                self._line_up()
            return self._run_frames()

    def reset(self) -> None:
        """Forget the engine's state and both streams (e.g. before a new capture)."""
        with self._process_lock, self._feed_lock:
            self._engine.reset()
            self._fed.clear()
            self._reset_timeline()

    # -- the timeline -------------------------------------------------------------------------

    @property
    def _ref_end(self) -> int:
        return self._ref_start + len(self._ref)

    def _add_reference(self, x: npt.NDArray[np.float32], rate: int, placed_at: int) -> None:
        rs = self._ref_rs
        paused = placed_at - self._ref_end > self._jitter
        if rs is None or not self._ref_live or paused or rs.in_rate != rate:
            # (Re)start the reference where the microphone was when this audio was fed.
            start = placed_at if paused or not self._ref_live else self._ref_end
            self._ref_rs = rs = SincResampler(rate, self._rate)
            self._ref = np.zeros(0, dtype=np.float32)
            self._ref_start = start
            self._ref_live = True
            self.placements += 1
        self._ref = np.concatenate((self._ref, rs.push(x)))
        lead = self._ref_end - self._mic_start - int(_MAX_LEAD_S * self._rate)
        if lead > 0:
            _log.warning(
                "echo canceller: the reference is %.1f s ahead of the microphone; is the "
                "microphone still being processed?",
                _MAX_LEAD_S,
            )
            self._ref = self._ref[lead:]
            self._ref_start += lead

    def _line_up(self) -> None:
        """At the first microphone block, put the newest reference sample beside the newest
        microphone sample if the speaker started earlier."""
        shift = self._ref_end - self._mic_now
        if self._ref_live and shift > 0:
            self._ref_start -= shift

    def _run_frames(self) -> bytes:
        n = self._frame
        count = len(self._mic) // n
        if self._ref_live:
            if self._mic_now - self._ref_end > self._max_wait:
                self._ref_live = False  # the speaker stopped being fed: do not wait for it
            else:
                # Frames whose reference has not arrived yet wait for it.
                covered = (self._ref_end - self._mic_start) // n
                waited = (self._mic_now - self._max_wait - self._mic_start) // n
                count = min(count, max(covered, waited, 0))
        if count <= 0:
            return b""
        total = count * n
        near = self._mic[:total]
        far = self._reference(self._mic_start, total)
        out = self._engine.process(near, far)
        self._mic = self._mic[total:]
        self._mic_start += total
        self.frames += count
        drop = self._mic_start - self._ref_start
        if drop > 0:
            self._ref = self._ref[drop:]
            self._ref_start += drop
        return to_int16(np.asarray(out, dtype=np.float32)).astype("<i2", copy=False).tobytes()

    def _reference(self, start: int, length: int) -> npt.NDArray[np.float32]:
        """Reference samples [start, start + length), zero where there is none."""
        far = np.zeros(length, dtype=np.float32)
        lo = max(start, self._ref_start)
        hi = min(start + length, self._ref_end)
        if hi > lo:
            far[lo - start : hi - start] = self._ref[lo - self._ref_start : hi - self._ref_start]
        return far
