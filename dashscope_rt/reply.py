"""What a finished response gives you: :class:`Reply`, its :class:`TurnMetrics` and
:class:`ToolCall` s, and the :class:`HistoryEntry` lines of the transcript.

Plain values of the protocol core: no I/O, no threads.
"""

from __future__ import annotations

import base64
import html
import io
import json
import wave
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from . import events as ev
from .errors import ToolArgumentsError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["HistoryEntry", "Reply", "ToolCall", "TurnMetrics", "parse_arguments"]


def parse_arguments(
    arguments: str | bytes | Mapping[str, Any] | None, *, tool: str = ""
) -> dict[str, Any]:
    """Decode a tool-call ``arguments`` string (leading space tolerated; empty -> ``{}``)."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, bytes):
        arguments = arguments.decode("utf-8", "replace")
    text = arguments.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ToolArgumentsError(
            f"arguments for tool {tool!r} are not valid JSON ({exc}): {arguments!r}",
            tool=tool,
            arguments=arguments,
        ) from None
    if not isinstance(value, dict):
        raise ToolArgumentsError(
            f"arguments for tool {tool!r} must be a JSON object, got {arguments!r}",
            tool=tool,
            arguments=arguments,
        )
    return value


@attrs.frozen(kw_only=True)
class ToolCall:
    """One function call requested by the model (``arguments`` is the raw JSON text)."""

    call_id: str
    name: str
    arguments: str = ""
    response_id: str | None = None
    item_id: str | None = None

    def parsed_arguments(self) -> dict[str, Any]:
        """``arguments`` as a dict (leading space tolerated, ``{}`` when empty).

        Raises :class:`~dashscope_rt.errors.InvalidInput` (a ``ToolArgumentsError``) naming the
        tool and the raw text when it is not a JSON object.
        """
        return parse_arguments(self.arguments, tool=self.name)


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end < start:
        return None  # not measured, or events arrived out of order
    return (end - start) * 1000.0


@attrs.frozen(kw_only=True)
class TurnMetrics:
    """Timestamps of one response on the conversation's monotonic clock, and derived latencies.

    A timestamp is None when its event did not happen (no ``speech_stopped`` in manual mode, no
    audio in a text-only reply, ...); the derived values are then None too.
    """

    response_id: str | None = None
    status: str | None = None
    speech_stopped_at: float | None = None
    committed_at: float | None = None
    response_created_at: float | None = None
    first_text_at: float | None = None
    first_audio_at: float | None = None
    done_at: float | None = None
    audio_bytes: int = 0
    sample_rate: int = 24000
    usage: ev.Usage | None = None

    @property
    def speech_end_to_first_audio_ms(self) -> float | None:
        """User stopped speaking (VAD) -> first audio of the answer: the latency users feel."""
        return _ms(self.speech_stopped_at, self.first_audio_at)

    @property
    def committed_to_first_audio_ms(self) -> float | None:
        """Input committed -> first audio (the manual-mode counterpart of the above)."""
        return _ms(self.committed_at, self.first_audio_at)

    @property
    def created_to_first_text_ms(self) -> float | None:
        """``response.created`` -> first text or transcript delta."""
        return _ms(self.response_created_at, self.first_text_at)

    @property
    def created_to_first_audio_ms(self) -> float | None:
        """``response.created`` -> first audio delta."""
        return _ms(self.response_created_at, self.first_audio_at)

    @property
    def total_ms(self) -> float | None:
        """``response.created`` -> end of the response."""
        return _ms(self.response_created_at, self.done_at)

    @property
    def audio_out_ms(self) -> float:
        """Duration of the audio received for this response."""
        if self.sample_rate <= 0:
            return 0.0
        return (self.audio_bytes // 2) * 1000.0 / self.sample_rate


@attrs.frozen(kw_only=True, repr=False)
class Reply:
    """A finished response: text, transcript, PCM16LE mono audio, usage, tool calls, metrics."""

    response_id: str | None
    status: str
    text: str = ""
    transcript: str = ""
    audio: bytes = b""
    sample_rate: int = 24000
    usage: ev.Usage | None = None
    metrics: TurnMetrics = attrs.field(factory=TurnMetrics)
    tool_calls: tuple[ToolCall, ...] = ()
    user_transcript: str | None = None
    response: ev.Response | None = None
    """The ``response.done`` payload (None when the response ended without one)."""
    interrupted: bool = False
    """The user barged in while this reply was playing: only part of it was heard."""
    played_ms: float | None = None
    """For an interrupted reply, the milliseconds of its audio that were played: what the
    :class:`~dashscope_rt.audio.Player` (or the app, through ``Session.report_interruption``)
    handed to the speaker, else an estimate that assumes playback in real time from arrival."""
    heard_transcript: str | None = None
    """For an interrupted reply, an estimate of the part of the transcript that was heard (the
    share of the text that ``played_ms`` is of the audio, cut back to a word boundary)."""
    cost: float | None = None
    """What this response cost, from the session's ``prices`` (None without a price table)."""

    @property
    def duration(self) -> float:
        """Audio duration in seconds."""
        return (len(self.audio) // 2) / self.sample_rate if self.sample_rate > 0 else 0.0

    @property
    def samples(self) -> npt.NDArray[np.int16]:
        """The audio as a read-only numpy int16 array (a view, no copy)."""
        import numpy as np

        usable = len(self.audio) - len(self.audio) % 2
        return np.frombuffer(self.audio, dtype="<i2", count=usable // 2)

    def to_wav(self) -> bytes:
        """The audio as a complete WAV file (mono, 16-bit)."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.audio[: len(self.audio) - len(self.audio) % 2])
        return buf.getvalue()

    def _repr_html_(self) -> str:
        parts = ["<div>"]
        if self.audio:
            data = base64.b64encode(self.to_wav()).decode("ascii")
            parts.append(f'<audio controls src="data:audio/wav;base64,{data}"></audio>')
        if self.text:
            parts.append(f"<p>{html.escape(self.text)}</p>")
        for call in self.tool_calls:
            parts.append(
                f"<p><code>{html.escape(call.name)}({html.escape(call.arguments.strip())})</code></p>"
            )
        parts.append(
            f"<small>{html.escape(self.status)}"
            + (f", {self.duration:.1f} s audio" if self.audio else "")
            + "</small></div>"
        )
        return "".join(parts)

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        extra = f", tool_calls={len(self.tool_calls)}" if self.tool_calls else ""
        if self.interrupted:
            extra += f", interrupted at {self.played_ms or 0.0:.0f} ms"
        return (
            f"Reply(response_id={self.response_id!r}, status={self.status!r}, text={text!r},"
            f" audio={self.duration:.2f}s@{self.sample_rate}Hz{extra})"
        )


@attrs.frozen(kw_only=True)
class HistoryEntry:
    """One line of the conversation transcript."""

    role: str  # "user" | "assistant"
    item_id: str | None
    text: str
    final: bool
    interrupted: bool = False
    """An assistant line whose audio the user cut short; ``heard_text`` estimates what was heard."""
    heard_text: str | None = None
