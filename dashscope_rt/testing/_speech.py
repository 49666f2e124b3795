"""Speech-like audio synthesis: voiced syllables with formants, a pitch contour and envelopes.

Not a text-to-speech engine: the audio is unintelligible, but it sounds like a voice speaking
(pitched, vowel-coloured syllables separated by consonant noise and pauses between words), it has
the level and rhythm of speech so a VAD reacts to it, and its length follows the text.
"""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np

__all__ = ["silence", "speech_duration_s", "synthesize", "tone"]

# (F1, F2, F3) in Hz for a handful of vowels.
_VOWELS = (
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (270.0, 2290.0, 3010.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
    (660.0, 1720.0, 2410.0),  # ae
)
_SYLLABLE_S = 0.19
_WORD_GAP_S = 0.06
_SENTENCE_GAP_S = 0.25


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def _syllables(word: str) -> int:
    """A rough syllable count: vowel groups for Latin text, one per character for CJK."""
    cjk = sum(1 for ch in word if ord(ch) > 0x2E80)
    if cjk:
        return cjk
    groups, prev = 0, False
    for ch in word.lower():
        is_vowel = ch in "aeiouy"
        if is_vowel and not prev:
            groups += 1
        prev = is_vowel
    return max(1, groups)


def _words(text: str) -> list[tuple[int, bool]]:
    """(syllables, ends_sentence) per word."""
    out: list[tuple[int, bool]] = []
    for raw in text.split():
        out.append((_syllables(raw), raw[-1] in ".!?。！？,，;；"))
    return out


def speech_duration_s(text: str) -> float:
    """Length in seconds of :func:`synthesize` output for ``text``."""
    words = _words(text)
    if not words:
        return 0.0
    total = 0.0
    for syl, stop in words:
        total += syl * _SYLLABLE_S + (_SENTENCE_GAP_S if stop else _WORD_GAP_S)
    return total + 0.1


def _syllable(
    n: int, rate: int, f0_start: float, f0_end: float, formants: tuple[float, float, float]
) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / rate
    f0 = np.linspace(f0_start, f0_end, n)
    phase = 2.0 * math.pi * np.cumsum(f0) / rate
    out = np.zeros(n, dtype=np.float64)
    nyquist = rate / 2.0 - 200.0
    max_k = int(min(4000.0, nyquist) / max(f0_start, f0_end, 60.0))
    f_mean = float(np.mean(f0))
    for k in range(1, max(2, max_k)):
        freq = k * f_mean
        # Resonance curve of three formants, with a -6 dB/octave source tilt.
        gain = 0.0
        for i, fc in enumerate(formants):
            bw = 80.0 + 40.0 * i
            gain += (1.0 / (1 + i)) / (1.0 + ((freq - fc) / bw) ** 2)
        gain *= 1.0 / k**0.5
        out += gain * np.sin(k * phase)
    # Syllable envelope: quick attack, sustain, decay.
    env = np.sin(np.pi * np.clip(t / (n / rate), 0.0, 1.0)) ** 0.6
    return out * env


def synthesize(
    text: str, rate: int = 24000, *, pitch_hz: float = 180.0, level: float = 0.25
) -> bytes:
    """Speech-like mono PCM16LE for ``text`` at ``rate`` Hz (deterministic for a given text).

    Recent results are cached: a load test that asks hundreds of sessions for the same reply
    synthesizes it once.
    """
    return _synthesize(text, rate, pitch_hz, level)


@functools.lru_cache(maxsize=64)
def _synthesize(text: str, rate: int, pitch_hz: float, level: float) -> bytes:
    rng = np.random.default_rng(_seed(text))
    words = _words(text)
    pieces: list[np.ndarray] = [np.zeros(int(0.05 * rate))]
    n_syl = sum(s for s, _ in words) or 1
    idx = 0
    for syl, stop in words:
        for _ in range(syl):
            # Declining pitch over the sentence with a small random wobble per syllable.
            frac = idx / n_syl
            f0 = pitch_hz * (1.15 - 0.3 * frac) * float(rng.uniform(0.92, 1.08))
            vowel = _VOWELS[int(rng.integers(len(_VOWELS)))]
            n_cons = int(rate * 0.03)
            cons = rng.normal(0.0, 0.08, n_cons) * np.hanning(n_cons)
            n_vow = int(rate * (_SYLLABLE_S - 0.03))
            pieces.append(cons)
            pieces.append(_syllable(n_vow, rate, f0, f0 * float(rng.uniform(0.85, 1.05)), vowel))
            idx += 1
        pieces.append(np.zeros(int(rate * (_SENTENCE_GAP_S if stop else _WORD_GAP_S))))
    pieces.append(np.zeros(int(0.05 * rate)))
    signal = np.concatenate(pieces)
    peak = float(np.max(np.abs(signal))) or 1.0
    signal = signal / peak * level * 2.5
    return (np.clip(signal, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def silence(ms: float, rate: int = 16000) -> bytes:
    """``ms`` milliseconds of digital silence as PCM16LE."""
    return b"\x00\x00" * int(rate * ms / 1000.0)


def tone(ms: float, rate: int = 16000, *, freq: float = 440.0, level: float = 0.3) -> bytes:
    """A sine tone as PCM16LE (handy as an unmistakable, loud test signal)."""
    t = np.arange(int(rate * ms / 1000.0)) / rate
    return (np.sin(2 * math.pi * freq * t) * level * 32767.0).astype("<i2").tobytes()
