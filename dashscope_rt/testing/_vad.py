"""Energy-based voice activity detection over PCM16LE, the simulator's ``server_vad``.

``threshold`` in [-1.0, 1.0] (lower = more sensitive, as documented) maps linearly to a frame
energy level in dBFS: -1.0 → -60 dBFS, 0.0 → -40 dBFS, 0.5 → -30 dBFS (the default), 1.0 → -20 dBFS.
A frame (20 ms) whose RMS level is at or above that level is "voiced". Speech starts after
``min_speech_ms`` of consecutive voiced frames and stops after ``silence_duration_ms`` of unvoiced
frames. ``prefix_padding_ms`` of audio before the start is included in the committed turn.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

__all__ = ["FRAME_MS", "EnergyVAD", "VadEvent", "threshold_to_dbfs"]

FRAME_MS = 20


def threshold_to_dbfs(threshold: float) -> float:
    """The frame level in dBFS that counts as speech for a documented ``threshold``."""
    return -40.0 + 20.0 * max(-1.0, min(1.0, float(threshold)))


@attrs.frozen
class VadEvent:
    """``kind`` is "start" or "stop"; ``ms`` is on the stream's timeline (ms since first audio)."""

    kind: str
    ms: int


@attrs.define
class EnergyVAD:
    """Streaming detector: feed PCM16LE with :meth:`feed`, get start/stop events back."""

    rate: int = 16000
    threshold: float = 0.5
    silence_duration_ms: int = 800
    min_speech_ms: int = 60
    _pending: bytes = b""
    _pos_ms: int = 0
    _speaking: bool = False
    _voiced_run: int = 0
    _silent_run: int = 0
    _last_voiced_end: int = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def reset(self) -> None:
        """Forget any speech in progress (the timeline keeps counting)."""
        self._speaking = False
        self._voiced_run = 0
        self._silent_run = 0

    def feed(self, pcm: bytes) -> list[VadEvent]:
        data = self._pending + pcm
        frame_bytes = self.rate * FRAME_MS // 1000 * 2
        n = len(data) // frame_bytes
        self._pending = data[n * frame_bytes :]
        if n == 0:
            return []
        frames = np.frombuffer(data[: n * frame_bytes], dtype="<i2").reshape(n, -1)
        rms = np.sqrt(np.mean((frames.astype(np.float64) / 32768.0) ** 2, axis=1))
        level = threshold_to_dbfs(self.threshold)
        events: list[VadEvent] = []
        for value in rms:
            db = 20.0 * math.log10(float(value)) if value > 0 else -120.0
            voiced = db >= level
            start_ms = self._pos_ms
            self._pos_ms += FRAME_MS
            if voiced:
                self._voiced_run += 1
                self._silent_run = 0
                self._last_voiced_end = self._pos_ms
                if not self._speaking and self._voiced_run * FRAME_MS >= self.min_speech_ms:
                    self._speaking = True
                    onset = start_ms - (self._voiced_run - 1) * FRAME_MS
                    events.append(VadEvent("start", onset))
            else:
                self._voiced_run = 0
                if self._speaking:
                    self._silent_run += 1
                    if self._silent_run * FRAME_MS >= self.silence_duration_ms:
                        self._speaking = False
                        self._silent_run = 0
                        events.append(VadEvent("stop", self._last_voiced_end))
        return events

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio analysed so far."""
        return self._pos_ms


def level_dbfs(pcm: bytes) -> float | None:
    """RMS level of PCM16LE in dBFS (None for empty input)."""
    if len(pcm) < 2:
        return None
    a = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(a**2)))
    return 20.0 * math.log10(rms) if rms > 0 else -120.0
