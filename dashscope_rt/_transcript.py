"""The conversation's history lines, kept in order while they still change.

A line is addressed by a key while it may change: ``("user", item_id)`` for the user's speech
or text, ``("assistant", seq)`` for the answer of the ``seq``-th response, ``("text", n)`` for a
text message sent without an id until the server's echo names it. Sans-IO; part of
:class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from . import events as ev
from .reply import HistoryEntry

__all__ = ["Transcript"]

_Key = tuple[str, Any]
_ANSWERS_KEPT = 256


class Transcript:
    """History lines (:class:`HistoryEntry`), the newest ``max_lines`` of them (None: all)."""

    def __init__(self, max_lines: int | None) -> None:
        self.lines: list[HistoryEntry] = []
        self.max_lines = max_lines
        self._index: dict[_Key, int] = {}
        self._unacked_texts: deque[_Key] = deque()
        self._texts_sent = 0
        self._answer_of_item: dict[str, int] = {}  # user item id -> seq of the response to it

    def replace(self, lines: list[HistoryEntry]) -> None:
        """Start from ``lines`` (an earlier transcript): none of them changes any more."""
        self.lines = lines
        self._index = {}
        self._unacked_texts.clear()

    def get(self, key: _Key) -> HistoryEntry | None:
        idx = self._index.get(key)
        return self.lines[idx] if idx is not None else None

    def __contains__(self, key: _Key) -> bool:
        return key in self._index

    def set(
        self,
        key: _Key,
        role: str,
        item_id: str | None,
        text: str,
        final: bool,
        *,
        before: _Key | None = None,
        interrupted: bool = False,
        heard_text: str | None = None,
    ) -> None:
        """Write the line of ``key`` (a new one goes at the end, or just before ``before``)."""
        entry = HistoryEntry(
            role=role,
            item_id=item_id,
            text=text,
            final=final,
            interrupted=interrupted,
            heard_text=heard_text,
        )
        idx = self._index.get(key)
        if idx is not None:
            self.lines[idx] = entry
            return
        pos = len(self.lines)
        if before is not None:
            # A user transcript that arrives after the answer started goes before that answer.
            pos = self._index.get(before, pos)
        self.lines.insert(pos, entry)
        if pos != len(self.lines) - 1:
            self._index = {k: (i + 1 if i >= pos else i) for k, i in self._index.items()}
        self._index[key] = pos
        if self.max_lines is not None and len(self.lines) > self.max_lines:
            self._trim(len(self.lines) - self.max_lines)

    def _trim(self, drop: int) -> None:
        """Forget the ``drop`` oldest lines (and the keys that pointed at them)."""
        del self.lines[:drop]
        self._index = {k: i - drop for k, i in self._index.items() if i >= drop}
        while self._unacked_texts and self._unacked_texts[0] not in self._index:
            self._unacked_texts.popleft()

    def set_user(self, item_id: str | None, text: str, final: bool) -> None:
        """The user's line of ``item_id`` (before the answer to it, if that started already)."""
        seq = self._answer_of_item.get(item_id) if item_id is not None else None
        before = ("assistant", seq) if seq is not None else None
        self.set(("user", item_id), "user", item_id, text, final, before=before)

    def answer_started(self, item_id: str, seq: int) -> None:
        """The ``seq``-th response answers the user's ``item_id``."""
        self._answer_of_item[item_id] = seq
        if len(self._answer_of_item) > _ANSWERS_KEPT:
            del self._answer_of_item[next(iter(self._answer_of_item))]

    def sent_text(self, item_id: Any, text: str) -> None:
        """A user text message this client sent (without an id: until its echo names it)."""
        if isinstance(item_id, str):
            self.set_user(item_id, text, True)
        else:
            self._texts_sent += 1
            key = ("text", self._texts_sent)
            self._unacked_texts.append(key)
            self.set(key, "user", None, text, True)

    def acknowledge(self, item: ev.Item) -> bool:
        """Whether a created user item is the echo of the oldest text sent without an id
        (its line then takes the item's id)."""
        if not self._unacked_texts:
            return False
        key = self._unacked_texts[0]
        idx = self._index.get(key)
        if idx is None or self.lines[idx].text != item.text:
            return False
        self._unacked_texts.popleft()
        del self._index[key]
        self.lines[idx] = attrs.evolve(self.lines[idx], item_id=item.id)
        self._index[("user", item.id)] = idx
        return True

    def mark_heard(self, seq: int, heard_text: str) -> None:
        """The answer of the ``seq``-th response was cut: only ``heard_text`` was heard."""
        idx = self._index.get(("assistant", seq))
        if idx is not None:
            self.lines[idx] = attrs.evolve(self.lines[idx], interrupted=True, heard_text=heard_text)
