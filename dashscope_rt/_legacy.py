"""The older ``choices`` reply shape, turned into the typed events it stands for.

A :class:`~dashscope_rt.events.LegacyChoices` frame (DashScope's ``output.choices`` or an
OpenAI-style ``choices`` chunk) carries a piece of a reply: audio as base64 (in
``message.audio.data``, a content part ``{"audio": {"data": ...}}`` or ``output.audio.data``),
its transcript (``audio.transcript``) and text (``content``). :class:`LegacyReplies` makes the
``response.audio.delta``, ``response.audio_transcript.delta`` / ``response.text.delta`` and,
at the frame with a ``finish_reason``, ``response.done`` that the typed protocol would have
sent, so that they reach the same handlers, the conversation state and ``ask()``. No captured
realtime traffic has this shape (docs/protocol.md §15, point 9); it is kept for servers that
still send it. No I/O.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

from . import events as ev
from .errors import ProtocolError

__all__ = ["LegacyReplies"]

_INCOMPLETE = frozenset({"length", "max_tokens"})


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _audio_of(part: Any) -> Mapping[str, Any]:
    """``{"data": ..., "transcript": ...}`` from an ``audio`` value (a dict or bare base64)."""
    audio = part.get("audio") if isinstance(part, Mapping) else None
    if isinstance(audio, str):
        return {"data": audio}
    return _dict(audio)


def _message(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(the first choice's message or delta, the ``output`` object) of a legacy frame."""
    payload = raw.get("payload")
    top = _dict(payload) if isinstance(payload, Mapping) else raw
    output = _dict(top.get("output"))
    choices = output.get("choices", top.get("choices"))
    first = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = first.get("message")
    if not isinstance(message, Mapping):
        message = first.get("delta")
    return _dict(message), output


def audio_and_transcript(raw: Mapping[str, Any]) -> tuple[str, str]:
    """The base64 audio and the audio transcript a legacy frame carries (empty if none)."""
    message, output = _message(raw)
    parts = [_audio_of(message), _audio_of(output)]
    content = message.get("content")
    if isinstance(content, list):
        parts += [_audio_of(c) for c in content]
    data = "".join(p["data"] for p in parts if isinstance(p.get("data"), str))
    transcript = "".join(p["transcript"] for p in parts if isinstance(p.get("transcript"), str))
    return data, transcript


class LegacyReplies:
    """Turns legacy frames into typed events, one reply after another (one per session)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._current: str | None = None

    def events(
        self, legacy: ev.LegacyChoices, *, spoken: bool
    ) -> list[ev.ServerEvent | ProtocolError]:
        """The typed events ``legacy`` stands for (a :class:`ProtocolError` for bad base64).

        ``spoken``: the session's output has audio, so plain text is the transcript of the
        speech rather than a text-only answer.
        """
        rid = self._current
        if rid is None:
            rid = self._current = f"legacy_{legacy.request_id or ''}_{next(self._numbers)}"
        data, transcript = audio_and_transcript(legacy.raw)
        frames: list[dict[str, Any]] = []
        if data:
            frames.append({"type": "response.audio.delta", "response_id": rid, "delta": data})
        if transcript:
            frames.append(
                {"type": "response.audio_transcript.delta", "response_id": rid, "delta": transcript}
            )
        if legacy.text and legacy.text != transcript:
            kind = "audio_transcript" if (spoken or data) and not transcript else "text"
            frames.append(
                {"type": f"response.{kind}.delta", "response_id": rid, "delta": legacy.text}
            )
        if legacy.finish_reason is not None and legacy.finish_reason != "null":
            status = "incomplete" if legacy.finish_reason in _INCOMPLETE else "completed"
            response: dict[str, Any] = {"id": rid, "status": status}
            if legacy.usage is not None:
                response["usage"] = dict(legacy.usage)
            frames.append({"type": "response.done", "response": response})
            self._current = None
        out: list[ev.ServerEvent | ProtocolError] = []
        for frame in frames:
            try:
                out.append(ev.decode(json.dumps(frame)))
            except ProtocolError as exc:
                out.append(exc)
        return out
