"""``ask()``: one user turn sent, the whole reply awaited (through tool round trips).

The turn goes out as the mode requires: in manual mode text, audio and image, then commit and
``response.create``; under server VAD the audio is followed by enough silence for the server to
end the turn itself. The reply is delivered to an :class:`~dashscope_rt._waiters.AskWaiter`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from . import events as ev
from .errors import (
    BlockingCallInHandler,
    InvalidInput,
    InvalidType,
    SessionClosed,
    Timeout,
    UnsupportedByModel,
)
from .reply import Reply

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Asker"]

_VAD_TAIL_EXTRA_MS = 400
_AUDIO_TYPES = (bytes, bytearray, memoryview)


def _check_audio(audio: Any) -> None:
    if isinstance(audio, _AUDIO_TYPES) or hasattr(audio, "__array_interface__"):
        return
    raise InvalidType(
        f"audio must be PCM16LE bytes or an int16/float32 numpy array, got {type(audio).__name__}"
    )


def _check_ask(text: Any, audio: Any, image: Any, sample_rate: Any, timeout: Any) -> None:
    if text is None and audio is None and image is None:
        raise InvalidInput("ask() needs text=, audio= or image=")
    if text is not None and not isinstance(text, str):
        raise InvalidType(
            f"text must be a str, got {type(text).__name__} (pass audio as audio=...)"
        )
    if audio is not None:
        _check_audio(audio)
    if image is not None and not isinstance(image, _AUDIO_TYPES):
        raise InvalidType(f"image must be JPEG bytes, got {type(image).__name__}")
    if sample_rate is not None and (type(sample_rate) is not int or sample_rate <= 0):
        raise InvalidInput(f"sample_rate must be a positive int or None, got {sample_rate!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}")


class Asker:
    """Runs one ``ask()`` at a time for a session."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def append_image(self, jpeg: Any) -> None:
        e = self._engine
        if not e.model.video:
            raise UnsupportedByModel(
                f"{e.model.name} does not take images", model=e.model.name, feature="video"
            )
        e.check_open()
        e.uplink.append_image(jpeg)

    def ask(
        self,
        *,
        text: str | None,
        audio: Any,
        image: bytes | None,
        sample_rate: int | None,
        channels: int,
        instructions: str | None,
        timeout: float,
        gate: Callable[[], None] | None = None,
    ) -> Reply:
        """See :meth:`dashscope_rt.Session.ask`. ``gate()`` runs just before the request is
        sent and may raise to send nothing (``AsyncSession`` uses it for cancellation)."""
        e = self._engine
        if e.on_dispatcher():
            raise BlockingCallInHandler(
                "ask() cannot run in a handler: it waits for events that this thread delivers"
            )
        _check_ask(text, audio, image, sample_rate, timeout)
        if text is not None and not e.model.text_input:
            raise UnsupportedByModel(
                f"{e.model.name} does not take text input; pass audio=",
                model=e.model.name,
                feature="text_input",
            )
        e.check_open()
        deadline = time.monotonic() + timeout
        with self._lock:
            if not e.link.wait_open(timeout):
                e.check_open()
                raise Timeout(f"still reconnecting after {timeout} s")
            if not e.wait_idle(max(0.0, deadline - time.monotonic())):
                e.check_open()
                raise Timeout(f"a response was still in progress after {timeout} s")
            if gate is not None:
                gate()
            waiter = e.waiters.add_ask(e.link.generation)
            try:
                manual = e.settings.manual_mode()
                if text is not None:
                    waiter.event_ids.add(e.send_event(ev.ConversationItemCreate.user_text(text)))
                if audio is not None:
                    e.uplink.append_audio(audio, sample_rate, channels)
                    e.uplink.flush()
                if image is not None:
                    self.append_image(image)
                if manual:
                    if audio is not None or image is not None:
                        waiter.event_ids.add(e.uplink.commit())
                    waiter.event_ids.add(e.send_event(ev.ResponseCreate(instructions=instructions)))
                elif audio is not None:
                    e.uplink.append_silence(e.settings.vad_silence_ms() + _VAD_TAIL_EXTRA_MS)
                else:
                    waiter.event_ids.add(e.send_event(ev.ResponseCreate(instructions=instructions)))
                if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
                    raise Timeout(f"no complete reply within {timeout} s")
            except SessionClosed:
                # The session ended while the request was still going out (a server may refuse
                # it at its first frames): report why it ended, as the wait would have.
                if e.fatal is None:
                    raise
                raise e.fatal from None
            finally:
                e.waiters.remove_ask(waiter)
        if waiter.error is not None:
            raise waiter.error
        reply = waiter.reply
        assert reply is not None
        if waiter.tool_calls and tuple(waiter.tool_calls) != reply.tool_calls:
            reply = attrs.evolve(reply, tool_calls=tuple(waiter.tool_calls))
        return reply
