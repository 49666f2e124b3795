"""Barge-ins: which reply the user cut off, and how much of it had been played.

The figure comes from a player or the app (``Session.attach_player``,
``Session.report_interruption``) or, without one, from :class:`~dashscope_rt._heard.PlaybackClock`,
which assumes playback in real time from arrival. Sans-IO; part of
:class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._heard import PlaybackClock
from ._notices import BargeIn, Notice
from ._replies import FinishedReplies
from ._turns import OpenResponse

__all__ = ["Interruptions"]


class Interruptions:
    """Marks the replies a barge-in cuts (open ones, or a finished one still playing)."""

    def __init__(self, replies: FinishedReplies) -> None:
        self.playback = PlaybackClock()
        self.tracked = False
        """True when a player reports what it cut at each barge-in: a finished reply is then
        never marked interrupted on the clock's guess."""
        self._replies = replies

    def barge_in(self, open_responses: Sequence[OpenResponse], t: float, out: list[Notice]) -> None:
        """The user started speaking at ``t`` and the server stops what it was saying."""
        playback = self.playback
        if open_responses:
            # The server stops this response (interrupt_response); it may send no done.
            out.append(BargeIn(open_responses[-1].id))
            for r in open_responses:
                if r.cancel_at is None:
                    r.cancel_at = t
                if r.interrupted_at is None:
                    r.interrupted_at = t
                if r.played_ms is None:
                    r.played_ms = playback.played_ms(r.id, r.audio_bytes, r.sample_rate, t)
        elif playback.playing(t):
            # The answer is complete but (probably) still playing: stop it.
            out.append(BargeIn(playback.response_id))
            last = self._replies.last
            if (
                not self.tracked
                and last is not None
                and last.response_id == playback.response_id
                and not last.interrupted
            ):
                played = playback.played_ms(last.response_id, len(last.audio), last.sample_rate, t)
                self._replies.interrupt(last.response_id, played, out)
        playback.stop(t)

    def reported(
        self,
        resp: OpenResponse | None,
        response_id: str | None,
        played_ms: float,
        t: float,
        out: list[Notice],
    ) -> None:
        """A player or the app cut a reply after ``played_ms``: the open ``resp``, else the
        finished reply ``response_id`` (None: the last one)."""
        played = max(0.0, float(played_ms))
        if resp is not None:
            resp.interrupted_at = resp.interrupted_at or t
            resp.played_ms = played
        else:
            self._replies.interrupt(response_id, played, out)
