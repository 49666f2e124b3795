"""The simulated service, sans-IO: client frames in, timed server events (and a close) out.

``SimulatedSession.receive(frame, now)`` decodes one client frame with the core's
:func:`~dashscope_rt.events.decode_client` and schedules the server's answer; ``poll(now)``
returns what is due; ``next_due()`` says when to poll next. Time is whatever clock the caller
passes (the server uses ``time.monotonic()``), so the engine is tested without sockets or sleeps.

This module wires the parts and owns the session-wide timers: :mod:`._session_state` (config),
:mod:`._audio_input` (buffers, VAD, transcripts), :mod:`._conversation` (items, what the model
hears), :mod:`._responses` (streaming replies), :mod:`._outbox` (the timed queue).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import check_modalities
from ..errors import InvalidInput, ProtocolError
from ..events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemCreated,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    InputImageBufferAppend,
    ResponseCancel,
    ResponseCreate,
    SessionCreated,
    SessionFinish,
    SessionFinished,
    SessionUpdate,
    SessionUpdated,
    decode_client,
)
from ..models import ModelInfo
from ._audio_input import AudioInput, Transcriber, default_transcriber
from ._behaviour import Behaviour
from ._conversation import Conversation
from ._outbox import Outbox, Outgoing
from ._responder import Responder, default_responder
from ._responses import ResponseStreamer
from ._session_state import Refusal, SessionState, modalities_message

__all__ = ["SimulatedSession"]

_INVALID = "invalid_request_error"


class SimulatedSession:
    """State machine of one simulated realtime session (one WebSocket connection)."""

    def __init__(
        self,
        model: ModelInfo,
        *,
        behaviour: Behaviour | None = None,
        responder: Responder | None = None,
        transcriber: Transcriber | None = None,
        now: float = 0.0,
        known_model: bool = True,
    ) -> None:
        self.model = model
        self.behaviour = b = behaviour or Behaviour()
        self.started_at = now
        self.finished = False
        self.outbox = Outbox(b)
        self.state = SessionState(model, b)
        self.conversation = Conversation(model, b, self.state)
        self.responses = ResponseStreamer(
            self.state, b, self.outbox, self.conversation, responder or default_responder
        )
        self.audio = AudioInput(
            self.state,
            b,
            self.outbox,
            self.conversation,
            transcriber or default_transcriber,
            on_speech_started=self._speech_started,
            on_speech_committed=self._speech_committed,
        )
        self._finish_pending = False
        self._last_activity = now
        self._proactive_at: float | None = None
        if not known_model and b.check_model:
            self.outbox.error(
                now, _INVALID, "model_not_found", f"Model not found: {model.name}", "model"
            )
            self.outbox.close(now, b.unknown_model_close_code, "Model not found")
            return
        self.outbox.emit(now, SessionCreated(session=self.state.info(created=True)))

    @property
    def closing(self) -> bool:
        """A close is queued: client frames are ignored from now on."""
        return self.outbox.closing

    @property
    def config(self) -> dict[str, Any]:
        """The effective session config, as ``session.updated`` reports it."""
        return self.state.info().to_wire()

    @property
    def active_response_id(self) -> str | None:
        active = self.responses.active
        return active.id if active is not None else None

    # --- output and timers --------------------------------------------------------------

    def next_due(self) -> float | None:
        """The clock time at which :meth:`poll` has something to return (None: only on input)."""
        cands = [t for t in (self.outbox.next_due(),) if t is not None]
        if not self.closing:
            cands.extend(t for t in self._timers() if t is not None)
        return min(cands) if cands else None

    def _timers(self) -> tuple[float | None, float | None, float | None]:
        b = self.behaviour
        idle = None
        if b.idle_timeout_s is not None and self.responses.active is None:
            idle = self._last_activity + b.idle_timeout_s
        cap = None if b.max_duration_s is None else self.started_at + b.max_duration_s
        return idle, cap, self._proactive_at

    def poll(self, now: float) -> list[Outgoing]:
        """Everything due at ``now``, in order; bookkeeping happens as events go out."""
        self._fire_timers(now)
        out: list[Outgoing] = []
        while (item := self.outbox.pop(now)) is not None:
            if item.kind == "finalize":
                self.responses.finalize(item.payload, now)
                continue
            if self.responses.on_sent(item):
                self._response_done(now)
            out.append(item.out)
            if item.kind == "close":
                self.outbox.clear()
                break
        return out

    def _fire_timers(self, now: float) -> None:
        if self.closing:
            return
        idle, cap, proactive = self._timers()
        b = self.behaviour
        if cap is not None and now >= cap:
            minutes = (b.max_duration_s or 0) / 60
            msg = f"Your session hit the maximum duration of {minutes:g} minutes."
            self.outbox.error(now, _INVALID, b.max_duration_error_code, msg)
            self.outbox.close(now, b.max_duration_close_code, msg)
        elif idle is not None and now >= idle:
            msg = (
                "Your session was closed because no response was generated for "
                f"{b.idle_timeout_s:g} seconds."
            )
            self.outbox.error(now, _INVALID, b.idle_error_code, msg)
            self.outbox.close(now, b.idle_close_code, msg)
        elif proactive is not None and now >= proactive:
            self._proactive_at = None
            if self.responses.active is None:
                self._start_response(now, None, None)

    def _response_done(self, now: float) -> None:
        self._last_activity = now
        idle_ms = self.state.idle_timeout_ms
        if idle_ms:
            self._proactive_at = now + idle_ms / 1000.0
        if self._finish_pending:
            self._finish(now)

    def _start_response(
        self, now: float, modalities: tuple[str, ...] | None, instructions: str | None
    ) -> None:
        self._proactive_at = None
        if self.responses.start(now, modalities, instructions):
            self._last_activity = now

    # --- hooks of the audio input -------------------------------------------------------

    def _speech_started(self, now: float) -> None:
        self._proactive_at = None
        vad = self.state.vad
        if self.responses.active is not None and vad is not None and vad.interrupt_response:
            self.responses.cancel(now)
            self._last_activity = now

    def _speech_committed(self, now: float) -> None:
        vad = self.state.vad
        if vad is not None and vad.create_response and self.responses.active is None:
            self._start_response(now, None, None)

    # --- input --------------------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float) -> None:
        """Handle one client frame."""
        if self.closing:
            return
        if isinstance(frame, bytes):
            self.outbox.error(
                now,
                _INVALID,
                "invalid_request",
                "Binary frames are not supported; send JSON text frames.",
            )
            return
        try:
            event = decode_client(frame)
        except ProtocolError as exc:
            self._refuse_frame(exc, now)
            return
        self.handle(event, now)

    def _refuse_frame(self, exc: ProtocolError, now: float) -> None:
        """The service's error for a client frame the core's decoder refused."""
        frame = exc.frame if isinstance(exc.frame, dict) else {}
        eid = frame.get("event_id") if isinstance(frame.get("event_id"), str) else None
        param = exc.param
        if param is None:
            self.outbox.error(now, _INVALID, "invalid_json", f"Invalid client event: {exc}")
        elif param == "type":
            self._unknown_type(frame.get("type"), eid, now)
        elif exc.missing:
            message = f"Missing required parameter: '{param}'."
            self.outbox.error(now, _INVALID, "missing_required_parameter", message, param, eid)
        else:
            message = {
                "audio": "Invalid 'audio': expected Base64-encoded audio.",
                "image": "Invalid 'image': expected a Base64-encoded JPEG.",
            }.get(param, f"Invalid '{param}': {exc}")
            if param == "response.modalities":
                message = modalities_message(frame.get("response", {}).get("modalities"))
            self.outbox.error(now, _INVALID, "invalid_value", message, param, eid)

    def _unknown_type(self, etype: Any, eid: str | None, now: float) -> None:
        message = f"Invalid event type: {etype!r}"
        self.outbox.error(now, _INVALID, "invalid_event_type", message, "type", eid)

    def _refuse(self, refusal: Refusal, eid: str | None, now: float) -> None:
        self.outbox.error(now, refusal.type, refusal.code, refusal.message, refusal.param, eid)
        if refusal.close:
            self.outbox.close(now, self.behaviour.bad_voice_close_code, refusal.message)

    def handle(self, event: ClientEvent, now: float) -> None:
        """Handle one decoded client event."""
        if self.closing or self.responses.voice_refused:
            return  # after a refused voice the connection answers nothing (protocol.md §9.2)
        if isinstance(event, SessionFinish) and self.finish_mode == "refuse":
            self._unknown_type(event.TYPE, event.event_id, now)
            return
        handler = _HANDLERS[type(event)]
        handler(self, event, event.event_id, now)

    @property
    def finish_mode(self) -> str:
        """How ``session.finish`` is answered (``Behaviour.finish``, else the model table)."""
        mode = self.behaviour.finish
        if mode is not None:
            return mode
        if self.model.session_finish is False:
            return "refuse"
        return "ignore" if self.model.session_finished_ack is False else "finished_open"

    def _on_session_update(self, event: SessionUpdate, eid: str | None, now: float) -> None:
        refusal = self.state.update(
            event.session,
            audio_in=self.audio.any_audio,
            audio_out=self.responses.audio_produced,
        )
        if refusal is not None:
            self._refuse(refusal, eid, now)
            return
        self.audio.reconfigure()
        self.outbox.emit(now, SessionUpdated(session=self.state.info()))

    def _on_append(self, event: InputAudioBufferAppend, eid: str | None, now: float) -> None:
        self.audio.append(event.audio, eid, now)

    def _on_commit(self, event: InputAudioBufferCommit, eid: str | None, now: float) -> None:
        self.audio.commit(eid, now)

    def _on_clear(self, event: InputAudioBufferClear, eid: str | None, now: float) -> None:
        self.audio.clear(now)

    def _on_image(self, event: InputImageBufferAppend, eid: str | None, now: float) -> None:
        self.audio.add_image(event.image, eid, now)

    def _on_item_create(self, event: ConversationItemCreate, eid: str | None, now: float) -> None:
        created = self.conversation.create_item(event.item)
        if isinstance(created, Refusal):
            self._refuse(created, eid, now)
        elif self.behaviour.ack_item_create:
            self.outbox.emit(now, ConversationItemCreated(item=created))

    def _on_response_create(self, event: ResponseCreate, eid: str | None, now: float) -> None:
        if self.responses.active is not None:
            message = "Conversation already has an active response"
            self.outbox.error(
                now, _INVALID, "conversation_already_has_active_response", message, None, eid
            )
            return
        modalities = event.modalities
        if modalities is not None:
            try:
                modalities = check_modalities(modalities)
            except InvalidInput:
                message = modalities_message(list(modalities))
                self.outbox.error(
                    now, _INVALID, "invalid_value", message, "response.modalities", eid
                )
                return
        self._start_response(now, modalities, event.instructions)

    def _on_cancel(self, event: ResponseCancel, eid: str | None, now: float) -> None:
        if self.responses.active is None:
            message = "Conversation has none active response"
            self.outbox.error(now, _INVALID, "response_cancel_not_active", message, None, eid)
            return
        self.responses.cancel(now)
        self._last_activity = now

    def _on_finish(self, event: SessionFinish, eid: str | None, now: float) -> None:
        if self.responses.active is not None:
            self._finish_pending = True
        else:
            self._finish(now)

    def _finish(self, now: float) -> None:
        self._finish_pending = False
        self.finished = True
        mode = self.finish_mode
        if mode.startswith("finished"):
            self.outbox.emit(now, SessionFinished())
        if mode in ("finished_close", "close"):
            self.outbox.close(now, 1000, "session finished")


_Handler = Callable[[SimulatedSession, Any, "str | None", float], None]

_HANDLERS: dict[type, _Handler] = {
    SessionUpdate: SimulatedSession._on_session_update,
    InputAudioBufferAppend: SimulatedSession._on_append,
    InputAudioBufferCommit: SimulatedSession._on_commit,
    InputAudioBufferClear: SimulatedSession._on_clear,
    InputImageBufferAppend: SimulatedSession._on_image,
    ConversationItemCreate: SimulatedSession._on_item_create,
    ResponseCreate: SimulatedSession._on_response_create,
    ResponseCancel: SimulatedSession._on_cancel,
    SessionFinish: SimulatedSession._on_finish,
}
