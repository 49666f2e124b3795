"""A session's reply audio on a :class:`~dashscope_rt.audio.Player`, cut at a barge-in.

The engine calls :meth:`PlaybackLink.feed` with each event before any handler sees it, and
:meth:`PlaybackLink.cut` just before the conversation state takes ``speech_started``: the
player is cleared there, and what it had handed to the device of each reply it cut is given to
:meth:`Conversation.mark_interrupted`, so the notices of that event already carry the figures.
"""

from __future__ import annotations

import collections
from typing import Any, Protocol

from . import events as ev
from .conversation import Conversation, Notice

__all__ = ["PlaybackLink", "PlayerLike"]

_CUT_IDS_KEPT = 64


class PlayerLike(Protocol):
    """What the link needs of a player (:class:`~dashscope_rt.audio.Player` has it)."""

    def write(self, pcm16: Any, *, response_id: str | None = None) -> None: ...
    def flush(self) -> None: ...
    def clear(self) -> float: ...
    def played_ms_of(self, response_id: str | None) -> float: ...
    @property
    def playing_response_id(self) -> str | None: ...


class PlaybackLink:
    """Writes reply audio to a player and reports what a barge-in cut."""

    def __init__(self, player: PlayerLike) -> None:
        self.player = player
        self._cut: collections.deque[str | None] = collections.deque(maxlen=_CUT_IDS_KEPT)

    def feed(self, event: Any) -> None:
        """Play reply audio; drop what a cut response still sends after the barge-in."""
        if isinstance(event, ev.ResponseAudioDelta):
            if event.audio and event.response_id not in self._cut:
                self.player.write(event.audio, response_id=event.response_id)
        elif isinstance(event, ev.ResponseAudioDone):
            self.player.flush()

    def cut(self, event: Any, conv: Conversation, now: float) -> list[Notice]:
        """At ``speech_started`` (when it interrupts): stop the player, record what was heard."""
        if not isinstance(event, ev.InputAudioBufferSpeechStarted) or not conv.interrupts_on_speech:
            return []
        player = self.player
        head = player.playing_response_id
        cuts: dict[str | None, float] = {}
        if player.clear() > 0.0:
            cuts[head] = player.played_ms_of(head)
        if conv.response_active:
            rid = conv.active_response_id
            cuts.setdefault(rid, player.played_ms_of(rid))
        notices: list[Notice] = []
        for rid, played in cuts.items():
            self._cut.append(rid)
            notices += conv.mark_interrupted(rid, played, now=now)
        return notices
