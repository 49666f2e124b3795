"""The simulated input audio buffer: appends, server VAD, commits and clears, the images of the
turn, and the user's transcript."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import limits
from ..audio import jpeg_size
from ..config import UnsetType
from ..events import (
    ContentPart,
    ConversationItemCreated,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ErrorDetail,
    InputAudioBufferCleared,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    Item,
    new_id,
)
from ._behaviour import Behaviour
from ._conversation import ITEM_OBJECT, Conversation, UserTurn
from ._outbox import Outbox
from ._responder import Image
from ._session_state import SessionState
from ._vad import EnergyVAD

__all__ = ["AudioInput", "Transcriber", "default_transcriber"]

log = logging.getLogger("dashscope_rt.testing")

Transcriber = Callable[[bytes, int], str]
"""(committed PCM16LE, sample rate) -> transcript."""


def default_transcriber(pcm: bytes, rate: int) -> str:
    """Without a script the simulator cannot know the words; it says how much it heard."""
    return f"[{len(pcm) / 2 / rate:.1f} s of speech]"


class AudioInput:
    """The input buffers of one session and what the service says about them.

    ``on_speech_started(now)`` runs after ``speech_started`` went out (barge-in);
    ``on_speech_committed(now)`` after a VAD turn was committed (auto-response).
    """

    def __init__(
        self,
        state: SessionState,
        behaviour: Behaviour,
        outbox: Outbox,
        conversation: Conversation,
        transcriber: Transcriber,
        on_speech_started: Callable[[float], None],
        on_speech_committed: Callable[[float], None],
    ) -> None:
        self.state = state
        self.behaviour = behaviour
        self.outbox = outbox
        self.conversation = conversation
        self.transcriber = transcriber
        self._on_speech_started = on_speech_started
        self._on_speech_committed = on_speech_committed
        self.any_audio = False
        """The client has sent audio (the input rate is then fixed)."""
        self._buffer = bytearray()
        self._buffer_start_ms = 0.0
        self._total_ms = 0.0
        self._since_commit = 0
        self._images: list[Image] = []
        self._speech_start_ms: int | None = None
        self._speech_item: str | None = None
        self._vad: EnergyVAD | None = None
        self.reconfigure()

    @property
    def _rate(self) -> int:
        return self.state.input_rate

    def reconfigure(self) -> None:
        """Follow the session's turn detection (after ``session.update``); keeps the position."""
        vad = self.state.vad
        if vad is None:
            self._vad = None
            return
        pos = self._vad.position_ms if self._vad is not None else 0
        defaults = limits.SERVER_VAD_DEFAULTS
        threshold, silence = vad.threshold, vad.silence_duration_ms
        self._vad = EnergyVAD(
            rate=self._rate,
            threshold=defaults["threshold"] if isinstance(threshold, UnsetType) else threshold,
            silence_duration_ms=(
                defaults["silence_duration_ms"] if isinstance(silence, UnsetType) else silence
            ),
            min_speech_ms=self.behaviour.vad_min_speech_ms,
        )
        self._vad._pos_ms = pos
        self._speech_start_ms = None

    # --- client events ------------------------------------------------------------------

    def append(self, pcm: bytes, eid: str | None, now: float) -> None:
        """``input_audio_buffer.append``."""
        limit = self.behaviour.max_append_bytes
        if len(pcm) > limit:
            self.outbox.error(
                now,
                "invalid_request_error",
                "invalid_value",
                f"Audio in one input_audio_buffer.append exceeds {limit / (1024 * 1024):g} MiB.",
                "audio",
                eid,
            )
            return
        if self.state.input_is_wav and pcm[:4] == b"RIFF":
            idx = pcm.find(b"data")
            pcm = pcm[idx + 8 :] if idx >= 0 else b""
        pcm = pcm[: len(pcm) // 2 * 2]
        if not pcm:
            return
        self.any_audio = True
        self._since_commit += len(pcm)
        self._buffer.extend(pcm)
        self._total_ms += len(pcm) / 2 / self._rate * 1000
        if self._vad is None:
            return
        for vev in self._vad.feed(pcm):
            if vev.kind == "start":
                self._speech_started(vev.ms, now)
            else:
                self._speech_stopped(vev.ms, now)
        if self._speech_start_ms is None:
            self._trim_buffer()

    def commit(self, eid: str | None, now: float) -> None:
        """``input_audio_buffer.commit`` (manual mode)."""
        if self._vad is not None:
            err = self.behaviour.commit_in_vad_error
            if err is None:
                err = self.state.model.family.startswith("qwen3.5")
            if err:
                self.outbox.error(
                    now, "server_error", "internal_error", "Internal service error: null", None, eid
                )
                return
        if not self._buffer:
            self.outbox.error(
                now,
                "invalid_request_error",
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: the buffer is empty.",
                None,
                eid,
            )
            return
        pcm = bytes(self._buffer)
        self._reset_buffer()
        item = self._speech_item or new_id("item_")
        self._speech_item = None
        self._commit(pcm, item, now, transcribe=self.behaviour.transcribe_manual_commits)

    def clear(self, now: float) -> None:
        """``input_audio_buffer.clear``."""
        self._reset_buffer()
        if self.behaviour.clear_clears_images:
            self._images = []
        self.outbox.emit(now, InputAudioBufferCleared())

    def add_image(self, jpeg: bytes, eid: str | None, now: float) -> None:
        """``input_image_buffer.append`` (the JPEG, decoded from Base64)."""
        b, model = self.behaviour, self.state.model

        def refuse(code: str, message: str) -> None:
            self.outbox.error(now, "invalid_request_error", code, message, "image", eid)

        if not model.video:
            refuse("unsupported_event", f"Image input is not supported by {model.name}.")
            return
        size = limits.base64_size(len(jpeg)) if b.image_limit_on_base64 else len(jpeg)
        if size > b.image_max_bytes:
            what = "after Base64 encoding" if b.image_limit_on_base64 else "before Base64 encoding"
            refuse(
                "invalid_value",
                f"Image too large: {size} bytes {what}; the limit is {b.image_max_bytes} bytes.",
            )
            return
        dims = jpeg_size(jpeg)
        if dims is None:
            refuse("invalid_value", "Invalid image format: only JPEG/JPG is supported.")
            return
        if self._since_commit <= 0:
            refuse("invalid_value", "Error append image before append audio.")
            return
        self._images.append(Image(jpeg, dims[0], dims[1]))

    # --- VAD ----------------------------------------------------------------------------

    def _reset_buffer(self) -> None:
        self._buffer.clear()
        self._buffer_start_ms = self._total_ms
        self._since_commit = 0
        if self._vad is not None:
            self._vad.reset()
        self._speech_start_ms = None

    def _bytes_at(self, ms: float) -> int:
        off = int((ms - self._buffer_start_ms) * self._rate / 1000) * 2
        return max(0, min(len(self._buffer), off))

    def _padding_ms(self) -> int:
        vad = self.state.vad
        pad = vad.prefix_padding_ms if vad is not None else None
        return int(pad if isinstance(pad, int) else limits.SERVER_VAD_DEFAULTS["prefix_padding_ms"])

    def _trim_buffer(self) -> None:
        keep_ms = self._padding_ms() + 200
        total_ms = self._buffer_start_ms + len(self._buffer) / 2 / self._rate * 1000
        if total_ms - self._buffer_start_ms > keep_ms * 4:
            cut = self._bytes_at(total_ms - keep_ms)
            del self._buffer[:cut]
            self._buffer_start_ms += cut // 2 * 1000 / self._rate

    def _speech_started(self, ms: int, now: float) -> None:
        self._speech_start_ms = ms
        self._speech_item = new_id("item_")
        self.outbox.emit(
            now, InputAudioBufferSpeechStarted(audio_start_ms=ms, item_id=self._speech_item)
        )
        self._on_speech_started(now)

    def _speech_stopped(self, ms: int, now: float) -> None:
        item_id = self._speech_item or new_id("item_")
        start = self._speech_start_ms or 0
        self.outbox.emit(now, InputAudioBufferSpeechStopped(audio_end_ms=ms, item_id=item_id))
        lo = self._bytes_at(max(0.0, start - self._padding_ms()))
        hi = self._bytes_at(ms)
        pcm = bytes(self._buffer[lo:hi])
        del self._buffer[:hi]
        self._buffer_start_ms += hi // 2 * 1000 / self._rate
        self._since_commit = len(self._buffer)
        self._speech_start_ms = None
        self._speech_item = None
        self._commit(pcm, item_id, now, transcribe=True)
        self._on_speech_committed(now)

    # --- commit and transcript ----------------------------------------------------------

    def _commit(self, pcm: bytes, item_id: str, now: float, *, transcribe: bool) -> None:
        self.outbox.emit(now, InputAudioBufferCommitted(item_id=item_id))
        item = Item(
            id=item_id,
            object=ITEM_OBJECT,
            type="message",
            status="in_progress",
            role="user",
            content=(ContentPart(type="input_audio"),),
        )
        self.outbox.emit(now, ConversationItemCreated(item=item))
        turn = UserTurn(audio_seconds=len(pcm) / 2 / self._rate, images=self._images)
        self._images = []
        self.conversation.add(turn)
        if not self.state.transcribe or not transcribe:
            try:  # not reported, but still what the "model" hears
                turn.transcript = self.transcriber(pcm, self._rate)
            except Exception:
                log.exception("transcriber failed")
            return
        try:
            text = self.transcriber(pcm, self._rate)
        except Exception as exc:
            log.warning("transcriber failed: %r", exc)
            error = ErrorDetail(code="transcription_failed", message=str(exc))
            self.outbox.emit(
                now,
                ConversationItemInputAudioTranscriptionFailed(
                    item_id=item_id, content_index=0, error=error
                ),
            )
            return
        turn.transcript = text
        self._transcript_events(item_id, text, now)

    def _transcript_events(self, item_id: str, text: str, now: float) -> None:
        deltas = self.behaviour.transcription_deltas
        if deltas is None:  # documented for qwen3.5, captured on qwen3.8
            deltas = self.state.model.family.startswith(("qwen3.5", "qwen3.8"))
        if deltas and text:
            words = text.split(" ")
            lang = "zh" if any(ord(c) > 0x2E80 for c in text) else "en"
            for i in range(1, len(words) + 1):
                self.outbox.emit(
                    now,
                    ConversationItemInputAudioTranscriptionDelta(
                        item_id=item_id,
                        content_index=0,
                        text=" ".join(words[: i - 1]) + (" " if i > 1 else ""),
                        stash=words[i - 1],
                        language=lang,
                        emotion="neutral",
                    ),
                )
        self.outbox.emit(
            now,
            ConversationItemInputAudioTranscriptionCompleted(
                item_id=item_id, content_index=0, transcript=text
            ),
        )
