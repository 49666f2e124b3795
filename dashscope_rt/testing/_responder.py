"""What the simulated model says: a pluggable responder given the user's turn."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._tool_args import guess_arguments, mentioned_tools, tool_function

__all__ = [
    "Image",
    "Responder",
    "ScriptedReply",
    "ScriptedToolCall",
    "ToolOutput",
    "Turn",
    "default_responder",
]


@attrs.frozen
class Image:
    """A JPEG the client sent in this turn, with its size read from the SOF marker."""

    data: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    width: int = 0
    height: int = 0


@attrs.frozen
class ToolOutput:
    """A ``function_call_output`` item the client created."""

    call_id: str
    output: str
    name: str = ""


@attrs.frozen(kw_only=True)
class Turn:
    """Everything the model "hears" for one response."""

    transcript: str = ""
    """Transcript of the user's committed audio in this turn (joined if several commits)."""
    text: str = ""
    """Text the user sent with ``conversation.item.create`` (``input_text``)."""
    images: tuple[Image, ...] = ()
    tool_outputs: tuple[ToolOutput, ...] = ()
    tools: tuple[Mapping[str, Any], ...] = ()
    """The tools declared in ``session.tools`` (empty on models without function calling)."""
    instructions: str = ""
    audio_seconds: float = 0.0
    history: tuple[tuple[str, str], ...] = ()
    """Earlier (user, assistant) exchanges."""
    model: str = ""
    response_instructions: str | None = None

    @property
    def user_text(self) -> str:
        """Transcript and typed text together."""
        return " ".join(p for p in (self.transcript, self.text) if p).strip()


@attrs.frozen
class ScriptedToolCall:
    """A function call the model decides to make."""

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    call_id: str | None = None


def _to_tuple(value: Any) -> tuple[ScriptedToolCall, ...]:
    return tuple(value)


@attrs.frozen
class ScriptedReply:
    """What the model answers: spoken/written text, and/or tool calls."""

    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = attrs.field(default=(), converter=_to_tuple)


Responder = Callable[[Turn], ScriptedReply | str]


def default_responder(turn: Turn) -> ScriptedReply:
    """Echo the user, describe images, report tool results, or call the tools the user names.

    Every declared tool the user's words name is called, in the order named: a tool is named by
    its name (also with underscores read as spaces), a word of its name, or a word (5+ letters) of
    its description. Arguments follow each parameter's JSON schema, read from the clause that
    names the tool: a place after "in/for/at", an IANA zone for a time-zone parameter, the option
    of an enum the words name (else its default or first option), numbers within range.
    After the tool results come back, the answer reports them.
    """
    if turn.tool_outputs:
        joined = "; ".join(o.output for o in turn.tool_outputs)
        return ScriptedReply(text=f"Here is what I found: {joined}")
    said = turn.user_text
    if said and turn.tools:
        named = mentioned_tools(said, turn.tools)
        ends = [at for at, _ in named[1:]] + [len(said)] if named else []
        calls = tuple(
            ScriptedToolCall(
                str(tool_function(tool).get("name", "")), guess_arguments(said, tool, at, end)
            )
            for (at, tool), end in zip(named, ends, strict=True)
        )
        if calls:
            return ScriptedReply(tool_calls=calls)
    parts: list[str] = []
    if said:
        parts.append(f"You said: {said}")
    if turn.images:
        n = len(turn.images)
        w, h = turn.images[-1].width, turn.images[-1].height
        parts.append(f"I can see {n} image{'s' if n != 1 else ''} ({w}x{h}).")
    if not parts:
        parts.append("Hello! How can I help you today?")
    return ScriptedReply(text=" ".join(parts))


def normalize_reply(value: ScriptedReply | str | None) -> ScriptedReply:
    """Accept a plain string from a responder."""
    if value is None:
        return ScriptedReply()
    if isinstance(value, str):
        return ScriptedReply(text=value)
    return value


def scripted(replies: Sequence[ScriptedReply | str], then: Responder | None = None) -> Responder:
    """A responder that answers with ``replies`` in order, then falls back to ``then``."""
    queue = list(replies)
    fallback = then or default_responder

    def respond(turn: Turn) -> ScriptedReply | str:
        return queue.pop(0) if queue else fallback(turn)

    return respond


def arguments_json(args: Mapping[str, Any]) -> str:
    return json.dumps(dict(args), ensure_ascii=False)
