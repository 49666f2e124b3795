"""The probe's scripted sessions, run against a real endpoint (or the simulator).

Session ``main``: handshake, a VAD turn with the bundled speech, manual mode, a manual turn, a
text item with a client-chosen id and a text turn (models that take text), an image turn, a
long answer cancelled at its first audio, then ``session.finish`` and a wait for what answers
it. Session ``bad_voice``: a voice no model has, a cancel with nothing active (to see an error
event's shape), then a turn (to see when and how the voice is refused). Every frame is written
to a session log per session (:mod:`dashscope_rt.recording`), which the simulator replays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from ..audio import read_wav
from ..config import SessionConfig
from ..errors import RealtimeError, VoiceNotSupported
from ..models import ModelInfo
from ..reply import Reply
from ..session import Session
from ._analysis import CLIENT_ITEM_ID

__all__ = ["BAD_VOICE", "FINISH_WAIT_S", "Outcome", "Script", "Step", "bundled_speech"]

BAD_VOICE = "NoSuchVoice"
"""A voice no model has: the probe's second session asks for it."""

_ASSETS = Path(__file__).parent
_INSTRUCTIONS = "You are being tested. Answer in one short sentence."
_LONG = "Count slowly from one to fifty, one number per sentence."
FINISH_WAIT_S = 5.0


@attrs.define
class Step:
    """One scripted step: ``ok`` is None when it was skipped."""

    name: str
    ok: bool | None
    detail: str


@attrs.define
class Outcome:
    """What the script saw beyond the frames: the steps, the close after the finish, the voice."""

    steps: list[Step] = attrs.field(factory=list)
    endpoint: str = ""
    finish_closed_after_s: float | None = None
    finish_waited_s: float = FINISH_WAIT_S
    voice_refused_at: str | None = None


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _said(reply: Reply) -> str:
    audio = f", {reply.duration:.1f} s of audio" if reply.audio else ""
    return f"{reply.status}: {_short(reply.transcript or reply.text)!r}{audio}"


class Script:
    """Runs the two sessions; ``options`` go to each :class:`Session` (key, url, region...)."""

    def __init__(
        self,
        model: ModelInfo,
        out_dir: Path,
        *,
        speech: tuple[bytes, int],
        timeout: float,
        finish_wait: float,
        progress: Callable[[str], None],
        options: dict[str, Any],
    ) -> None:
        self.model = model
        self.out_dir = out_dir
        self.pcm, self.rate = speech
        self.timeout = timeout
        self.progress = progress
        self.options = options
        self.outcome = Outcome(finish_waited_s=finish_wait)

    def _step(self, name: str, run: Callable[[], str], *, skip: str | None = None) -> bool:
        if skip is not None:
            self.outcome.steps.append(Step(name, None, skip))
            self.progress(f"{name}: skipped ({skip})")
            return False
        self.progress(f"{name} ...")
        try:
            detail = run()
        except RealtimeError as exc:
            self.outcome.steps.append(Step(name, False, f"{type(exc).__name__}: {exc}"))
            self.progress(f"{name}: failed: {exc}")
            return False
        self.outcome.steps.append(Step(name, True, detail))
        self.progress(f"{name}: {detail}")
        return True

    def _session(self, name: str, config: SessionConfig) -> Session:
        s = Session(self.model, config=config, record_to=self.out_dir / name, **self.options)
        self.outcome.endpoint = self.outcome.endpoint or s.url
        return s

    # -- session "main" --------------------------------------------------------------------------

    def run_main(self) -> None:
        s = self._session("main", SessionConfig(instructions=_INSTRUCTIONS))
        try:
            if not self._step("handshake", lambda: self._connect(s)):
                return
            self._step("VAD turn (bundled speech)", lambda: self._ask(s, audio=self.pcm))
            self._step("manual mode", lambda: self._manual(s))
            self._step("manual turn", lambda: self._ask(s, audio=self.pcm))
            no_text = None if self.model.text_input else "the model takes no text input"
            self._step("text input", lambda: self._text(s), skip=no_text)
            jpeg = (_ASSETS / "still.jpg").read_bytes()
            self._step("image turn", lambda: self._ask(s, audio=self.pcm, image=jpeg))
            self._step("cancel", lambda: self._cancel(s))
            self._step("session.finish", lambda: self._finish(s))
        finally:
            s.close()

    def _connect(self, s: Session) -> str:
        t0 = time.monotonic()
        s.connect()
        return f"session {s.session_id} in {time.monotonic() - t0:.2f} s"

    def _ask(self, s: Session, **turn: Any) -> str:
        if "audio" in turn:
            turn["sample_rate"] = self.rate
        return _said(s.ask(timeout=self.timeout, **turn))

    def _manual(self, s: Session) -> str:
        s.update(SessionConfig(turn_detection=None), timeout=self.timeout)
        return "turn_detection: null accepted"

    def _text(self, s: Session) -> str:
        item = {
            "type": "message",
            "role": "user",
            "id": CLIENT_ITEM_ID,
            "content": [{"type": "input_text", "text": "Remember the word amber."}],
        }
        s.send_raw({"type": "conversation.item.create", "item": item})
        return _said(s.ask(text="Which word did I ask you to remember?", timeout=self.timeout))

    def _cancel(self, s: Session) -> str:
        first = threading.Event()
        ended: list[Reply] = []
        done = threading.Event()

        def started(_: Any) -> None:
            first.set()

        def finished(reply: Reply) -> None:
            ended.append(reply)
            done.set()

        s.on_audio_delta(started)
        s.on_text_delta(started)
        s.on_response_done(finished)
        try:
            s.create_response(instructions=_LONG)
            if not first.wait(self.timeout):
                return "no output to cancel"
            if done.is_set() or s.active_response is None:  # it all came at once
                return "the response ended before it could be cancelled"
            s.cancel_response()
            done.wait(self.timeout)
        finally:
            s.off(started)
            s.off(finished)
        return _said(ended[0]) if ended else "the response did not end"

    def _finish(self, s: Session) -> str:
        closed = threading.Event()
        s.on_close(lambda _: closed.set())
        t0 = time.monotonic()
        s.send_raw({"type": "session.finish"})
        wait = self.outcome.finish_waited_s
        if closed.wait(wait):
            self.outcome.finish_closed_after_s = time.monotonic() - t0
            info = s.close_info
            return f"the server closed ({info.code if info else '?'})"
        return f"the socket was still open after {wait:g} s"

    # -- session "bad_voice" ---------------------------------------------------------------------

    def run_bad_voice(self) -> None:
        # ``extra`` skips the SDK's own voice check: the point is to see the server's.
        config = SessionConfig(turn_detection=None, extra={"voice": BAD_VOICE})
        s = self._session("bad_voice", config)
        try:
            self._step("bad voice: handshake", lambda: self._connect_bad(s))
            if s.state != "open":
                return
            self._step("cancel with nothing active", lambda: self._idle_cancel(s))
            self._step("bad voice: first response", lambda: self._bad_turn(s))
        finally:
            s.close()

    def _connect_bad(self, s: Session) -> str:
        try:
            s.connect()
        except VoiceNotSupported:
            self.outcome.voice_refused_at = "update"
            return "refused at session.update"
        return f"voice {BAD_VOICE!r} accepted by session.update"

    def _idle_cancel(self, s: Session) -> str:
        errors: list[Exception] = []
        seen = threading.Event()

        def on_error(exc: Exception) -> None:
            errors.append(exc)
            seen.set()

        s.on_error(on_error)
        s.send_raw({"type": "response.cancel", "event_id": "probe_cancel_1"})
        seen.wait(3.0)
        return f"error: {errors[0]}" if errors else "no error within 3 s"

    def _bad_turn(self, s: Session) -> str:
        try:
            if self.model.text_input:
                reply = s.ask(text="Say hello.", timeout=self.timeout)
            else:
                reply = s.ask(audio=self.pcm, sample_rate=self.rate, timeout=self.timeout)
        except VoiceNotSupported as exc:
            self.outcome.voice_refused_at = "response"
            return f"refused: {exc.message}"
        return f"answered: {_said(reply)}"


def bundled_speech() -> tuple[bytes, int]:
    """The probe's speech (a short question) as PCM16 mono and its rate."""
    wav = read_wav(_ASSETS / "speech.wav")
    return wav.to_pcm16(), wav.sample_rate
