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
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from . import events as ev
from ._heard import heard_prefix, played_by_clock_ms
from .errors import InvalidInput
from .models import ModelInfo
from .reply import HistoryEntry, Reply, ToolCall, TurnMetrics

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

_FINISHED_IDS_KEPT = 256
_RECENT_REPLIES_KEPT = 16


# --- notices ---------------------------------------------------------------------------------


@attrs.frozen
class Notice:
    """Base class of what :meth:`Conversation.receive` reports."""


@attrs.frozen
class SessionReady(Notice):
    """``session.created`` arrived."""

    session_id: str | None


@attrs.frozen
class ConfigApplied(Notice):
    """``session.updated`` arrived; ``session`` is the effective configuration (wire dict)."""

    session: Mapping[str, Any]


@attrs.frozen
class ResponseStarted(Notice):
    """A response began (``response.created``, or its first event if that was missing)."""

    response_id: str | None


@attrs.frozen
class ResponseFinished(Notice):
    """A response ended (``response.done``, or synthesised after a cancel without one)."""

    reply: Reply


@attrs.frozen
class ToolCallsReady(Notice):
    """The finished response asked for these calls (all of them; run them, then respond)."""

    response_id: str | None
    calls: tuple[ToolCall, ...]


@attrs.frozen
class UserTranscript(Notice):
    """Transcript of the user's speech: a preview (``final=False``) or the final text."""

    item_id: str | None
    text: str
    final: bool


@attrs.frozen
class AssistantTranscript(Notice):
    """The assistant's text so far (``text``), with the new piece (``delta``)."""

    response_id: str | None
    item_id: str | None
    text: str
    delta: str
    final: bool


@attrs.frozen
class BargeIn(Notice):
    """The user started speaking while a response was playing: flush queued playback."""

    response_id: str | None


@attrs.frozen
class ReplyInterrupted(Notice):
    """A reply's playback was cut by a barge-in: ``reply`` has ``interrupted``, ``played_ms`` and
    ``heard_transcript``. Comes when a finished reply is cut, or when a cut one finishes; again
    if a figure reported later (``Session.report_interruption``) replaces an estimate."""

    reply: Reply


@attrs.frozen
class BudgetExceeded(Notice):
    """The session's total cost (``prices=``) reached its ``budget``; reported once."""

    TYPE: ClassVar[str] = "sdk.budget_exceeded"
    total_cost: float
    budget: float
    response_id: str | None = None

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen
class CreateFailed(Notice):
    """A ``response.create`` was rejected by an ``error`` event (or timed out)."""

    event_id: str | None
    message: str


# --- internal state --------------------------------------------------------------------------


class _Turn:
    """What is known about the user input that leads to the next response."""

    __slots__ = ("commit_sent_at", "committed_at", "item_id", "speech_stopped_at", "transcript")

    def __init__(self) -> None:
        self.item_id: str | None = None
        self.speech_stopped_at: float | None = None
        self.committed_at: float | None = None
        self.commit_sent_at: float | None = None
        self.transcript: str | None = None


class _Call:
    __slots__ = ("arguments", "call_id", "done", "item_id", "name", "parts")

    def __init__(self, call_id: str | None, item_id: str | None) -> None:
        self.call_id = call_id
        self.item_id = item_id
        self.name: str | None = None
        self.parts: list[str] = []
        self.arguments: str | None = None
        self.done = False


class _Response:
    __slots__ = (
        "audio",
        "audio_bytes",
        "audio_done",
        "calls",
        "cancel_at",
        "created_at",
        "ended_hint_at",
        "first_audio_at",
        "first_text_at",
        "id",
        "interrupted_at",
        "item_id",
        "last_event_at",
        "played_ms",
        "sample_rate",
        "seq",
        "text",
        "text_done",
        "transcript",
        "transcript_done",
        "turn",
    )

    def __init__(
        self, rid: str | None, seq: int, now: float, sample_rate: int, turn: _Turn
    ) -> None:
        self.id = rid
        self.seq = seq
        self.created_at: float | None = None
        self.last_event_at = now
        self.sample_rate = sample_rate
        self.turn = turn
        self.item_id: str | None = None
        self.text = ""
        self.transcript = ""
        self.text_done: str | None = None
        self.transcript_done: str | None = None
        self.audio: list[bytes] = []
        self.audio_bytes = 0
        self.audio_done = False
        self.first_text_at: float | None = None
        self.first_audio_at: float | None = None
        self.calls: dict[str, _Call] = {}
        self.cancel_at: float | None = None
        self.interrupted_at: float | None = None
        self.played_ms: float | None = None  # reported by the player or the app
        self.ended_hint_at: float | None = None

    def call(self, call_id: str | None, item_id: str | None) -> _Call:
        key = call_id or item_id or f"#{len(self.calls)}"
        found = self.calls.get(key)
        if found is None and call_id and item_id:
            # A call first seen by item id only (output_item.added without call_id).
            found = self.calls.pop(item_id, None)
            if found is not None:
                self.calls[key] = found
        if found is None:
            found = self.calls[key] = _Call(call_id, item_id)
        found.call_id = found.call_id or call_id
        found.item_id = found.item_id or item_id
        return found


def _is_audio(item: ev.Item) -> bool:
    return any(p.type == "audio" for p in item.content)


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
        self.cancel_timeout = cancel_timeout
        self.cancel_grace = cancel_grace
        self.create_timeout = create_timeout
        self.session_id: str | None = None
        self.session: dict[str, Any] = {}
        self.history: list[HistoryEntry] = []
        self.metrics: list[TurnMetrics] = []
        self.last_reply: Reply | None = None
        self.audio_bytes_sent = 0
        self.playback_tracked = False
        """True when a player reports what it cut (``mark_interrupted``) at each barge-in: a
        finished reply is then never marked interrupted on the clock's guess."""
        self._recent: dict[str | None, tuple[Reply, int]] = {}  # finished replies, by id
        self._playback_end = 0.0
        self._playback_id: str | None = None
        self.response_pending = False
        self._pending_create_id: str | None = None
        self._pending_since: float | None = None
        self._cancel_event_id: str | None = None
        self._cancel_sent_at: float | None = None
        self._cancel_next: float | None = None
        self._open: dict[str | None, _Response] = {}
        self._finished: deque[str | None] = deque(maxlen=_FINISHED_IDS_KEPT)
        self._finished_set: set[str | None] = set()
        self._turn = _Turn()
        self._last_turn: _Turn | None = None
        self._tool_output_sent = False
        self._seq = 0
        self._history_index: dict[tuple[str, Any], int] = {}
        self._unacked_texts: deque[tuple[str, Any]] = deque()
        self._user_item_response: dict[str, int] = {}
        self._out: list[Notice] = []

    # --- public state ---

    @property
    def active_response_id(self) -> str | None:
        """Id of the response in progress (None when idle or when its id is unknown)."""
        for rid in reversed(self._open):
            return rid
        return None

    @property
    def response_active(self) -> bool:
        """Whether a response is in progress (its id may be unknown)."""
        return bool(self._open)

    @property
    def receiving_audio(self) -> bool:
        """Whether audio of an unfinished response is still coming in."""
        return any(r.audio_bytes and not r.audio_done for r in self._open.values())

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
        return self._playback_end

    def can_create_response(self) -> bool:
        """True when no response is in progress and no ``response.create`` is pending."""
        return not self._open and not self.response_pending

    def next_deadline(self) -> float | None:
        """Clock time at which :meth:`poll` has work to do (None: nothing is waiting)."""
        times = [d for d in (self._deadline(r) for r in self._open.values()) if d is not None]
        if self.response_pending and self._pending_since is not None:
            times.append(self._pending_since + self.create_timeout)
        return min(times) if times else None

    # --- input ---

    def receive(self, event: ev.ServerEvent, *, now: float | None = None) -> list[Notice]:
        """Account for a decoded server event; return the notices it causes. Never raises."""
        t = self.clock() if now is None else now
        out: list[Notice] = []
        self._out = out
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            try:
                handler(self, event, t)
            except Exception:
                log.warning("conversation state: failed on %r", event, exc_info=True)
        if self._open:
            self._expire(t)
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
        self._out = out
        try:
            self._expire(t)
            if (
                self.response_pending
                and self._pending_since is not None
                and t >= self._pending_since + self.create_timeout
            ):
                log.warning(
                    "response.create got no response.created in %.1f s", self.create_timeout
                )
                eid = self._pending_create_id
                self._clear_pending()
                out.append(CreateFailed(eid, "no response.created before the timeout"))
        except Exception:
            log.warning("conversation state: poll failed", exc_info=True)
        self._out = []
        return out

    # --- client events ---

    def _sent(self, event: _ClientEventLike, event_id: str | None, t: float) -> None:
        if isinstance(event, Mapping):
            kind = event.get("type")
            eid = event_id or event.get("event_id")
        else:
            kind = getattr(event, "TYPE", None)
            eid = event_id or getattr(event, "event_id", None)
        if kind == "input_audio_buffer.append":
            audio = (
                event.get("audio") if isinstance(event, Mapping) else getattr(event, "audio", None)
            )
            if isinstance(audio, str):
                self.audio_bytes_sent += len(audio) * 3 // 4
            elif audio is not None:
                self.audio_bytes_sent += len(audio)
        elif kind == "response.create":
            self.response_pending = True
            self._pending_create_id = eid
            self._pending_since = t
        elif kind == "response.cancel":
            self._cancel_event_id = eid
            self._cancel_sent_at = t
            for resp in self._open.values():
                if resp.cancel_at is None:
                    resp.cancel_at = t
            if not self._open and self.response_pending:
                # The response may already run on the server: cancel it when it shows up.
                self._cancel_next = t
        elif kind == "input_audio_buffer.commit":
            self._turn.commit_sent_at = t
        elif kind == "conversation.item.create":
            item = event.get("item") if isinstance(event, Mapping) else getattr(event, "item", None)
            if isinstance(item, Mapping):
                self._sent_item(item)

    def _sent_item(self, item: Mapping[str, Any]) -> None:
        if item.get("type") == "function_call_output":
            self._tool_output_sent = True
            return
        if item.get("type") == "message" and item.get("role") == "user":
            content = item.get("content")
            texts = [
                c.get("text") for c in content or () if isinstance(c, Mapping) and c.get("text")
            ]
            text = "".join(str(x) for x in texts)
            if text:
                self._turn.transcript = text
                item_id = item.get("id")
                if isinstance(item_id, str):
                    self._set_user(item_id, text, True)
                else:
                    self._seq += 1
                    key = ("text", self._seq)
                    self._unacked_texts.append(key)
                    self._set_history(key, "user", None, text, True)

    # --- server events ---

    def _on_session_created(self, e: ev.SessionCreated, t: float) -> None:
        self.session_id = e.session.id
        self.session = dict(e.session.raw)
        self._out.append(SessionReady(self.session_id))

    def _on_session_updated(self, e: ev.SessionUpdated, t: float) -> None:
        self.session = dict(e.session.raw)
        self.session_id = e.session.id or self.session_id
        self._out.append(ConfigApplied(dict(self.session)))

    @property
    def interrupts_on_speech(self) -> bool:
        """Whether the server stops a response when the user starts speaking (server VAD's
        ``interrupt_response``, on unless the session turned it off)."""
        td = self.session.get("turn_detection")
        return not (isinstance(td, Mapping) and td.get("interrupt_response") is False)

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
        self._out = out
        played = max(0.0, float(played_ms))
        resp = self._open.get(response_id) if response_id is not None else None
        if resp is None and response_id is None and self._open:
            resp = next(reversed(self._open.values()))
        if resp is not None:
            resp.interrupted_at = resp.interrupted_at or t
            resp.played_ms = played
        else:
            self._interrupt_finished(response_id, played)
        self._out = []
        return out

    def _interrupt_finished(self, response_id: str | None, played_ms: float) -> None:
        last = self.last_reply
        rid = last.response_id if response_id is None and last is not None else response_id
        found = self._recent.get(rid)
        if found is None:
            return
        reply, seq = found
        heard = heard_prefix(reply.transcript or reply.text, played_ms, reply.duration * 1000.0)
        reply = attrs.evolve(reply, interrupted=True, played_ms=played_ms, heard_transcript=heard)
        self._recent[rid] = (reply, seq)
        if last is not None and last.response_id == rid:
            self.last_reply = reply
        idx = self._history_index.get(("assistant", seq))
        if idx is not None:
            self.history[idx] = attrs.evolve(self.history[idx], interrupted=True, heard_text=heard)
        self._out.append(ReplyInterrupted(reply))

    def _played_by_clock(self, rid: str | None, nbytes: int, rate: int, t: float) -> float:
        """Milliseconds of a reply played by ``t`` if played in real time from its arrival."""
        audio_ms = (nbytes // 2) * 1000.0 / rate if rate > 0 else 0.0
        if rid != self._playback_id:
            return 0.0 if nbytes == 0 else audio_ms
        return played_by_clock_ms(audio_ms, self._playback_end, t)

    def _on_speech_started(self, e: ev.InputAudioBufferSpeechStarted, t: float) -> None:
        if self.interrupts_on_speech:
            if self._open:
                # The server stops this response (interrupt_response); it may send no done.
                self._out.append(BargeIn(next(reversed(self._open.values())).id))
                for r in self._open.values():
                    if r.cancel_at is None:
                        r.cancel_at = t
                    if r.interrupted_at is None:
                        r.interrupted_at = t
                    if r.played_ms is None:
                        r.played_ms = self._played_by_clock(r.id, r.audio_bytes, r.sample_rate, t)
            elif t < self._playback_end:
                # The answer is complete but (probably) still playing: stop it.
                self._out.append(BargeIn(self._playback_id))
                last = self.last_reply
                if (
                    not self.playback_tracked
                    and last is not None
                    and last.response_id == self._playback_id
                    and not last.interrupted
                ):
                    played = self._played_by_clock(
                        last.response_id, len(last.audio), last.sample_rate, t
                    )
                    self._interrupt_finished(last.response_id, played)
            self._playback_end = min(self._playback_end, t)
        if self._turn.speech_stopped_at is not None or self._turn.committed_at is not None:
            self._turn = _Turn()  # a new utterance after the previous one ended
        self._turn.item_id = e.item_id or self._turn.item_id

    def _on_speech_stopped(self, e: ev.InputAudioBufferSpeechStopped, t: float) -> None:
        self._turn.speech_stopped_at = t
        self._turn.item_id = e.item_id or self._turn.item_id

    def _on_committed(self, e: ev.InputAudioBufferCommitted, t: float) -> None:
        self._turn.committed_at = t
        self._turn.item_id = e.item_id or self._turn.item_id

    def _on_item_created(self, e: ev.ConversationItemCreated, t: float) -> None:
        item = e.item
        if item is None or item.type != "message" or item.role != "user":
            return
        text = item.text
        if not text:
            return
        if self._unacked_texts:
            key = self._unacked_texts[0]
            idx = self._history_index.get(key)
            if idx is not None and self.history[idx].text == text:
                # The echo of a text message sent by this client: now we know its id.
                self._unacked_texts.popleft()
                del self._history_index[key]
                self.history[idx] = attrs.evolve(self.history[idx], item_id=item.id)
                self._history_index[("user", item.id)] = idx
                return
        if ("user", item.id) not in self._history_index:
            self._turn.transcript = text
            self._set_user(item.id, text, True)

    def _on_user_delta(self, e: ev.ConversationItemInputAudioTranscriptionDelta, t: float) -> None:
        key = ("user", e.item_id)
        idx = self._history_index.get(key)
        if idx is not None and self.history[idx].final:
            return
        if e.text is None and e.stash is None and e.delta:
            prev = self.history[idx].text if idx is not None else ""
            text = prev + e.delta
        else:
            text = e.preview
        self._set_user(e.item_id, text, False)
        self._out.append(UserTranscript(e.item_id, text, False))

    def _on_user_completed(
        self, e: ev.ConversationItemInputAudioTranscriptionCompleted, t: float
    ) -> None:
        text = e.transcript or ""
        self._set_user(e.item_id, text, True)
        for turn in (self._turn, self._last_turn):
            if turn is not None and turn.item_id is not None and turn.item_id == e.item_id:
                turn.transcript = text
        for resp in self._open.values():
            if resp.turn.item_id is not None and resp.turn.item_id == e.item_id:
                resp.turn.transcript = text
        self._out.append(UserTranscript(e.item_id, text, True))

    def _on_response_created(self, e: ev.ResponseCreated, t: float) -> None:
        rid = e.response.id
        if rid in self._finished_set:
            return
        if rid in self._open:
            return  # announced late, after its first events: its timing is unknown
        resp = self._start(rid, t)
        resp.created_at = t

    def _start(self, rid: str | None, t: float) -> _Response:
        # The server runs one response at a time: older ones ended without response.done.
        for old in list(self._open.values()):
            self._finish(old, t, "cancelled" if old.cancel_at is not None else "incomplete")
        turn = self._turn
        if (
            turn.item_id is None
            and turn.speech_stopped_at is None
            and turn.committed_at is None
            and turn.commit_sent_at is None
            and turn.transcript is None
        ):
            # No new user input: a response after tool results (or response.create alone)
            # belongs to the previous user turn.
            if self._tool_output_sent and self._last_turn is not None:
                turn = self._last_turn
        else:
            self._turn = _Turn()
        self._tool_output_sent = False
        self._clear_pending()
        self._seq += 1
        resp = _Response(rid, self._seq, t, self.output_rate, turn)
        resp.cancel_at, self._cancel_next = self._cancel_next, None
        self._open[rid] = resp
        if turn.item_id is not None:
            self._user_item_response[turn.item_id] = self._seq
            if len(self._user_item_response) > _FINISHED_IDS_KEPT:
                del self._user_item_response[next(iter(self._user_item_response))]
        self._out.append(ResponseStarted(rid))
        return resp

    def _clear_pending(self) -> None:
        self.response_pending = False
        self._pending_create_id = None
        self._pending_since = None

    def _resp(self, rid: str | None, t: float) -> _Response | None:
        """The open response for an event, started implicitly if it was never announced."""
        resp = self._open.get(rid)
        if resp is None:
            if rid is None:
                if not self._open:
                    return None
                resp = next(reversed(self._open.values()))
            elif rid in self._finished_set:
                return None
            else:
                resp = self._start(rid, t)
        resp.last_event_at = t
        return resp

    def _on_response_event(self, e: Any, t: float) -> None:
        self._resp(e.response_id, t)

    def _on_output_item(self, e: ev.ResponseOutputItemAdded, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None or e.item is None:
            return
        self._note_item(resp, e.item)

    def _on_output_item_done(self, e: ev.ResponseOutputItemDone, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        if e.item is not None:
            self._note_item(resp, e.item)
            if e.item.type == "message":
                text = e.item.text
                if text and resp.transcript_done is None and resp.text_done is None:
                    if _is_audio(e.item) or resp.audio_bytes:
                        resp.transcript_done = text
                    else:
                        resp.text_done = text
        if resp.cancel_at is not None:
            resp.ended_hint_at = t

    def _note_item(self, resp: _Response, item: ev.Item) -> None:
        if item.type == "function_call":
            call = resp.call(item.call_id, item.id)
            call.name = item.name or call.name
            if item.arguments:
                call.arguments = item.arguments
        elif item.type == "message" and resp.item_id is None:
            resp.item_id = item.id

    def _on_transcript_delta(self, e: ev.ResponseAudioTranscriptDelta, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        resp.item_id = resp.item_id or e.item_id
        if resp.first_text_at is None:
            resp.first_text_at = t
        resp.transcript += e.delta
        self._assistant(resp, resp.transcript, e.delta, False)

    def _on_transcript_done(self, e: ev.ResponseAudioTranscriptDone, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        resp.item_id = resp.item_id or e.item_id
        resp.transcript_done = e.transcript if e.transcript is not None else resp.transcript
        self._assistant(resp, resp.transcript_done, "", True)

    def _on_text_delta(self, e: ev.ResponseTextDelta, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        resp.item_id = resp.item_id or e.item_id
        if resp.first_text_at is None:
            resp.first_text_at = t
        resp.text += e.delta
        self._assistant(resp, resp.text, e.delta, False)

    def _on_text_done(self, e: ev.ResponseTextDone, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        resp.item_id = resp.item_id or e.item_id
        resp.text_done = e.text if e.text is not None else resp.text
        self._assistant(resp, resp.text_done, "", True)

    def _assistant(self, resp: _Response, text: str, delta: str, final: bool) -> None:
        key = ("assistant", resp.seq)
        self._set_history(key, "assistant", resp.item_id, text, final)
        self._out.append(AssistantTranscript(resp.id, resp.item_id, text, delta, final))

    def _on_audio_delta(self, e: ev.ResponseAudioDelta, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None or not e.audio:
            return
        if resp.first_audio_at is None:
            resp.first_audio_at = t
        resp.audio.append(e.audio)
        resp.audio_bytes += len(e.audio)
        if resp.sample_rate > 0:
            # A player that starts at the first chunk and plays in real time ends here.
            seconds = (len(e.audio) // 2) / resp.sample_rate
            self._playback_end = max(self._playback_end, t) + seconds
            self._playback_id = resp.id

    def _on_audio_done(self, e: ev.ResponseAudioDone, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        resp.audio_done = True
        if resp.cancel_at is not None:
            resp.ended_hint_at = t

    def _on_args_delta(self, e: ev.ResponseFunctionCallArgumentsDelta, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        call = resp.call(e.call_id, e.item_id)
        call.parts.append(e.delta)

    def _on_args_done(self, e: ev.ResponseFunctionCallArgumentsDone, t: float) -> None:
        resp = self._resp(e.response_id, t)
        if resp is None:
            return
        call = resp.call(e.call_id, e.item_id)
        call.name = e.name or call.name
        call.arguments = e.arguments
        call.done = True

    def _on_response_done(self, e: ev.ResponseDone, t: float) -> None:
        r = e.response
        rid = r.id
        if rid in self._finished_set and rid not in self._open:
            log.debug("response.done for %r, which already ended", rid)
            return
        resp = self._resp(rid, t)
        if resp is None:
            return
        for item in r.output:
            self._note_item(resp, item)
        if not resp.transcript and not resp.text and resp.text_done is None:
            messages = [i for i in r.output if i.type == "message"]
            text = "".join(i.text for i in messages)
            if text:
                if resp.audio_bytes or any(_is_audio(i) for i in messages):
                    resp.transcript_done = resp.transcript_done or text
                else:
                    resp.text_done = text
        self._finish(resp, t, r.status or "completed", r)

    def _on_error(self, e: ev.ErrorEvent, t: float) -> None:
        # The protocol does not say which request an error refuses, except through the optional
        # error.event_id. Without one, the error is taken as the refusal of the oldest request
        # still waiting for its answer (the server answers client events in order): a pending
        # response.create, or a response.cancel whose response has not ended.
        err = e.error
        eid = err.event_id
        create = self._pending_since if self.response_pending else None
        cancel = self._cancel_sent_at if self._cancel_outstanding() else None
        if eid is not None:
            refuses_create = eid == self._pending_create_id and create is not None
            refuses_cancel = eid == self._cancel_event_id and cancel is not None
        else:
            refuses_create = create is not None and (cancel is None or create < cancel)
            refuses_cancel = cancel is not None and not refuses_create
        if refuses_create:
            pending_id = self._pending_create_id
            self._clear_pending()
            self._out.append(CreateFailed(pending_id, err.message or ""))
        if refuses_cancel:
            # The cancel found nothing to cancel: whatever we think is running has ended.
            self._cancel_next = None
            self._cancel_sent_at = None
            for resp in list(self._open.values()):
                if resp.cancel_at is not None:
                    self._finish(resp, t, "cancelled")

    def _cancel_outstanding(self) -> bool:
        """A response.cancel was sent and what it cancels has not ended yet."""
        if self._cancel_sent_at is None:
            return False
        return self._cancel_next is not None or any(
            r.cancel_at is not None for r in self._open.values()
        )

    # --- ending responses ---

    def _deadline(self, resp: _Response) -> float | None:
        if resp.cancel_at is None:
            return None
        deadline = max(resp.cancel_at, resp.last_event_at) + self.cancel_timeout
        if resp.ended_hint_at is not None:
            deadline = min(deadline, resp.ended_hint_at + self.cancel_grace)
        return deadline

    def _expire(self, t: float) -> None:
        for resp in list(self._open.values()):
            deadline = self._deadline(resp)
            if deadline is not None and t >= deadline:
                log.debug("response %r: no response.done after cancel; ending it", resp.id)
                self._finish(resp, t, "cancelled")

    def _finish(
        self, resp: _Response, t: float, status: str, done: ev.Response | None = None
    ) -> None:
        self._open.pop(resp.id, None)
        if resp.id not in self._finished_set:
            if len(self._finished) == self._finished.maxlen:
                self._finished_set.discard(self._finished[0])
            self._finished.append(resp.id)
            self._finished_set.add(resp.id)
        audio = b"".join(resp.audio)
        resp.audio = []
        transcript = resp.transcript_done if resp.transcript_done is not None else resp.transcript
        text = resp.text_done if resp.text_done is not None else resp.text
        calls = tuple(
            ToolCall(
                call_id=c.call_id or c.item_id or "",
                name=c.name or "",
                arguments=c.arguments if c.arguments is not None else "".join(c.parts),
                response_id=resp.id,
                item_id=c.item_id,
            )
            for c in resp.calls.values()
        )
        usage = done.usage if done is not None else None
        cost, over_budget = self.meter.charge(usage) if self.meter else (None, False)
        metrics = TurnMetrics(
            response_id=resp.id,
            status=status,
            speech_stopped_at=resp.turn.speech_stopped_at,
            committed_at=resp.turn.committed_at or resp.turn.commit_sent_at,
            response_created_at=resp.created_at,
            first_text_at=resp.first_text_at,
            first_audio_at=resp.first_audio_at,
            done_at=t,
            audio_bytes=len(audio),
            sample_rate=resp.sample_rate,
            usage=usage,
        )
        reply = Reply(
            response_id=resp.id,
            status=status,
            text=text or transcript,
            transcript=transcript,
            audio=audio,
            sample_rate=resp.sample_rate,
            usage=usage,
            metrics=metrics,
            tool_calls=calls,
            user_transcript=resp.turn.transcript,
            response=done,
            cost=cost,
        )
        if resp.interrupted_at is not None:
            played = resp.played_ms or 0.0
            reply = attrs.evolve(
                reply,
                interrupted=True,
                played_ms=played,
                heard_transcript=heard_prefix(transcript or text, played, reply.duration * 1000),
            )
        final_text = text or transcript
        key = ("assistant", resp.seq)
        if final_text or key in self._history_index:
            self._set_history(
                key,
                "assistant",
                resp.item_id,
                final_text,
                True,
                interrupted=reply.interrupted,
                heard_text=reply.heard_transcript,
            )
        self._recent.pop(resp.id, None)
        self._recent[resp.id] = (reply, resp.seq)
        if len(self._recent) > _RECENT_REPLIES_KEPT:
            del self._recent[next(iter(self._recent))]
        self._last_turn = resp.turn
        self.metrics.append(metrics)
        if self.max_history is not None and len(self.metrics) > self.max_history:
            del self.metrics[: len(self.metrics) - self.max_history]
        self.last_reply = reply
        self._out.append(ResponseFinished(reply))
        if reply.interrupted:
            self._out.append(ReplyInterrupted(reply))
        if calls and status not in ("cancelled", "failed"):
            self._out.append(ToolCallsReady(resp.id, calls))
        if over_budget and self.meter is not None and self.meter.budget is not None:
            self._out.append(BudgetExceeded(self.meter.total, self.meter.budget, resp.id))

    # --- history ---

    def _set_history(
        self,
        key: tuple[str, Any],
        role: str,
        item_id: str | None,
        text: str,
        final: bool,
        *,
        before: tuple[str, Any] | None = None,
        interrupted: bool = False,
        heard_text: str | None = None,
    ) -> None:
        entry = HistoryEntry(
            role=role,
            item_id=item_id,
            text=text,
            final=final,
            interrupted=interrupted,
            heard_text=heard_text,
        )
        idx = self._history_index.get(key)
        if idx is not None:
            self.history[idx] = entry
            return
        pos = len(self.history)
        if before is not None:
            # A user transcript that arrives after the answer started goes before that answer.
            pos = self._history_index.get(before, pos)
        self.history.insert(pos, entry)
        if pos != len(self.history) - 1:
            self._history_index = {
                k: (i + 1 if i >= pos else i) for k, i in self._history_index.items()
            }
        self._history_index[key] = pos
        if self.max_history is not None and len(self.history) > self.max_history:
            self._trim_history(len(self.history) - self.max_history)

    def _trim_history(self, drop: int) -> None:
        """Forget the ``drop`` oldest lines (and the keys that pointed at them)."""
        del self.history[:drop]
        self._history_index = {k: i - drop for k, i in self._history_index.items() if i >= drop}
        while self._unacked_texts and self._unacked_texts[0] not in self._history_index:
            self._unacked_texts.popleft()

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
        new.metrics = self.metrics
        return new

    def _set_user(self, item_id: str | None, text: str, final: bool) -> None:
        seq = self._user_item_response.get(item_id) if item_id is not None else None
        before = ("assistant", seq) if seq is not None else None
        self._set_history(("user", item_id), "user", item_id, text, final, before=before)


_HANDLERS: dict[type, Callable[[Conversation, Any, float], None]] = {
    ev.SessionCreated: Conversation._on_session_created,
    ev.SessionUpdated: Conversation._on_session_updated,
    ev.InputAudioBufferSpeechStarted: Conversation._on_speech_started,
    ev.InputAudioBufferSpeechStopped: Conversation._on_speech_stopped,
    ev.InputAudioBufferCommitted: Conversation._on_committed,
    ev.ConversationItemCreated: Conversation._on_item_created,
    ev.ConversationItemInputAudioTranscriptionDelta: Conversation._on_user_delta,
    ev.ConversationItemInputAudioTranscriptionCompleted: Conversation._on_user_completed,
    ev.ResponseCreated: Conversation._on_response_created,
    ev.ResponseDone: Conversation._on_response_done,
    ev.ResponseOutputItemAdded: Conversation._on_output_item,
    ev.ResponseOutputItemDone: Conversation._on_output_item_done,
    ev.ResponseAudioTranscriptDelta: Conversation._on_transcript_delta,
    ev.ResponseAudioTranscriptDone: Conversation._on_transcript_done,
    ev.ResponseAudioDelta: Conversation._on_audio_delta,
    ev.ResponseAudioDone: Conversation._on_audio_done,
    ev.ResponseTextDelta: Conversation._on_text_delta,
    ev.ResponseTextDone: Conversation._on_text_done,
    ev.ResponseFunctionCallArgumentsDelta: Conversation._on_args_delta,
    ev.ResponseFunctionCallArgumentsDone: Conversation._on_args_done,
    ev.ResponseContentPartAdded: Conversation._on_response_event,
    ev.ResponseContentPartDone: Conversation._on_response_event,
    ev.ErrorEvent: Conversation._on_error,
}
