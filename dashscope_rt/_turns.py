"""A user turn and the response that answers it, as the conversation state gathers them.

:class:`UserTurns` follows the user's input (speech, commit, transcript) up to the response
that answers it. :class:`OpenResponse` accumulates a response's events (text, transcript, audio,
tool calls and their timing) and builds the :class:`~dashscope_rt.reply.Reply` when it ends.
Sans-IO; parts of :class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from . import events as ev
from ._heard import heard_prefix
from .reply import Reply, ToolCall, TurnMetrics

__all__ = ["OpenResponse", "Said", "Turn", "UserTurns"]

Said = tuple[str, str, bool]
"""The assistant's text so far, the new piece, and whether it is final."""


class Turn:
    """What is known about the user input that leads to the next response."""

    __slots__ = ("commit_sent_at", "committed_at", "item_id", "speech_stopped_at", "transcript")

    def __init__(self) -> None:
        self.item_id: str | None = None
        self.speech_stopped_at: float | None = None
        self.committed_at: float | None = None
        self.commit_sent_at: float | None = None
        self.transcript: str | None = None

    @property
    def empty(self) -> bool:
        """No user input is known (a response after tool results, or response.create alone)."""
        return (
            self.item_id is None
            and self.speech_stopped_at is None
            and self.committed_at is None
            and self.commit_sent_at is None
            and self.transcript is None
        )


class UserTurns:
    """The user's turn in progress, and the last one answered."""

    def __init__(self) -> None:
        self.current = Turn()
        self.last: Turn | None = None
        self.tool_output_sent = False

    def speech_started(self, item_id: str | None) -> None:
        if self.current.speech_stopped_at is not None or self.current.committed_at is not None:
            self.current = Turn()  # a new utterance after the previous one ended
        self.current.item_id = item_id or self.current.item_id

    def speech_stopped(self, item_id: str | None, t: float) -> None:
        self.current.speech_stopped_at = t
        self.current.item_id = item_id or self.current.item_id

    def committed(self, item_id: str | None, t: float) -> None:
        self.current.committed_at = t
        self.current.item_id = item_id or self.current.item_id

    def transcribed(self, item_id: str | None, text: str, answering: Iterable[Turn]) -> None:
        """The final transcript of ``item_id``, for whichever turn it belongs to."""
        for turn in (self.current, self.last, *answering):
            if turn is not None and turn.item_id is not None and turn.item_id == item_id:
                turn.transcript = text

    def for_response(self) -> Turn:
        """The turn a response that starts now answers (a new turn begins)."""
        turn = self.current
        if turn.empty:
            # No new user input: a response after tool results (or response.create alone)
            # belongs to the previous user turn.
            if self.tool_output_sent and self.last is not None:
                turn = self.last
        else:
            self.current = Turn()
        self.tool_output_sent = False
        return turn


class _Call:
    __slots__ = ("arguments", "call_id", "done", "item_id", "name", "parts")

    def __init__(self, call_id: str | None, item_id: str | None) -> None:
        self.call_id = call_id
        self.item_id = item_id
        self.name: str | None = None
        self.parts: list[str] = []
        self.arguments: str | None = None
        self.done = False


def _is_audio(item: ev.Item) -> bool:
    return any(p.type == "audio" for p in item.content)


class OpenResponse:
    """A response in progress: what arrived so far and when."""

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

    def __init__(self, rid: str | None, seq: int, now: float, sample_rate: int, turn: Turn) -> None:
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
        """The tool call with this call id or item id (created on first sight)."""
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

    # --- events of the response ---

    def apply(self, e: Any, t: float) -> Said | None:
        """Account for a ``response.*`` event of this response; what the assistant said, if
        the event changed it."""
        handler = _APPLY.get(type(e))
        return handler(self, e, t) if handler is not None else None

    def note_item(self, item: ev.Item) -> None:
        """An output item: a tool call's name and arguments, or the message's id."""
        if item.type == "function_call":
            call = self.call(item.call_id, item.id)
            call.name = item.name or call.name
            if item.arguments:
                call.arguments = item.arguments
        elif item.type == "message" and self.item_id is None:
            self.item_id = item.id

    def _on_item_added(self, e: ev.ResponseOutputItemAdded, t: float) -> None:
        if e.item is not None:
            self.note_item(e.item)

    def _on_item_done(self, e: ev.ResponseOutputItemDone, t: float) -> None:
        item = e.item
        if item is not None:
            self.note_item(item)
            if item.type == "message":
                # A message's text stands in for missing done events.
                text = item.text
                if text and self.transcript_done is None and self.text_done is None:
                    if _is_audio(item) or self.audio_bytes:
                        self.transcript_done = text
                    else:
                        self.text_done = text
        if self.cancel_at is not None:
            self.ended_hint_at = t

    def _on_transcript_delta(self, e: ev.ResponseAudioTranscriptDelta, t: float) -> Said:
        self.item_id = self.item_id or e.item_id
        if self.first_text_at is None:
            self.first_text_at = t
        self.transcript += e.delta
        return self.transcript, e.delta, False

    def _on_transcript_done(self, e: ev.ResponseAudioTranscriptDone, t: float) -> Said:
        self.item_id = self.item_id or e.item_id
        self.transcript_done = e.transcript if e.transcript is not None else self.transcript
        return self.transcript_done, "", True

    def _on_text_delta(self, e: ev.ResponseTextDelta, t: float) -> Said:
        self.item_id = self.item_id or e.item_id
        if self.first_text_at is None:
            self.first_text_at = t
        self.text += e.delta
        return self.text, e.delta, False

    def _on_text_done(self, e: ev.ResponseTextDone, t: float) -> Said:
        self.item_id = self.item_id or e.item_id
        self.text_done = e.text if e.text is not None else self.text
        return self.text_done, "", True

    def add_audio(self, audio: bytes, t: float) -> None:
        """A ``response.audio.delta``'s PCM (the conversation routes those itself: the hot
        path)."""
        if self.first_audio_at is None:
            self.first_audio_at = t
        self.audio.append(audio)
        self.audio_bytes += len(audio)

    def _on_audio_done(self, e: ev.ResponseAudioDone, t: float) -> None:
        self.audio_done = True
        if self.cancel_at is not None:
            self.ended_hint_at = t

    def _on_args_delta(self, e: ev.ResponseFunctionCallArgumentsDelta, t: float) -> None:
        self.call(e.call_id, e.item_id).parts.append(e.delta)

    def _on_args_done(self, e: ev.ResponseFunctionCallArgumentsDone, t: float) -> None:
        call = self.call(e.call_id, e.item_id)
        call.name = e.name or call.name
        call.arguments = e.arguments
        call.done = True

    def absorb_done(self, response: ev.Response) -> None:
        """``response.done``: its output items, and their text if no delta brought any."""
        for item in response.output:
            self.note_item(item)
        if not self.transcript and not self.text and self.text_done is None:
            messages = [i for i in response.output if i.type == "message"]
            text = "".join(i.text for i in messages)
            if text:
                if self.audio_bytes or any(_is_audio(i) for i in messages):
                    self.transcript_done = self.transcript_done or text
                else:
                    self.text_done = text

    # --- the end ---

    def to_reply(
        self, t: float, status: str, done: ev.Response | None, cost: float | None
    ) -> Reply:
        """The finished :class:`Reply` (its audio is moved out of this object)."""
        audio = b"".join(self.audio)
        self.audio = []
        transcript = self.transcript_done if self.transcript_done is not None else self.transcript
        text = self.text_done if self.text_done is not None else self.text
        calls = tuple(
            ToolCall(
                call_id=c.call_id or c.item_id or "",
                name=c.name or "",
                arguments=c.arguments if c.arguments is not None else "".join(c.parts),
                response_id=self.id,
                item_id=c.item_id,
            )
            for c in self.calls.values()
        )
        usage = done.usage if done is not None else None
        metrics = TurnMetrics(
            response_id=self.id,
            status=status,
            speech_stopped_at=self.turn.speech_stopped_at,
            committed_at=self.turn.committed_at or self.turn.commit_sent_at,
            response_created_at=self.created_at,
            first_text_at=self.first_text_at,
            first_audio_at=self.first_audio_at,
            done_at=t,
            audio_bytes=len(audio),
            sample_rate=self.sample_rate,
            usage=usage,
        )
        reply = Reply(
            response_id=self.id,
            status=status,
            text=text or transcript,
            transcript=transcript,
            audio=audio,
            sample_rate=self.sample_rate,
            usage=usage,
            metrics=metrics,
            tool_calls=calls,
            user_transcript=self.turn.transcript,
            response=done,
            cost=cost,
        )
        if self.interrupted_at is not None:
            played = self.played_ms or 0.0
            reply = attrs.evolve(
                reply,
                interrupted=True,
                played_ms=played,
                heard_transcript=heard_prefix(transcript or text, played, reply.duration * 1000),
            )
        return reply


_APPLY: dict[type, Callable[[OpenResponse, Any, float], Said | None]] = {
    ev.ResponseOutputItemAdded: OpenResponse._on_item_added,
    ev.ResponseOutputItemDone: OpenResponse._on_item_done,
    ev.ResponseAudioTranscriptDelta: OpenResponse._on_transcript_delta,
    ev.ResponseAudioTranscriptDone: OpenResponse._on_transcript_done,
    ev.ResponseTextDelta: OpenResponse._on_text_delta,
    ev.ResponseTextDone: OpenResponse._on_text_done,
    ev.ResponseAudioDone: OpenResponse._on_audio_done,
    ev.ResponseFunctionCallArgumentsDelta: OpenResponse._on_args_delta,
    ev.ResponseFunctionCallArgumentsDone: OpenResponse._on_args_done,
}
