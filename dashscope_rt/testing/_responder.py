"""What the simulated model says: a pluggable responder given the user's turn."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

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

_STOP = {"about", "which", "there", "their", "would", "useful", "当你想查询指定城市的"}


def _tool_function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = tool.get("function")
    return fn if isinstance(fn, Mapping) else tool


def _mentions(text: str, tool: Mapping[str, Any]) -> bool:
    fn = _tool_function(tool)
    name = str(fn.get("name", ""))
    low = text.lower()
    if name and (name.lower() in low or name.replace("_", " ").lower() in low):
        return True
    parts = [
        p for p in re.split(r"[_\W]+", name.lower()) if len(p) >= 4 and p not in {"get", "current"}
    ]
    if any(re.search(rf"\b{re.escape(p)}", low) for p in parts):
        return True
    desc = str(fn.get("description", "")).lower()
    words = {w for w in re.findall(r"[a-z]{5,}", desc) if w not in _STOP}
    return any(re.search(rf"\b{re.escape(w)}\b", low) for w in words)


def _guess_arguments(text: str, tool: Mapping[str, Any]) -> dict[str, Any]:
    params = _tool_function(tool).get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties") or {} if isinstance(params, Mapping) else {}
    args: dict[str, Any] = {}
    after = re.search(r"\b(?:in|for|at|of|to|about)\s+([A-Za-z][\w\- ]*?)\s*(?:[?.!,]|$)", text)
    caps = re.findall(r"\b[A-Z][a-z]+\b", text)
    for key, spec in props.items():
        kind = spec.get("type", "string") if isinstance(spec, Mapping) else "string"
        if kind == "string":
            if after:
                args[key] = after.group(1).strip()
            elif caps:
                args[key] = caps[-1]
            else:
                args[key] = text.strip()[:40]
        elif kind in ("number", "integer"):
            m = re.search(r"-?\d+(?:\.\d+)?", text)
            args[key] = (
                (int(float(m.group())) if kind == "integer" else float(m.group())) if m else 0
            )
        elif kind == "boolean":
            args[key] = True
    return args


def default_responder(turn: Turn) -> ScriptedReply:
    """Echo the user, describe images, report tool results, or call a tool the user mentions.

    A declared tool is called when the user's words contain its name (also with underscores read
    as spaces), a word of its name, or a word (5+ letters) of its description. String arguments are
    guessed from "in/for/at <words>" or the last capitalised word.
    """
    if turn.tool_outputs:
        joined = "; ".join(o.output for o in turn.tool_outputs)
        return ScriptedReply(text=f"Here is what I found: {joined}")
    said = turn.user_text
    if said and turn.tools:
        for tool in turn.tools:
            if _mentions(said, tool):
                fn = _tool_function(tool)
                return ScriptedReply(
                    tool_calls=(
                        ScriptedToolCall(str(fn.get("name", "")), _guess_arguments(said, tool)),
                    )
                )
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
