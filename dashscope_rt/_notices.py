"""What the conversation state reports to the session: :class:`Notice` and its kinds.

Public through :mod:`dashscope_rt.conversation` (and ``BudgetExceeded`` at the top level).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .reply import Reply, ToolCall

__all__ = [
    "AssistantTranscript",
    "BargeIn",
    "BudgetExceeded",
    "ConfigApplied",
    "CreateFailed",
    "Notice",
    "ReplyInterrupted",
    "ResponseFinished",
    "ResponseStarted",
    "SessionReady",
    "ToolCallsReady",
    "UserTranscript",
]


@attrs.frozen
class Notice:
    """Base class of what :meth:`~dashscope_rt.conversation.Conversation.receive` reports."""


@attrs.frozen
class SessionReady(Notice):
    """``session.created`` arrived."""

    session_id: str | None


@attrs.frozen
class ConfigApplied(Notice):
    """``session.updated`` arrived; ``session`` is the effective configuration (wire dict)."""

    session: Mapping[str, Any]


@attrs.frozen
class ResponseStarted(Notice):
    """A response began (``response.created``, or its first event if that was missing)."""

    response_id: str | None


@attrs.frozen
class ResponseFinished(Notice):
    """A response ended (``response.done``, or synthesised after a cancel without one)."""

    reply: Reply


@attrs.frozen
class ToolCallsReady(Notice):
    """The finished response asked for these calls (all of them; run them, then respond)."""

    response_id: str | None
    calls: tuple[ToolCall, ...]


@attrs.frozen
class UserTranscript(Notice):
    """Transcript of the user's speech: a preview (``final=False``) or the final text."""

    item_id: str | None
    text: str
    final: bool


@attrs.frozen
class AssistantTranscript(Notice):
    """The assistant's text so far (``text``), with the new piece (``delta``)."""

    response_id: str | None
    item_id: str | None
    text: str
    delta: str
    final: bool


@attrs.frozen
class BargeIn(Notice):
    """The user started speaking while a response was playing: flush queued playback."""

    response_id: str | None


@attrs.frozen
class ReplyInterrupted(Notice):
    """A reply's playback was cut by a barge-in: ``reply`` has ``interrupted``, ``played_ms`` and
    ``heard_transcript``. Comes when a finished reply is cut, or when a cut one finishes; again
    if a figure reported later (``Session.report_interruption``) replaces an estimate."""

    reply: Reply


@attrs.frozen
class BudgetExceeded(Notice):
    """The session's total cost (``prices=``) reached its ``budget``; reported once."""

    TYPE: ClassVar[str] = "sdk.budget_exceeded"
    total_cost: float
    budget: float
    response_id: str | None = None

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen
class CreateFailed(Notice):
    """A ``response.create`` was rejected by an ``error`` event (or timed out)."""

    event_id: str | None
    message: str
