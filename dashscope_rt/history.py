"""Transcripts that outlive a connection: JSON export and import, and context for instructions.

Qwen-Omni-Realtime has no way to replay conversation items into a new server session, so the
documented route to carry a conversation over (a reconnect, the 120-minute cap, a restart) is
the session's ``instructions``: :func:`context_block` writes the most recent lines of a
transcript as text, capped in size, and :func:`with_context` appends it to the user's own
instructions. Sans-IO: nothing here touches a socket or a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import InvalidInput
from .reply import HistoryEntry

__all__ = [
    "CONTEXT_HEADER",
    "HISTORY_FORMAT",
    "coerce_history",
    "context_block",
    "history_from_json",
    "history_to_json",
    "with_context",
]

HISTORY_FORMAT = "dashscope_rt.history/1"
CONTEXT_HEADER = (
    "Earlier in this conversation (a transcript; continue from where it ends, do not repeat it):"
)
_ROLES = ("user", "assistant")
_MIN_CUT = 12  # a newest line cut shorter than this is not worth sending
_LABELS = {"user": "User", "assistant": "Assistant"}


def history_to_json(entries: Iterable[HistoryEntry], *, indent: int | None = None) -> str:
    """The transcript as a JSON document that :func:`history_from_json` reads back."""
    lines = [
        {"role": e.role, "text": e.text, "item_id": e.item_id, "final": e.final} for e in entries
    ]
    doc = {"format": HISTORY_FORMAT, "entries": lines}
    return json.dumps(doc, ensure_ascii=False, indent=indent)


def history_from_json(data: str | bytes) -> tuple[HistoryEntry, ...]:
    """Read a transcript written by :func:`history_to_json` (or a plain list of entries)."""
    try:
        doc = json.loads(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"history: not valid JSON ({exc})") from None
    return coerce_history(doc)


def coerce_history(value: Any) -> tuple[HistoryEntry, ...]:
    """Accept history entries, a JSON string, the exported document or a list of dicts.

    Raises :class:`~dashscope_rt.errors.InvalidInput` naming the first bad entry.
    """
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        return history_from_json(value)
    if isinstance(value, Mapping):
        fmt = value.get("format")
        if fmt != HISTORY_FORMAT:
            raise InvalidInput(
                f"history: unknown format {fmt!r}; expected {HISTORY_FORMAT!r} (the output of "
                "Session.export_history())"
            )
        value = value.get("entries")
    if not isinstance(value, Sequence):
        raise InvalidInput(
            f"history must be HistoryEntry objects, a list of dicts or JSON, got "
            f"{type(value).__name__}"
        )
    return tuple(_entry(i, item) for i, item in enumerate(value))


def _entry(index: int, item: Any) -> HistoryEntry:
    if isinstance(item, HistoryEntry):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInput(f"history entry {index} must be a dict, got {type(item).__name__}")
    role, text = item.get("role"), item.get("text")
    if role not in _ROLES:
        raise InvalidInput(
            f"history entry {index}: role must be 'user' or 'assistant', got {role!r}"
        )
    if not isinstance(text, str):
        raise InvalidInput(f"history entry {index}: text must be a string, got {text!r}")
    item_id = item.get("item_id")
    return HistoryEntry(
        role=role,
        item_id=item_id if isinstance(item_id, str) else None,
        text=text,
        final=bool(item.get("final", True)),
    )


def context_block(entries: Sequence[HistoryEntry], max_chars: int) -> str:
    """The most recent lines of ``entries`` as text of at most ``max_chars`` characters.

    Whole lines are kept, newest first, until the cap; a newest line longer than the cap is
    cut from its start. Empty lines are skipped. Returns "" when there is nothing to carry.
    """
    if max_chars <= len(CONTEXT_HEADER) + 1:
        return ""
    budget = max_chars - len(CONTEXT_HEADER) - 1
    kept: list[str] = []
    for entry in reversed(entries):
        text = " ".join(entry.text.split())
        if not text:
            continue
        line = f"{_LABELS.get(entry.role, entry.role)}: {text}"
        cost = len(line) + (1 if kept else 0)
        if cost > budget:
            if not kept and budget >= _MIN_CUT:
                kept.append("…" + line[len(line) - budget + 1 :])
            break
        kept.append(line)
        budget -= cost
    if not kept:
        return ""
    return CONTEXT_HEADER + "\n" + "\n".join(reversed(kept))


def with_context(instructions: str | None, context: str) -> str | None:
    """The user's instructions followed by the carried-over context (when there is some)."""
    if not context:
        return instructions
    if not instructions:
        return context
    return f"{instructions}\n\n{context}"
