"""Sans-IO conversation state: what the server said, what is in flight, what to do next.

:class:`Conversation` is fed every decoded server event (:meth:`Conversation.receive`) and every
client event as it is sent (:meth:`Conversation.sent`). It keeps the current response, its text,
transcript, audio and tool calls, the turn history and latency metrics, and returns
:class:`Notice` objects telling the session what happened (a response started or finished, tool
calls are ready, the user barged in, ...). It does no I/O, uses no threads and never raises on
odd input; the caller serialises access (the session holds a lock).

After ``response.cancel`` (or a barge-in) some models never send ``response.done``
(docs/protocol.md §3.7, §4.25). Such a response is finished here with status ``"cancelled"`` once
``response.audio.done``/``response.output_item.done`` arrived and ``cancel_grace`` passed, or
``cancel_timeout`` after its last event. Call :meth:`Conversation.poll` now and then (at
:meth:`Conversation.next_deadline`) so that waiters never hang.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from . import events as ev
from ._interruptions import Interruptions
from ._notices import (
    AssistantTranscript,
    BargeIn,
    BudgetExceeded,
    ConfigApplied,
    CreateFailed,
    Notice,
    ReplyInterrupted,
    ResponseFinished,
    ResponseStarted,
    SessionReady,
    ToolCallsReady,
    UserTranscript,
)
from ._open_responses import OpenResponses
from ._replies import FinishedReplies
from ._requests import Requests
from ._transcript import Transcript
from ._turns import UserTurns
from .errors import InvalidInput
from .models import ModelInfo
from .reply import HistoryEntry, Reply, TurnMetrics

if TYPE_CHECKING:
    from .pricing import CostMeter

__all__ = [
    "AssistantTranscript",
    "BargeIn",
    "BudgetExceeded",
    "ConfigApplied",
    "Conversation",
    "CreateFailed",
    "Notice",
    "ReplyInterrupted",
    "ResponseFinished",
    "ResponseStarted",
    "SessionReady",
    "ToolCallsReady",
    "UserTranscript",
]

log = logging.getLogger("dashscope_rt.conversation")


# --- the state machine -----------------------------------------------------------------------


_ClientEventLike = ev.ClientEvent | Mapping[str, Any]


class Conversation:
    """Sans-IO state of one realtime session. Not thread-safe: the caller serialises access.

    ``cancel_timeout``: seconds after the last event of a cancelled (or barged-in) response
    after which it is finished without ``response.done``. ``cancel_grace``: seconds to wait
    for ``response.done`` once the audio/output item of a cancelled response is done.
    ``create_timeout``: seconds after which a ``response.create`` that got neither
    ``response.created`` nor an error stops counting as pending. ``max_history``: the most
    recent history lines (and metrics) kept; None keeps everything. ``meter``: prices each
    reply (``Reply.cost``) and reports a budget overrun (:class:`BudgetExceeded`).

    It routes events to its parts: ``UserTurns`` follows the user's input and ``OpenResponse``
    each response (:mod:`~dashscope_rt._turns`), ``OpenResponses`` the responses in progress
    from their start to their end (:mod:`~dashscope_rt._open_responses`), ``FinishedReplies``
    makes and keeps the replies (:mod:`~dashscope_rt._replies`), ``Transcript`` the history
    lines, ``Requests`` the outstanding create and cancel, and ``Interruptions`` what a barge-in
    cut.
    """

    def __init__(
        self,
        model: ModelInfo,
        *,
        clock: Callable[[], float] = time.monotonic,
        cancel_timeout: float = 5.0,
        cancel_grace: float = 0.5,
        create_timeout: float = 15.0,
        max_history: int | None = None,
        meter: CostMeter | None = None,
    ) -> None:
        if max_history is not None and (
            isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 1
        ):
            raise InvalidInput(f"max_history must be an int >= 1 or None, got {max_history!r}")
        self.model = model
        self.max_history = max_history
        self.meter = meter
        self.clock = clock
        self.create_timeout = create_timeout
        self.session_id: str | None = None
        self._session: dict[str, Any] = {}
        self.audio_bytes_sent = 0
        self._transcript = Transcript(max_history)
        self._replies = FinishedReplies(self._transcript, meter, max_history)
        self._requests = Requests()
        self._interruptions = Interruptions(self._replies)
        self._turns = UserTurns()
        self._out: list[Notice] = []
        self._responses = OpenResponses(
            turns=self._turns,
            requests=self._requests,
            transcript=self._transcript,
            replies=self._replies,
            playback=self._interruptions.playback,
            output_rate=self.output_rate,
            cancel_timeout=cancel_timeout,
            cancel_grace=cancel_grace,
        )

    # --- public state ---

    @property
    def cancel_timeout(self) -> float:
        """Seconds after the last event of a cancelled response until it is finished."""
        return self._responses.cancel_timeout

    @cancel_timeout.setter
    def cancel_timeout(self, seconds: float) -> None:
        self._responses.cancel_timeout = seconds

    @property
    def cancel_grace(self) -> float:
        """Seconds to wait for ``response.done`` once a cancelled response's audio is done."""
        return self._responses.cancel_grace

    @cancel_grace.setter
    def cancel_grace(self, seconds: float) -> None:
        self._responses.cancel_grace = seconds

    @property
    def session(self) -> dict[str, Any]:
        """The session as the server last described it (``session.created``/``.updated``)."""
        return self._session

    @session.setter
    def session(self, raw: dict[str, Any]) -> None:
        self._session = raw
        self._responses.output_rate = self.output_rate

    @property
    def history(self) -> list[HistoryEntry]:
        """The transcript lines, in order (the newest ``max_history``)."""
        return self._transcript.lines

    @history.setter
    def history(self, lines: list[HistoryEntry]) -> None:
        self._transcript.replace(lines)

    @property
    def metrics(self) -> list[TurnMetrics]:
        """Per-response timings and usage, oldest first (the newest ``max_history``)."""
        return self._replies.metrics

    @property
    def last_reply(self) -> Reply | None:
        """The most recent finished reply."""
        return self._replies.last

    @property
    def playback_tracked(self) -> bool:
        """True when a player reports what it cut (``mark_interrupted``) at each barge-in: a
        finished reply is then never marked interrupted on the clock's guess."""
        return self._interruptions.tracked

    @playback_tracked.setter
    def playback_tracked(self, tracked: bool) -> None:
        self._interruptions.tracked = tracked

    @property
    def response_pending(self) -> bool:
        """A ``response.create`` was sent and its response has not started."""
        return self._requests.response_pending

    @property
    def active_response_id(self) -> str | None:
        """Id of the response in progress (None when idle or when its id is unknown)."""
        for rid in reversed(self._responses.open):
            return rid
        return None

    @property
    def response_active(self) -> bool:
        """Whether a response is in progress (its id may be unknown)."""
        return bool(self._responses.open)

    @property
    def receiving_audio(self) -> bool:
        """Whether audio of an unfinished response is still coming in."""
        return any(r.audio_bytes and not r.audio_done for r in self._responses.open.values())

    @property
    def output_rate(self) -> int:
        """Output sample rate: the session's ``audio.output.format.sample_rate`` or the model's."""
        try:
            rate = self.session["audio"]["output"]["format"]["sample_rate"]
        except (KeyError, TypeError):
            return self.model.output_rate
        return rate if type(rate) is int and rate > 0 else self.model.output_rate

    @property
    def playing_until(self) -> float:
        """Clock time at which received audio ends if played in real time from its arrival."""
        return self._interruptions.playback.end

    @property
    def interrupts_on_speech(self) -> bool:
        """Whether the server stops a response when the user starts speaking (server VAD's
        ``interrupt_response``, on unless the session turned it off)."""
        td = self.session.get("turn_detection")
        return not (isinstance(td, Mapping) and td.get("interrupt_response") is False)

    def can_create_response(self) -> bool:
        """True when no response is in progress and no ``response.create`` is pending."""
        return not self._responses.open and not self.response_pending

    def next_deadline(self) -> float | None:
        """Clock time at which :meth:`poll` has work to do (None: nothing is waiting)."""
        create = self._requests.create_deadline(self.create_timeout)
        times = [d for d in (self._responses.next_deadline(), create) if d is not None]
        return min(times) if times else None

    # --- input ---

    def receive(self, event: ev.ServerEvent, *, now: float | None = None) -> list[Notice]:
        """Account for a decoded server event; return the notices it causes. Never raises."""
        t = self.clock() if now is None else now
        out: list[Notice] = []
        self._out = out
        responses = self._responses
        on_response = _RESPONSE_HANDLERS.get(type(event))
        try:
            if on_response is not None:
                on_response(responses, event, t, out)
            else:
                handler = _HANDLERS.get(type(event))
                if handler is not None:
                    handler(self, event, t)
        except Exception:
            log.warning("conversation state: failed on %r", event, exc_info=True)
        if responses.open:
            responses.expire(t, out)
        self._out = []
        return out

    def sent(
        self,
        event: _ClientEventLike,
        *,
        event_id: str | None = None,
        now: float | None = None,
    ) -> None:
        """Account for a client event just sent (pass the ``event_id`` used on the wire)."""
        t = self.clock() if now is None else now
        try:
            self._sent(event, event_id, t)
        except Exception:
            log.warning("conversation state: failed on sent %r", event, exc_info=True)

    def poll(self, now: float | None = None) -> list[Notice]:
        """Finish cancelled responses that will get no ``response.done``; expire a lost create."""
        t = self.clock() if now is None else now
        out: list[Notice] = []
        try:
            self._responses.expire(t, out)
            deadline = self._requests.create_deadline(self.create_timeout)
            if deadline is not None and t >= deadline:
                log.warning(
                    "response.create got no response.created in %.1f s", self.create_timeout
                )
                eid = self._requests.create_done()
                out.append(CreateFailed(eid, "no response.created before the timeout"))
        except Exception:
            log.warning("conversation state: poll failed", exc_info=True)
        return out

    def mark_interrupted(
        self, response_id: str | None, played_ms: float, *, now: float | None = None
    ) -> list[Notice]:
        """Record that playback of a reply was cut after ``played_ms`` milliseconds.

        ``response_id`` None means the response in progress, else the last finished reply. A
        response in progress keeps the figure until it finishes; a finished reply (one of the
        last 16) is replaced (``last_reply``, ``history``) and a :class:`ReplyInterrupted` notice
        is returned.
        """
        t = self.clock() if now is None else now
        out: list[Notice] = []
        resp = self._responses.open.get(response_id) if response_id is not None else None
        if resp is None and response_id is None and self._responses.open:
            resp = next(reversed(self._responses.open.values()))
        self._interruptions.reported(resp, response_id, played_ms, t, out)
        return out

    def carry_over(self) -> Conversation:
        """A fresh state for a new server session that keeps the history, metrics and costs."""
        new = Conversation(
            self.model,
            clock=self.clock,
            cancel_timeout=self.cancel_timeout,
            cancel_grace=self.cancel_grace,
            create_timeout=self.create_timeout,
            max_history=self.max_history,
            meter=self.meter,
        )
        new.history = self.history
        new._replies.metrics = self.metrics
        return new

    # --- client events ---

    def _sent(self, event: _ClientEventLike, event_id: str | None, t: float) -> None:
        if isinstance(event, Mapping):
            kind, fields = event.get("type"), event
        else:
            kind, fields = event.TYPE, attrs.asdict(event, recurse=False)
        eid = event_id or fields.get("event_id")
        if kind == "input_audio_buffer.append":
            audio = fields.get("audio")
            if isinstance(audio, str):
                self.audio_bytes_sent += len(audio) * 3 // 4
            elif audio is not None:
                self.audio_bytes_sent += len(audio)
        elif kind == "response.create":
            self._requests.create_sent(eid, t)
        elif kind == "response.cancel":
            self._responses.cancel_sent(eid, t)
        elif kind == "input_audio_buffer.commit":
            self._turns.current.commit_sent_at = t
        elif kind == "conversation.item.create" and isinstance(fields.get("item"), Mapping):
            self._sent_item(fields["item"])

    def _sent_item(self, item: Mapping[str, Any]) -> None:
        if item.get("type") == "function_call_output":
            self._turns.tool_output_sent = True
            return
        if item.get("type") == "message" and item.get("role") == "user":
            content = item.get("content")
            texts = [
                c.get("text") for c in content or () if isinstance(c, Mapping) and c.get("text")
            ]
            text = "".join(str(x) for x in texts)
            if text:
                self._turns.current.transcript = text
                self._transcript.sent_text(item.get("id"), text)

    # --- server events: the session and the user's turn ---

    def _on_session_created(self, e: ev.SessionCreated, t: float) -> None:
        self.session_id = e.session.id
        self.session = dict(e.session.raw)
        self._out.append(SessionReady(self.session_id))

    def _on_session_updated(self, e: ev.SessionUpdated, t: float) -> None:
        self.session = dict(e.session.raw)
        self.session_id = e.session.id or self.session_id
        self._out.append(ConfigApplied(dict(self.session)))

    def _on_speech_started(self, e: ev.InputAudioBufferSpeechStarted, t: float) -> None:
        if self.interrupts_on_speech:
            self._interruptions.barge_in(list(self._responses.open.values()), t, self._out)
        self._turns.speech_started(e.item_id)

    def _on_speech_stopped(self, e: ev.InputAudioBufferSpeechStopped, t: float) -> None:
        self._turns.speech_stopped(e.item_id, t)

    def _on_committed(self, e: ev.InputAudioBufferCommitted, t: float) -> None:
        self._turns.committed(e.item_id, t)

    def _on_item_created(self, e: ev.ConversationItemCreated, t: float) -> None:
        item = e.item
        if item is None or item.type != "message" or item.role != "user":
            return
        text = item.text
        if not text or self._transcript.acknowledge(item):
            return  # no text, or the echo of a text message sent by this client
        if ("user", item.id) not in self._transcript:
            self._turns.current.transcript = text
            self._transcript.set_user(item.id, text, True)

    def _on_user_delta(self, e: ev.ConversationItemInputAudioTranscriptionDelta, t: float) -> None:
        line = self._transcript.get(("user", e.item_id))
        if line is not None and line.final:
            return
        if e.text is None and e.stash is None and e.delta:
            text = (line.text if line is not None else "") + e.delta
        else:
            text = e.preview
        self._transcript.set_user(e.item_id, text, False)
        self._out.append(UserTranscript(e.item_id, text, False))

    def _on_user_completed(
        self, e: ev.ConversationItemInputAudioTranscriptionCompleted, t: float
    ) -> None:
        text = e.transcript or ""
        self._transcript.set_user(e.item_id, text, True)
        self._turns.transcribed(e.item_id, text, (r.turn for r in self._responses.open.values()))
        self._out.append(UserTranscript(e.item_id, text, True))


_HANDLERS: dict[type, Callable[[Conversation, Any, float], None]] = {
    ev.SessionCreated: Conversation._on_session_created,
    ev.SessionUpdated: Conversation._on_session_updated,
    ev.InputAudioBufferSpeechStarted: Conversation._on_speech_started,
    ev.InputAudioBufferSpeechStopped: Conversation._on_speech_stopped,
    ev.InputAudioBufferCommitted: Conversation._on_committed,
    ev.ConversationItemCreated: Conversation._on_item_created,
    ev.ConversationItemInputAudioTranscriptionDelta: Conversation._on_user_delta,
    ev.ConversationItemInputAudioTranscriptionCompleted: Conversation._on_user_completed,
}
"""The session's and the user's events."""


_RESPONSE_HANDLERS: dict[type, Callable[[OpenResponses, Any, float, list[Notice]], None]] = {
    ev.ResponseCreated: OpenResponses.on_created,
    ev.ResponseDone: OpenResponses.on_done,
    ev.ResponseOutputItemAdded: OpenResponses.on_part,
    ev.ResponseOutputItemDone: OpenResponses.on_part,
    ev.ResponseAudioTranscriptDelta: OpenResponses.on_part,
    ev.ResponseAudioTranscriptDone: OpenResponses.on_part,
    ev.ResponseAudioDelta: OpenResponses.on_audio_delta,
    ev.ResponseAudioDone: OpenResponses.on_part,
    ev.ResponseTextDelta: OpenResponses.on_part,
    ev.ResponseTextDone: OpenResponses.on_part,
    ev.ResponseFunctionCallArgumentsDelta: OpenResponses.on_part,
    ev.ResponseFunctionCallArgumentsDone: OpenResponses.on_part,
    ev.ResponseContentPartAdded: OpenResponses.on_part,
    ev.ResponseContentPartDone: OpenResponses.on_part,
    ev.ErrorEvent: OpenResponses.on_error,
}
"""A response's events, handled by ``OpenResponses``."""
