"""A streaming resampler whose timing never moves: output k is input time k / out_rate.

soxr's streaming resampler is better audio, but it holds back a variable amount (up to ~36 ms at
HQ) that depends on how the input was chunked. That is harmless for sound and fatal for an echo
canceller's reference, whose position against the microphone must not move. This windowed-sinc
resampler looks ahead a fixed ``half_taps`` input samples, so the output that is ready after ``n``
input samples depends only on ``n``, never on the chunk sizes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["SincResampler"]

_MAX_PHASES = 4096
_KAISER_BETA = 8.0


class SincResampler:
    """Mono float32 resampler with a constant look-ahead; history before the first sample is 0."""

    def __init__(self, in_rate: int, out_rate: int, *, zero_crossings: int = 8) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        g = math.gcd(in_rate, out_rate)
        self._num, self._den = in_rate // g, out_rate // g  # input step per output sample
        cutoff = min(1.0, out_rate / in_rate) * 0.92  # of the input's Nyquist
        self.half_taps = 0 if in_rate == out_rate else math.ceil(zero_crossings / cutoff)
        self._cutoff = cutoff
        self._table = self._phase_table() if self._den <= _MAX_PHASES else None
        # Input samples kept from buffer index 0, which is absolute index ``_start``.
        self._buf = np.zeros(self.half_taps, dtype=np.float32)
        self._start = -self.half_taps
        self._next = 0  # next output index
        self.consumed = 0  # input samples pushed so far

    @property
    def lookahead(self) -> int:
        """Output samples that wait for future input (a constant)."""
        return math.ceil(self.half_taps * self.out_rate / self.in_rate)

    def _taps(self, frac: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Filter taps for fractional input positions ``frac`` in [0, 1), one row each."""
        w = self.half_taps
        t = frac[:, None] + (w - 1 - np.arange(2 * w))[None, :]  # distance to each input tap
        win = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (t / w) ** 2, 0.0, 1.0)))
        h = self._cutoff * np.sinc(self._cutoff * t) * win
        h /= h.sum(axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = h.astype(np.float32)
        return out

    def _phase_table(self) -> npt.NDArray[np.float32]:
        return self._taps(np.arange(self._den, dtype=np.float64) / self._den)

    def push(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Add input; return every output sample that the input so far determines."""
        self.consumed += len(x)
        if self.half_taps == 0:
            self._next += len(x)
            return x.astype(np.float32, copy=False)
        self._buf = np.concatenate((self._buf, x.astype(np.float32, copy=False)))
        end = self._start + len(self._buf)
        w = self.half_taps
        # Output k needs inputs up to floor(k * num / den) + w, all below ``end``.
        stop = -(-((end - w) * self._den) // self._num)
        if stop <= self._next:
            return np.zeros(0, dtype=np.float32)
        k = np.arange(self._next, stop, dtype=np.int64)
        pos = k * self._num
        base = pos // self._den
        phase = pos % self._den
        idx = (base - self._start - w + 1)[:, None] + np.arange(2 * w)[None, :]
        taps = self._table[phase] if self._table is not None else self._taps(phase / self._den)
        y: npt.NDArray[np.float32] = np.einsum("ij,ij->i", self._buf[idx], taps)
        self._next = stop
        # Keep what the next output still needs.
        keep_from = (stop * self._num) // self._den - w + 1 - self._start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._start += keep_from
        return y
