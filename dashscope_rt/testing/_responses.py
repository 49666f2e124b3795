"""Responses of the simulated model: the responder's reply streamed as the service streams it
(items, content parts, audio/transcript/text deltas, function calls), cancels, and usage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from ..events import (
    ContentPart,
    ConversationItemCreated,
    Item,
    Response,
    ResponseAudioDelta,
    ResponseAudioDone,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseTextDelta,
    ResponseTextDone,
    ServerEvent,
    Usage,
    new_id,
)
from ._behaviour import Behaviour
from ._conversation import ITEM_OBJECT, Conversation
from ._outbox import Outbox, Outgoing, Scheduled
from ._responder import Responder, ScriptedToolCall, arguments_json, normalize_reply
from ._session_state import SessionState
from ._speech import synthesize
from ._usage import TokenMeter, text_tokens

__all__ = ["ActiveResponse", "ResponseStreamer"]

log = logging.getLogger("dashscope_rt.testing")

RESPONSE_OBJECT: Final = "realtime.response"
_TEXT_DELTA_S = 0.05
"""Pace of text deltas in a text-only reply (seconds of "speech" per word)."""


@attrs.define
class ActiveResponse:
    """The response being generated, and how much of it went out."""

    id: str
    modalities: tuple[str, ...]
    voice: str
    status: str = "in_progress"
    text: str = ""
    sent_text: str = ""
    sent_audio_bytes: int = 0
    total_audio_bytes: int = 0
    message_item_id: str | None = None
    output: list[Item] = attrs.field(factory=list)
    input_usage: dict[str, int] = attrs.field(factory=dict)
    finished: bool = False

    @property
    def part_type(self) -> str:
        return "audio" if "audio" in self.modalities else "text"


class ResponseStreamer:
    """Starts, streams, finishes and cancels the responses of one session."""

    def __init__(
        self,
        state: SessionState,
        behaviour: Behaviour,
        outbox: Outbox,
        conversation: Conversation,
        respond: Responder,
    ) -> None:
        self.state = state
        self.model = state.model
        self.behaviour = behaviour
        self.outbox = outbox
        self.conversation = conversation
        self.respond = respond
        self.tokens = TokenMeter(state.model, behaviour)
        self.conversation_id = new_id("conv_")
        self.active: ActiveResponse | None = None
        self.audio_produced = False
        """Audio went out (the voice is then fixed)."""
        self.voice_refused = False
        """The voice was refused at a response: the connection answers nothing more."""

    def _emit(
        self, due: float, event: ServerEvent, rid: str, kind: str = "", p: Any = None
    ) -> None:
        self.outbox.emit(due, event, response_id=rid, kind=kind, payload=p)

    # --- start --------------------------------------------------------------------------

    def start(
        self, now: float, modalities: tuple[str, ...] | None, instructions: str | None
    ) -> bool:
        """Ask the responder and schedule its whole reply; False if the responder failed or
        the voice was refused."""
        if self._refuse_voice(now, modalities or self.state.modalities):
            return False
        turn = self.conversation.take_turn(instructions)
        try:
            reply = normalize_reply(self.respond(turn))
        except Exception as exc:
            log.exception("responder failed")
            message = f"Internal service error: {exc!r}"
            self.outbox.error(now, "server_error", "internal_error", message)
            return False
        declared = {
            str((t.get("function") or {}).get("name")) for t in turn.tools if isinstance(t, Mapping)
        }
        calls = [c for c in reply.tool_calls if c.name in declared]
        if len(calls) != len(reply.tool_calls):
            log.warning("responder called undeclared tools; ignored: %s", reply.tool_calls)
        resp = ActiveResponse(
            new_id("resp_"), modalities or self.state.modalities, self.state.voice
        )
        resp.input_usage = self.tokens.add_turn(turn)
        self.active = resp
        self._emit(now, ResponseCreated(response=self._response(resp)), resp.id)
        b = self.behaviour
        t0 = now + b.first_delta_latency_s

        def at(offset_s: float) -> float:
            return t0 + offset_s / b.speed if b.speed > 0 else t0

        text, index, end_s = reply.text, 0, 0.0
        max_tokens = self.state.max_tokens
        if max_tokens and text_tokens(text) > max_tokens:
            text = text[: max_tokens * 4]
            resp.status = "incomplete"
        if text or not calls:
            end_s = self._schedule_message(resp, text, now, at, index)
            index += 1
        first_call = index
        for call in calls:
            self._schedule_call(resp, call, at(end_s), index, first_call)
            index += 1
        self.conversation.history.append((turn.user_text, text))
        self.outbox.push(at(end_s), Scheduled(Outgoing(None, None, resp.id), "finalize", resp.id))
        return True

    def _refuse_voice(self, now: float, modalities: tuple[str, ...]) -> bool:
        """``Behaviour.voice_check == "response"``: a voice the model lacks fails the first
        response that speaks (captured: docs/protocol.md §9.2), then close or silence."""
        b, voice = self.behaviour, self.state.voice
        if b.voice_check != "response" or "audio" not in modalities:
            return False
        if self.model.accepts_voice(voice):
            return False
        self.voice_refused = True
        message = f"<400> InternalError.Algo.InvalidParameter: Voice '{voice}' is not supported."
        self.outbox.error(now, "invalid_request_error", "invalid_value", message)
        if b.close_on_bad_voice:
            self.outbox.close(now, b.bad_voice_close_code, message)
        return True

    def _schedule_message(
        self,
        resp: ActiveResponse,
        text: str,
        now: float,
        at: Callable[[float], float],
        index: int,
    ) -> float:
        """Schedule the message item of a reply; returns its length in (speech) seconds."""
        item_id = new_id("item_")
        resp.message_item_id, resp.text, rid = item_id, text, resp.id
        ids: dict[str, Any] = {
            "response_id": rid,
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
        }
        item = Item(
            id=item_id, object=ITEM_OBJECT, type="message", status="in_progress", role="assistant"
        )
        self._emit(
            now, ResponseOutputItemAdded(response_id=rid, output_index=index, item=item), rid
        )
        self._emit(now, ConversationItemCreated(item=item), rid)
        part = ContentPart(type=resp.part_type, text="")
        self._emit(now, ResponseContentPartAdded(**ids, part=part), rid)
        words = [w + " " for w in text.split(" ")] if text else []
        if words:
            words[-1] = words[-1][:-1]
        timeline: list[tuple[float, int, ServerEvent, str, Any]] = []
        if resp.part_type == "audio":
            rate = self.state.output_rate
            pcm = synthesize(text, rate) if text else b""
            resp.total_audio_bytes = len(pcm)
            step = max(2, rate * self.behaviour.chunk_ms // 1000 * 2)
            end = len(pcm) / 2 / rate
            for off in range(0, len(pcm), step):
                chunk = pcm[off : off + step]
                delta = ResponseAudioDelta(**ids, audio=chunk)
                timeline.append((off / 2 / rate, 1, delta, "audio", len(chunk)))
            for j, w in enumerate(words):
                said = ResponseAudioTranscriptDelta(**ids, delta=w)
                timeline.append((end * j / max(1, len(words)), 0, said, "transcript", w))
        else:
            for j, w in enumerate(words):
                timeline.append(
                    (j * _TEXT_DELTA_S, 0, ResponseTextDelta(**ids, delta=w), "transcript", w)
                )
            end = len(words) * _TEXT_DELTA_S
        timeline.sort(key=lambda x: (x[0], x[1]))
        for off_s, _, event, kind, payload in timeline:
            self._emit(at(off_s), event, rid, kind, payload)
        return end

    def _schedule_call(
        self,
        resp: ActiveResponse,
        call: ScriptedToolCall,
        due: float,
        index: int,
        first_index: int,
    ) -> None:
        item_id = new_id("item_")
        call_id = call.call_id or new_id("call_")
        self.conversation.issued_calls[call_id] = call.name
        args = arguments_json(call.arguments)
        if self.behaviour.pad_function_arguments:
            args = " " + args
        rid = resp.id
        item = Item(
            id=item_id,
            object=ITEM_OBJECT,
            type="function_call",
            status="in_progress",
            call_id=call_id,
            name=call.name,
            arguments="",
        )
        self._emit(
            due, ResponseOutputItemAdded(response_id=rid, output_index=index, item=item), rid
        )
        self._emit(due, ConversationItemCreated(item=item), rid)
        ids: dict[str, Any] = {
            "response_id": rid,
            "item_id": item_id,
            "output_index": index,
            "call_id": call_id,
        }
        if index == first_index:
            # Captured: one delta with the whole arguments, and an ``obfuscation`` string, only
            # for the first call of a response (docs/protocol.md §4.23).
            pad = {"obfuscation": new_id("")[:14]}
            self._emit(due, ResponseFunctionCallArgumentsDelta(**ids, delta=args, raw=pad), rid)
        done = ResponseFunctionCallArgumentsDone(**ids, name=call.name, arguments=args)
        self._emit(due, done, rid)
        done_item = attrs.evolve(item, status="completed", arguments=args)
        self._emit(
            due, ResponseOutputItemDone(response_id=rid, output_index=index, item=done_item), rid
        )
        resp.output.append(done_item)

    # --- the end of a response ----------------------------------------------------------

    def _response(self, resp: ActiveResponse, usage: Usage | None = None) -> Response:
        return Response(
            id=resp.id,
            object=RESPONSE_OBJECT,
            conversation_id=self.conversation_id,
            status=resp.status if resp.finished else "in_progress",
            modalities=resp.modalities,
            voice=resp.voice,
            output_audio_format=self.state.output_audio_format,
            output=tuple(resp.output) if resp.finished else (),
            usage=usage,
        )

    def _usage(self, resp: ActiveResponse, text: str, audio_bytes: int) -> Usage:
        calls = [o.arguments or "" for o in resp.output if o.type == "function_call"]
        seconds = audio_bytes / 2 / self.state.output_rate
        return self.tokens.usage(resp.input_usage, text, calls, seconds)

    def _message_done(self, resp: ActiveResponse, due: float, text: str, status: str) -> None:
        if resp.message_item_id is None:
            return
        rid, part_type = resp.id, resp.part_type
        ids: dict[str, Any] = {
            "response_id": rid,
            "item_id": resp.message_item_id,
            "output_index": 0,
            "content_index": 0,
        }
        if part_type == "audio":
            self._emit(due, ResponseAudioTranscriptDone(**ids, transcript=text), rid)
            self._emit(due, ResponseAudioDone(**ids), rid)
        else:
            self._emit(due, ResponseTextDone(**ids, text=text), rid)
        part = ContentPart(type=part_type, text=text)
        self._emit(due, ResponseContentPartDone(**ids, part=part), rid)
        # Captured: output_item.done lists the parts without their text (docs/protocol.md §4.17).
        item = Item(
            id=resp.message_item_id,
            object=ITEM_OBJECT,
            type="message",
            status=status,
            role="assistant",
            content=(ContentPart(type=part_type),),
        )
        self._emit(due, ResponseOutputItemDone(response_id=rid, output_index=0, item=item), rid)
        said = ContentPart(type=part_type, transcript=text) if part_type == "audio" else part
        resp.output.insert(0, attrs.evolve(item, content=(said,)))

    def finalize(self, response_id: str, now: float) -> None:
        """Queue the closing events of a response that ran to its end (a ``finalize`` marker)."""
        resp = self.active
        if resp is None or resp.id != response_id:
            return
        status = resp.status if resp.status != "in_progress" else "completed"
        self._message_done(
            resp, now, resp.text, "completed" if status == "completed" else "incomplete"
        )
        resp.status, resp.finished = status, True
        usage = self._usage(resp, resp.text, resp.total_audio_bytes)
        done = ResponseDone(response=self._response(resp, usage))
        self._emit(now, done, resp.id, "response_done")

    def cancel(self, now: float) -> None:
        """Stop the active response where it is (``response.cancel`` or a barge-in)."""
        resp = self.active
        if resp is None:
            return
        in_flight = self.outbox.discard(resp.id, keep_audio=self.behaviour.audio_after_cancel)
        for item in in_flight:  # already on its way: goes out before the closing events
            self.outbox.push(now, item)
            resp.sent_audio_bytes += item.payload
        resp.status, resp.finished = self.behaviour.cancelled_status, True
        self._message_done(resp, now, resp.sent_text, "incomplete")
        usage = self._usage(resp, resp.sent_text, resp.sent_audio_bytes)
        if self.behaviour.cancel_sends_response_done:
            self._emit(now, ResponseDone(response=self._response(resp, usage)), resp.id)
        self.active = None
        history = self.conversation.history
        if history:
            history[-1] = (history[-1][0], resp.sent_text)

    def on_sent(self, item: Scheduled) -> bool:
        """Note what went out; True when it was the ``response.done`` of a finished response."""
        resp = self.active
        if item.kind == "transcript" and resp is not None:
            resp.sent_text += item.payload
        elif item.kind == "audio" and resp is not None:
            resp.sent_audio_bytes += item.payload
            self.audio_produced = True
        elif item.kind == "response_done":
            self.active = None
            return True
        return False
