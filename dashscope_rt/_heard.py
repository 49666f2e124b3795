"""What the user heard of an interrupted reply: estimates from playback time and the transcript."""

from __future__ import annotations

__all__ = ["PlaybackClock", "heard_prefix", "played_by_clock_ms"]

_CJK_START = 0x2E80


def played_by_clock_ms(audio_ms: float, playback_end: float, now: float) -> float:
    """Milliseconds of ``audio_ms`` played by ``now`` if playback ends at ``playback_end``
    (monotonic seconds) and ran in real time without gaps."""
    remaining_ms = max(0.0, playback_end - now) * 1000.0
    return min(audio_ms, max(0.0, audio_ms - remaining_ms))


class PlaybackClock:
    """When the reply audio received so far ends, for a player that started at its first chunk
    and plays in real time: the estimate used when no player reports what it played."""

    def __init__(self) -> None:
        self.end = 0.0
        self.response_id: str | None = None

    def received(self, response_id: str | None, nbytes: int, rate: int, now: float) -> None:
        """``nbytes`` of PCM16 at ``rate`` arrived at ``now`` for ``response_id``."""
        if rate > 0:
            self.end = max(self.end, now) + (nbytes // 2) / rate
            self.response_id = response_id

    def playing(self, now: float) -> bool:
        return now < self.end

    def stop(self, now: float) -> None:
        """Playback was cut at ``now``."""
        self.end = min(self.end, now)

    def played_ms(self, response_id: str | None, nbytes: int, rate: int, now: float) -> float:
        """Milliseconds of a reply's ``nbytes`` played by ``now``."""
        audio_ms = (nbytes // 2) * 1000.0 / rate if rate > 0 else 0.0
        if response_id != self.response_id:
            return 0.0 if nbytes == 0 else audio_ms
        return played_by_clock_ms(audio_ms, self.end, now)


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
