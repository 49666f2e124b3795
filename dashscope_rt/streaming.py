"""Stream recorded audio into a session as a live speaker would, then wait for the reply.

:func:`stream_audio` is what ``dashscope-rt chat --wav`` does: it sends a WAV file or an array in
100 ms chunks at real-time pace (or faster), then keeps the line live with silence until the
server's voice detection ends the turn, and returns the :class:`~dashscope_rt.conversation.Reply`
to that turn. In manual mode (``turn_detection=None``) it commits and asks for the answer
instead. It uses only :class:`~dashscope_rt.session.Session`'s public methods.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from .audio import WavAudio, read_wav
from .config import UNSET, VAD_DEFAULTS
from .errors import InvalidInput, NoSpeechHeard, RealtimeError, SessionClosed, Timeout
from .reply import Reply

if TYPE_CHECKING:
    from .session import Session

__all__ = ["CHUNK_MS", "TAIL_EXTRA_MS", "stream_audio"]

CHUNK_MS = 100
"""Audio per ``append_audio`` call, like a microphone delivering 100 ms blocks."""
TAIL_EXTRA_MS = 400
"""Silence sent beyond the VAD's ``silence_duration_ms`` when not paced."""


ChunkCallback = Callable[[Any, float], None]


def stream_audio(
    session: Session,
    audio: Any,
    *,
    sample_rate: int | None = None,
    channels: int = 1,
    speed: float = 1.0,
    timeout: float = 60.0,
    no_speech_timeout: float = 4.0,
    on_chunk: ChunkCallback | None = None,
) -> Reply:
    """Stream ``audio`` as one spoken turn at ``speed`` × real time and return the reply.

    ``audio`` is a path to a WAV file, a :class:`~dashscope_rt.audio.WavAudio`, PCM16LE bytes
    or an int16/float32 array (``(frames, channels)`` or interleaved) at ``sample_rate``
    (default: the session's input rate). ``speed=0`` sends everything at once.

    Voice detection (the default): after the audio, silence goes on at the same pace until the
    reply is in; unpaced, ``silence_duration_ms`` + 400 ms of it is sent at once. Manual mode:
    the audio is committed and ``response.create`` sent. Tool calls on the way are run (for
    ``tools=``) and the reply after them is returned, with every call in ``Reply.tool_calls``.

    ``on_chunk(chunk, seconds_sent)`` is called after each chunk of the audio (for a level
    meter). If this call is interrupted (Ctrl+C, or an exception), the half-sent turn is dropped
    on the server (``input_audio_buffer.clear``) and a response in progress is cancelled, so the
    next turn starts clean. Raises :class:`NoSpeechHeard` when voice detection heard nothing
    within ``no_speech_timeout`` seconds of the end of the audio, :class:`Timeout` when no reply
    came within ``timeout`` seconds of it, and the error that closed the session if it closed.
    Do not call it from a handler.
    """
    return _stream_audio(
        session, audio, sample_rate, channels, speed, timeout, no_speech_timeout, on_chunk, None
    )


class _Stopped(BaseException):
    """Ends a stream whose ``stop`` was set. Only ``AsyncSession`` sets one, in the thread it
    runs the stream in; its caller sees ``asyncio.CancelledError``, never this."""


def _stream_audio(
    session: Session,
    audio: Any,
    sample_rate: int | None,
    channels: int,
    speed: float,
    timeout: float,
    no_speech_timeout: float,
    on_chunk: ChunkCallback | None,
    stop: threading.Event | None,
) -> Reply:
    """:func:`stream_audio`, given up (as if interrupted) once ``stop`` is set."""
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed >= 0):
        raise InvalidInput(f"speed must be a number >= 0 (0 = no pacing), got {speed!r}")
    wav = _as_wav(audio, sample_rate or session.input_rate, channels)
    turn = _Turn(session, stop)
    try:
        turn.listen()
        _send_paced(session, wav, speed, on_chunk, turn)
        return turn.finish(speed, timeout, no_speech_timeout)
    except BaseException:
        turn.abandon()
        raise
    finally:
        turn.stop_listening()


def _as_wav(audio: Any, rate: int, channels: int) -> WavAudio:
    if isinstance(audio, WavAudio):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        return read_wav(audio)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        pcm = np.frombuffer(bytes(audio)[: len(audio) - len(audio) % (2 * channels)], "<i2")
        return WavAudio(
            pcm=pcm.reshape(-1, channels), sample_rate=rate, channels=channels, sample_width=2
        )
    if isinstance(audio, np.ndarray):
        if audio.ndim == 2:
            channels = int(audio.shape[1])
        arr = audio.reshape(-1, channels)
        return WavAudio(
            pcm=arr, sample_rate=rate, channels=channels, sample_width=arr.dtype.itemsize
        )
    raise InvalidInput(
        "audio must be a WAV path, a WavAudio, PCM16 bytes or a numpy array, "
        f"not {type(audio).__name__}"
    )


def _send_paced(
    session: Session, wav: WavAudio, speed: float, on_chunk: ChunkCallback | None, turn: _Turn
) -> None:
    step = max(1, wav.sample_rate * CHUNK_MS // 1000)
    start = time.monotonic()
    for i in range(0, wav.frames, step):
        turn.check_stop()
        chunk = wav.pcm[i : i + step]
        session.append_audio(chunk, sample_rate=wav.sample_rate, channels=wav.channels)
        sent = (i + len(chunk)) / wav.sample_rate
        if on_chunk is not None:
            on_chunk(chunk, sent)
        if speed > 0:
            delay = start + sent / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)


class _Turn:
    """Follows one turn through the session's events: speech heard, responses, the final reply."""

    def __init__(self, session: Session, stop: threading.Event | None = None) -> None:
        self.session = session
        self.stop = stop
        self.heard = threading.Event()
        self.ended = threading.Event()  # the user's turn was committed (VAD stop, or commit())
        self.done = threading.Event()
        self.ours: set[str] = set()
        self.reply: Reply | None = None
        self.tool_calls: list[Any] = []
        self._handlers: list[Callable[..., Any]] = []

    def listen(self) -> None:
        s = self.session
        for key, fn in (
            ("input_audio_buffer.speech_started", lambda ev: self.heard.set()),
            ("input_audio_buffer.speech_stopped", lambda ev: self.ended.set()),
            ("response.created", self._created),
            (Reply, self._reply),
        ):
            s.on(key, fn)
            self._handlers.append(fn)

    def stop_listening(self) -> None:
        for fn in self._handlers:
            self.session.off(fn)

    def _created(self, ev: Any) -> None:
        if self.ended.is_set() and ev.response.id:
            self.ours.add(ev.response.id)

    def _reply(self, reply: Reply) -> None:
        if reply.response_id not in self.ours or self.done.is_set():
            return
        self.tool_calls.extend(reply.tool_calls)
        declared = {t.name for t in self.session.tools}
        answered = any(c.name in declared for c in reply.tool_calls)
        if reply.tool_calls and answered and reply.status not in ("cancelled", "failed"):
            return  # the SDK runs the tools and asks the model to go on: wait for that reply
        self.reply = reply
        self.done.set()

    def _manual(self) -> bool:
        # What was sent decides: the service's echo leaves turn_detection out once it was sent
        # as null (docs/protocol.md §4.3), so the echo alone cannot tell manual mode.
        s = self.session
        for cfg in (s.requested_config, s.config):
            if cfg is not None and cfg.turn_detection is not UNSET:
                return cfg.turn_detection is None
        return False

    def _silence_ms(self) -> int:
        s = self.session
        for cfg in (s.config, s.requested_config):
            td = getattr(cfg, "turn_detection", UNSET)
            if td is not None and td is not UNSET:
                return int(td.effective("silence_duration_ms"))
        return int(VAD_DEFAULTS["silence_duration_ms"])

    def finish(self, speed: float, timeout: float, no_speech_timeout: float) -> Reply:
        s = self.session
        rate = s.input_rate
        if self._manual():
            self.ended.set()
            s.commit()
            s.create_response()
        elif speed == 0:
            tail_ms = self._silence_ms() + TAIL_EXTRA_MS
            s.append_audio(b"\x00\x00" * (rate * tail_ms // 1000))
        chunk = b"\x00\x00" * (rate * CHUNK_MS // 1000)
        paced = speed > 0 and not self._manual()
        step = CHUNK_MS / 1000 / speed if paced else 0.05
        start = time.monotonic()
        while not self.done.wait(step):
            self._check_open()
            waited = time.monotonic() - start
            if not self.heard.is_set() and not self.ended.is_set() and waited > no_speech_timeout:
                raise NoSpeechHeard(
                    f"the server heard no speech within {no_speech_timeout:g} s of the end of "
                    "the audio (too quiet, or not speech?)"
                )
            if waited > timeout:
                raise Timeout(f"no complete reply within {timeout:g} s of the end of the audio")
            if paced:
                s.append_audio(chunk)  # keep the line live, as a microphone would
        reply = self.reply
        assert reply is not None
        if len(self.tool_calls) > len(reply.tool_calls):
            reply = attrs.evolve(reply, tool_calls=tuple(self.tool_calls))
        return reply

    def check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise _Stopped

    def _check_open(self) -> None:
        self.check_stop()
        s = self.session
        if s.closed:
            info = s.close_info
            if info is not None and info.error is not None:
                raise info.error
            raise SessionClosed("the session closed before the reply came")

    def abandon(self) -> None:
        """Drop the half-sent turn on the server and stop a reply in progress."""
        s = self.session
        if s.closed or self.done.is_set():
            return
        try:
            s.clear_audio()
            if s.active_response is not None:
                s.cancel_response()
        except RealtimeError:
            pass
