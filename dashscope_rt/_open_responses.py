"""The responses in progress, from their start to their end.

A response starts with ``response.created``, or with its first event when that never came; it
ends with ``response.done``, an ``error`` refusing the cancel aimed at it, or, after a cancel or
a barge-in that got no ``response.done`` (docs/protocol.md §3.7, §4.25), at its deadline:
``cancel_grace`` after its audio or output item was done, else ``cancel_timeout`` after its last
event. The ids of the last finished responses are kept so that their late events are ignored.
Sans-IO; part of :class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from . import events as ev
from ._notices import AssistantTranscript, CreateFailed, Notice, ResponseStarted
from ._replies import FinishedReplies
from ._requests import Requests
from ._transcript import Transcript
from ._turns import OpenResponse, UserTurns

if TYPE_CHECKING:
    from ._heard import PlaybackClock

__all__ = ["OpenResponses"]

log = logging.getLogger("dashscope_rt.conversation")

_FINISHED_IDS_KEPT = 256


class OpenResponses:
    """The open responses by id, oldest first (the server runs one at a time); finished ones go
    to ``replies``. Each method adds the notices it causes to ``out``."""

    def __init__(
        self,
        *,
        turns: UserTurns,
        requests: Requests,
        transcript: Transcript,
        replies: FinishedReplies,
        playback: PlaybackClock,
        output_rate: int,
        cancel_timeout: float,
        cancel_grace: float,
    ) -> None:
        self.cancel_timeout = cancel_timeout
        self.cancel_grace = cancel_grace
        self.output_rate = output_rate
        """The sample rate of the session's reply audio (kept current by the conversation)."""
        self.open: dict[str | None, OpenResponse] = {}
        """The responses in progress by id (read only outside this class)."""
        self._turns = turns
        self._requests = requests
        self._transcript = transcript
        self._replies = replies
        self._playback = playback
        self._finished: deque[str | None] = deque(maxlen=_FINISHED_IDS_KEPT)
        self._finished_set: set[str | None] = set()
        self._seq = 0

    def next_deadline(self) -> float | None:
        """The earliest deadline of a cancelled response (None: none is waiting)."""
        times = [d for d in (self._deadline(r) for r in self.open.values()) if d is not None]
        return min(times) if times else None

    def cancel_sent(self, event_id: str | None, t: float) -> None:
        """A ``response.cancel`` went out at ``t``: what is open is being cancelled."""
        self._requests.cancel_sent(event_id, t, response_open=bool(self.open))
        for resp in self.open.values():
            if resp.cancel_at is None:
                resp.cancel_at = t

    # --- server events ---

    def on_created(self, e: ev.ResponseCreated, t: float, out: list[Notice]) -> None:
        rid = e.response.id
        if rid in self._finished_set:
            return
        if rid in self.open:
            return  # announced late, after its first events: its timing is unknown
        resp = self._start(rid, t, out)
        resp.created_at = t

    def _start(self, rid: str | None, t: float, out: list[Notice]) -> OpenResponse:
        # The server runs one response at a time: older ones ended without response.done.
        for old in list(self.open.values()):
            self._finish(old, t, "cancelled" if old.cancel_at is not None else "incomplete", out)
        turn = self._turns.for_response()
        self._requests.create_done()
        self._seq += 1
        resp = OpenResponse(rid, self._seq, t, self.output_rate, turn)
        resp.cancel_at = self._requests.take_cancel_next()
        self.open[rid] = resp
        if turn.item_id is not None:
            self._transcript.answer_started(turn.item_id, self._seq)
        out.append(ResponseStarted(rid))
        return resp

    def _resp(self, rid: str | None, t: float, out: list[Notice]) -> OpenResponse | None:
        """The open response for an event, started implicitly if it was never announced."""
        resp = self.open.get(rid)
        if resp is None:
            if rid is None:
                if not self.open:
                    return None
                resp = next(reversed(self.open.values()))
            elif rid in self._finished_set:
                return None
            else:
                resp = self._start(rid, t, out)
        resp.last_event_at = t
        return resp

    def on_part(self, e: Any, t: float, out: list[Notice]) -> None:
        resp = self._resp(e.response_id, t, out)
        if resp is None:
            return
        said = resp.apply(e, t)
        if said is not None:
            text, delta, final = said
            self._transcript.set(("assistant", resp.seq), "assistant", resp.item_id, text, final)
            out.append(AssistantTranscript(resp.id, resp.item_id, text, delta, final))

    def on_audio_delta(self, e: ev.ResponseAudioDelta, t: float, out: list[Notice]) -> None:
        resp = self._resp(e.response_id, t, out)
        if resp is not None and e.audio:
            resp.add_audio(e.audio, t)
            self._playback.received(resp.id, len(e.audio), resp.sample_rate, t)

    def on_done(self, e: ev.ResponseDone, t: float, out: list[Notice]) -> None:
        r = e.response
        if r.id in self._finished_set and r.id not in self.open:
            log.debug("response.done for %r, which already ended", r.id)
            return
        resp = self._resp(r.id, t, out)
        if resp is None:
            return
        resp.absorb_done(r)
        self._finish(resp, t, r.status or "completed", out, r)

    def on_error(self, e: ev.ErrorEvent, t: float, out: list[Notice]) -> None:
        cancelling = any(r.cancel_at is not None for r in self.open.values())
        refuses_create, refuses_cancel = self._requests.refused(
            e.error.event_id, cancelling=cancelling
        )
        if refuses_create:
            out.append(CreateFailed(self._requests.create_done(), e.error.message or ""))
        if refuses_cancel:
            # The cancel found nothing to cancel: whatever we think is running has ended.
            self._requests.cancel_refused()
            for resp in list(self.open.values()):
                if resp.cancel_at is not None:
                    self._finish(resp, t, "cancelled", out)

    # --- ending responses ---

    def _deadline(self, resp: OpenResponse) -> float | None:
        if resp.cancel_at is None:
            return None
        deadline = max(resp.cancel_at, resp.last_event_at) + self.cancel_timeout
        if resp.ended_hint_at is not None:
            deadline = min(deadline, resp.ended_hint_at + self.cancel_grace)
        return deadline

    def expire(self, t: float, out: list[Notice]) -> None:
        """Finish the cancelled responses whose deadline has passed."""
        for resp in list(self.open.values()):
            if resp.cancel_at is None:
                continue  # the usual case, on every event: not being cancelled
            deadline = self._deadline(resp)
            if deadline is not None and t >= deadline:
                log.debug("response %r: no response.done after cancel; ending it", resp.id)
                self._finish(resp, t, "cancelled", out)

    def _finish(
        self,
        resp: OpenResponse,
        t: float,
        status: str,
        out: list[Notice],
        done: ev.Response | None = None,
    ) -> None:
        self.open.pop(resp.id, None)
        if resp.id not in self._finished_set:
            if len(self._finished) == self._finished.maxlen:
                self._finished_set.discard(self._finished[0])
            self._finished.append(resp.id)
            self._finished_set.add(resp.id)
        self._turns.last = resp.turn
        self._replies.finish(resp, t, status, done, out)
