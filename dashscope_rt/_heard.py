"""What the user heard of an interrupted reply: estimates from playback time and the transcript."""

from __future__ import annotations

__all__ = ["heard_prefix", "played_by_clock_ms"]

_CJK_START = 0x2E80


def played_by_clock_ms(audio_ms: float, playback_end: float, now: float) -> float:
    """Milliseconds of ``audio_ms`` played by ``now`` if playback ends at ``playback_end``
    (monotonic seconds) and ran in real time without gaps."""
    remaining_ms = max(0.0, playback_end - now) * 1000.0
    return min(audio_ms, max(0.0, audio_ms - remaining_ms))


def heard_prefix(text: str, played_ms: float, audio_ms: float) -> str:
    """The share of ``text`` that ``played_ms`` is of ``audio_ms``, cut back to a word boundary.

    Speech runs at a roughly even rate of characters per second over a reply, so the share of
    the audio played is a fair estimate of the share of the text heard. A word only partly
    reached is left out; text without spaces (Chinese, Japanese) is cut at the character.
    """
    if audio_ms <= 0.0 or played_ms >= audio_ms:
        return text
    n = int(len(text) * max(0.0, played_ms) / audio_ms)
    while 0 < n < len(text) and not _boundary(text, n):
        n -= 1
    return text[:n].rstrip()


def _boundary(text: str, i: int) -> bool:
    """Whether a word may end before ``text[i]`` (each CJK character is a word of its own)."""
    before, after = text[i - 1], text[i]
    return before.isspace() or after.isspace() or _cjk(before) or _cjk(after)


def _cjk(ch: str) -> bool:
    return ord(ch) >= _CJK_START
