"""The Twilio Media Streams bridge: one phone call, one :class:`~dashscope_rt.Session`.

:meth:`TwilioBridge.serve` runs on the thread that owns the call's WebSocket (e.g. a flask-sock
route) until the call ends. The caller's audio goes to the session as it comes, decoded from
G.711 (on a qwen3.5 model set to 8 kHz it is not even resampled); the reply audio comes back
through the session's handlers, is encoded to G.711 at the call's rate and leaves through a
:class:`~dashscope_rt.telephony.Pacer`. Only the session's public API is used.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .. import events as ev
from ..audio import G711Encoder, g711_silence
from ..config import SessionConfig
from ..errors import ProtocolError, RealtimeError
from ..models import ModelInfo, get_model
from ..session import Session
from ._pacer import Pacer
from ._twilio import Connected, Dtmf, Mark, Media, Start, Stop, parse_message

__all__ = ["CallReport", "CallSocket", "SessionFactory", "TwilioBridge", "phone_config"]

log = logging.getLogger("dashscope_rt.telephony")

FRAME_MS = 20

SessionFactory = Callable[[Start], Session]
"""Makes the (unconnected) Session for a call, given the call's ``start`` message."""


class CallSocket(Protocol):
    """The WebSocket Twilio is connected to, as flask-sock / simple-websocket present it."""

    def receive(self, timeout: float | None = None) -> Any:
        """The next message (str), None after ``timeout``; raises once the socket is closed."""

    def send(self, data: Any) -> None: ...

    def close(self) -> Any: ...


@attrs.define
class CallReport:
    """What happened on one call (passed to ``on_call_end`` and returned by ``serve``)."""

    stream_sid: str = ""
    call_sid: str = ""
    end: str = ""
    """"stop" (Twilio ended the stream), "hangup" (the socket vanished), "timeout" (no message
    for ``receive_timeout`` seconds), "session" (the session closed) or "error"."""
    error: BaseException | None = None
    frames_in: int = 0
    frames_out: int = 0
    clears: int = 0
    interrupted: list[str] = attrs.field(factory=list)
    """Ids of the responses the caller barged in on."""
    heard_ms: dict[str, int] = attrs.field(factory=dict)
    """Per response id, the milliseconds of it Twilio confirmed played (by echoing our marks)."""


def phone_config(
    model: str | ModelInfo, config: SessionConfig | None = None, *, rate: int = 8000
) -> SessionConfig:
    """``config`` with 8 kHz audio both ways where the model takes it (qwen3.5), so telephone
    audio needs no resampling; other models keep 16/24 kHz and the bridge resamples.

    Rates set in ``config`` win.
    """
    info = model if isinstance(model, ModelInfo) else get_model(model)
    base = config if config is not None else SessionConfig()
    if rate in info.input_rates and rate in info.output_rates:
        return SessionConfig(input_sample_rate=rate, output_sample_rate=rate).merge(base)
    return base


class TwilioBridge:
    """Serves Twilio Media Streams calls, each with a Session from ``session_factory``.

    ``lead_ms``: how far outbound audio may run ahead of the estimated playback (more is
    safer against jitter, less makes marks more precise). ``receive_timeout``: seconds without
    any message from Twilio after which the call counts as gone (Twilio sends 50 a second).
    ``on_call_end(report)`` runs after each call, on the thread that served it.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        lead_ms: int = 60,
        receive_timeout: float = 10.0,
        on_call_end: Callable[[CallReport], Any] | None = None,
    ) -> None:
        self._factory = session_factory
        self._lead_ms = lead_ms
        self._receive_timeout = receive_timeout
        self._on_call_end = on_call_end
        self._lock = threading.Lock()
        self._active = 0

    @classmethod
    def for_model(
        cls,
        model: str,
        *,
        config: SessionConfig | None = None,
        lead_ms: int = 60,
        receive_timeout: float = 10.0,
        on_call_end: Callable[[CallReport], Any] | None = None,
        **session_options: Any,
    ) -> TwilioBridge:
        """A bridge making ``Session(model, config=phone_config(model, config), **options)``."""
        cfg = phone_config(model, config)
        Session(model, config=cfg, **session_options)  # refuse a bad config now, not per call

        def factory(start: Start) -> Session:
            return Session(model, config=cfg, **session_options)

        return cls(
            factory, lead_ms=lead_ms, receive_timeout=receive_timeout, on_call_end=on_call_end
        )

    @property
    def active_calls(self) -> int:
        """Calls being served now."""
        with self._lock:
            return self._active

    def serve(self, ws: CallSocket) -> CallReport:
        """Serve one call on ``ws`` until it ends; the session is closed when this returns."""
        call = _Call(ws, self._factory, lead_ms=self._lead_ms)
        with self._lock:
            self._active += 1
        try:
            call.run(self._receive_timeout)
        finally:
            call.close()
            with self._lock:
                self._active -= 1
        if self._on_call_end is not None:
            self._on_call_end(call.report)
        return call.report


class _Call:
    """One call's state. Reply audio is handled on the session's dispatcher thread, everything
    Twilio sends on the serving thread; the pacer owns the socket's sending side."""

    def __init__(self, ws: CallSocket, factory: SessionFactory, *, lead_ms: int) -> None:
        self._ws = ws
        self._factory = factory
        self._lead_ms = lead_ms
        self.report = CallReport()
        self._session: Session | None = None
        self._pacer: Pacer | None = None
        self._encoder: G711Encoder | None = None
        self._start: Start | None = None
        self._ended = threading.Event()
        # Dispatcher-thread state (reply audio):
        self._carry = b""
        self._response_id: str | None = None
        self._cut: set[str] = set()
        self._response_ms: dict[str, int] = {}
        # Shared with the serving thread (marks):
        self._marks_lock = threading.Lock()
        self._marks: dict[str, tuple[str, int]] = {}
        """Mark name -> (response id, ms of that response played once it is echoed)."""
        self._mark_seq = 0

    # -- serving thread ----------------------------------------------------------------------

    def run(self, receive_timeout: float) -> None:
        while not self._ended.is_set():
            try:
                frame = self._ws.receive(timeout=receive_timeout)
            except Exception as exc:
                log.debug("call %s: socket gone: %r", self.report.stream_sid, exc)
                self._set_end("hangup")
                return
            if frame is None:
                self._set_end("timeout")
                return
            try:
                message = parse_message(frame)
            except ProtocolError as exc:
                log.warning(
                    "call %s: ignoring a malformed message: %s", self.report.stream_sid, exc
                )
                continue
            try:
                if not self._handle(message):
                    return
            except RealtimeError as exc:  # the session has ended (append_audio refused)
                log.info("call %s: the session ended: %s", self.report.stream_sid, exc)
                self._set_end("session", exc)
                return

    def _handle(self, message: Any) -> bool:
        """Act on one message; False when the call is over."""
        if isinstance(message, Media):
            if self._session is not None and self._start is not None:
                self.report.frames_in += 1
                self._session.append_audio(
                    message.payload, self._start.sample_rate, encoding=self._start.encoding
                )
        elif isinstance(message, Mark):
            self._heard(message.name)
        elif isinstance(message, Start):
            try:
                self._open(message)
            except RealtimeError as exc:
                log.error("call %s: no session: %s", message.stream_sid, exc)
                self._set_end("error", exc)
                return False
        elif isinstance(message, Stop):
            self._set_end("stop")
            return False
        elif isinstance(message, Dtmf):
            log.info("call %s: caller pressed %s", self.report.stream_sid, message.digit)
        elif not isinstance(message, Connected):
            log.debug("call %s: ignoring %r", self.report.stream_sid, message)
        return True

    def _open(self, start: Start) -> None:
        if self._session is not None:
            log.warning("call %s: a second start message is ignored", start.stream_sid)
            return
        self._start = start
        self.report.stream_sid, self.report.call_sid = start.stream_sid, start.call_sid
        session = self._factory(start)
        self._session = session
        session.on(ev.ResponseCreated, self._on_response_created)
        session.on_audio_delta(self._on_audio)
        session.on(ev.ResponseAudioDone, self._on_audio_done)
        session.on_speech_started(self._on_speech_started)
        session.on_close(self._on_session_closed)
        # Ready before the first reply audio can arrive.
        self._encoder = G711Encoder(
            session.output_rate, start.encoding, output_rate=start.sample_rate
        )
        self._pacer = Pacer(
            self._ws.send,
            start.stream_sid,
            frame_bytes=start.sample_rate * FRAME_MS // 1000,
            frame_ms=FRAME_MS,
            lead_ms=self._lead_ms,
            on_error=lambda exc: self._set_end("hangup"),
        )
        if session.state == "new":
            session.connect()
        self._pacer.start()
        log.info(
            "call %s: session %s (%d Hz in, %d Hz out; caller %s at %d Hz)",
            start.stream_sid,
            session.session_id,
            session.input_rate,
            session.output_rate,
            start.encoding,
            start.sample_rate,
        )

    def _heard(self, name: str) -> None:
        with self._marks_lock:
            entry = self._marks.pop(name, None)
        if entry is not None:
            rid, ms = entry
            self.report.heard_ms[rid] = max(ms, self.report.heard_ms.get(rid, 0))

    def _set_end(self, why: str, error: BaseException | None = None) -> None:
        if not self._ended.is_set():
            self.report.end, self.report.error = why, error
            self._ended.set()

    def close(self) -> None:
        if not self.report.end:
            self._set_end("error")
        if self._pacer is not None:
            self._pacer.stop()
            self.report.frames_out = self._pacer.frames_sent
        if self._session is not None:
            self._session.close()
        with contextlib.suppress(Exception):  # already closed by the peer
            self._ws.close()

    # -- dispatcher thread (session handlers) ------------------------------------------------

    def _on_response_created(self, event: ev.ResponseCreated) -> None:
        self._response_id = event.response.id

    def _on_audio(self, event: ev.ResponseAudioDelta) -> None:
        rid = event.response_id or self._response_id or ""
        if rid in self._cut or self._encoder is None:
            return  # the rest of a reply the caller interrupted
        self._queue_audio(rid, self._carry + self._encoder.encode(event.audio), final=False)

    def _on_audio_done(self, event: ev.ResponseAudioDone) -> None:
        rid = event.response_id or self._response_id or ""
        if rid in self._cut or self._encoder is None:
            return
        self._queue_audio(rid, self._carry + self._encoder.flush(), final=True)

    def _queue_audio(self, rid: str, data: bytes, *, final: bool) -> None:
        pacer, start = self._pacer, self._start
        if pacer is None or start is None:
            return
        fb = start.sample_rate * FRAME_MS // 1000
        if final and len(data) % fb:
            data += g711_silence(start.encoding, fb - len(data) % fb)
        whole = len(data) - len(data) % fb
        self._carry = data[whole:]
        frames = pacer.put_audio(data[:whole])
        if not frames:
            return
        ms = self._response_ms.get(rid, 0) + frames * FRAME_MS
        self._response_ms[rid] = ms
        with self._marks_lock:
            self._mark_seq += 1
            name = f"{rid}#{self._mark_seq}"
            self._marks[name] = (rid, ms)
        pacer.put_mark(name)

    def _on_speech_started(self, event: ev.InputAudioBufferSpeechStarted) -> None:
        pacer = self._pacer
        if pacer is None:
            return
        with self._marks_lock:
            unheard = bool(self._marks)
        rid = self._response_id
        if rid is not None:
            self._cut.add(rid)  # nothing more of it, even deltas already on the way
        if self._encoder is not None:
            self._encoder.reset()
        self._carry = b""
        if not (pacer.pending or unheard):
            return  # the caller heard the whole reply: nothing to interrupt
        pacer.clear()
        with self._marks_lock:
            self._marks.clear()  # Twilio echoes cleared marks too; they were not heard
        self.report.clears += 1
        if rid is not None:
            self.report.interrupted.append(rid)
        log.info(
            "call %s: caller barged in after %d ms of %s",
            self.report.stream_sid,
            self.report.heard_ms.get(rid or "", 0),
            rid,
        )

    def _on_session_closed(self, closed: Any) -> None:
        if self._ended.is_set():
            return  # the call ended first and closed the session
        self._set_end("session", getattr(closed, "error", None))
        with contextlib.suppress(Exception):
            self._ws.close()  # ends the stream; Twilio moves on to the next TwiML verb
