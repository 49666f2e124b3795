"""The send methods of a session: they encode and queue, and never wait for the network.

Shared by :class:`~dashscope_rt.Session` and :class:`~dashscope_rt.AsyncSession` (where they
are plain methods, safe on the event loop): every one is thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import events as ev
from ._playback import PlaybackLink, PlayerLike
from .errors import InvalidInput, InvalidType, UnsupportedByModel

if TYPE_CHECKING:
    from ._ask import Asker
    from ._engine import Engine

__all__ = ["SendMethods"]


class SendMethods:
    """Sending audio, images, text and control events; playback reporting."""

    _engine: Engine
    _asker: Asker

    def append_audio(
        self,
        data: Any,
        sample_rate: int | None = None,
        channels: int = 1,
        *,
        encoding: str = "pcm16",
    ) -> None:
        """Queue audio: bytes (PCM16LE), memoryview, or an int16/float32 ndarray.

        It is resampled to the model's input rate with a streaming soxr resampler (no clicks at
        chunk borders) and sent in 100 ms chunks; a partial chunk waits for more audio or for
        :meth:`commit`. ``sample_rate=None`` means the model's input rate. Never blocks on the
        network, so it is safe in an audio callback.

        ``encoding="ulaw"`` or ``"alaw"`` takes G.711 telephone audio (bytes, one per sample),
        decoded first; its ``sample_rate`` defaults to 8000. A qwen3.5 model configured with
        ``input_sample_rate=8000`` then takes it without resampling.
        """
        self._engine.check_open()
        self._engine.uplink.append_audio(data, sample_rate, channels, encoding=encoding)

    def append_image(self, jpeg: bytes | bytearray | memoryview) -> None:
        """Queue one JPEG camera frame (≤ 256 KB after Base64; send at most 1–2 per second).

        The service refuses an image with no audio before it in the buffer, so 200 ms of
        silence is appended first when none was sent since the last commit.
        """
        self._asker.append_image(jpeg)

    def commit(self) -> str:
        """Send the buffered audio (and images) as one user turn; returns the event id.

        Needed in manual mode (``turn_detection=None``); in VAD mode the server commits itself.
        """
        return self._engine.uplink.commit()

    def clear_audio(self) -> str:
        """Drop the audio buffered locally and on the server (``input_audio_buffer.clear``)."""
        self._engine.check_open()
        return self._engine.uplink.clear()

    def create_response(
        self,
        instructions: str | None = None,
        *,
        modalities: Sequence[str] | None = None,
        **extra: Any,
    ) -> str:
        """Ask the model to answer now (``response.create``); returns the event id."""
        return self._engine.send_event(
            ev.ResponseCreate(
                instructions=instructions,
                modalities=tuple(modalities) if modalities is not None else None,
                extra=extra,
            )
        )

    def cancel_response(self) -> str:
        """Stop the response in progress (``response.cancel``); pending tool results are dropped."""
        return self._engine.cancel_response()

    def send_text(self, text: str, *, respond: bool = True) -> str:
        """Send a user text message; with ``respond`` also ask for the answer.

        Only models that take text input (qwen3.5); elsewhere raises
        :class:`~dashscope_rt.errors.UnsupportedByModel`. Returns the item's event id.
        """
        e = self._engine
        if not isinstance(text, str):
            raise InvalidType(f"send_text() takes a str, got {type(text).__name__}")
        if not text:
            raise InvalidInput("send_text() needs a non-empty string")
        if not e.model.text_input:
            raise UnsupportedByModel(
                f"{e.model.name} does not take text input; send audio instead (a qwen3.5 "
                "model takes text)",
                model=e.model.name,
                feature="text_input",
            )
        eid = e.send_event(ev.ConversationItemCreate.user_text(text))
        if respond:
            e.send_event(ev.ResponseCreate())
        return eid

    def send_raw(self, event: Mapping[str, Any]) -> str:
        """Send any client event as a dict (an ``event_id`` is added if missing)."""
        return self._engine.send_raw(event)

    # -- playback --------------------------------------------------------------------------------

    def attach_player(self, player: PlayerLike) -> None:
        """Play every reply on ``player`` (a :class:`~dashscope_rt.audio.Player`) and stop it when
        the user barges in, recording in the reply (and :attr:`history`) how much was played.

        The audio is written before your handlers run; what a cut response still sends is
        dropped. Its ``Reply`` gets ``interrupted``, ``played_ms`` and ``heard_transcript``, and a
        :class:`~dashscope_rt.conversation.ReplyInterrupted` notice comes
        (``session.on(ReplyInterrupted, fn)``).
        """
        e = self._engine
        with e.conv_cv:
            e.playback = PlaybackLink(player)
            e.conv.playback_tracked = True

    def report_interruption(self, played_ms: float, response_id: str | None = None) -> None:
        """When the app plays audio itself: playback of a reply was cut after ``played_ms``.

        ``response_id`` None means the response in progress, else the last reply. Without this
        call (or :meth:`attach_player`) a barge-in is recorded with an estimate that assumes
        playback in real time from arrival. ``last_reply`` and :attr:`history` change at once;
        the :class:`~dashscope_rt.conversation.ReplyInterrupted` notice reaches the handlers
        after the events already received.
        """
        if isinstance(played_ms, bool) or not isinstance(played_ms, (int, float)):
            raise InvalidType(f"played_ms: expected milliseconds as a number, got {played_ms!r}")
        self._engine.report_interruption(response_id, float(played_ms))
