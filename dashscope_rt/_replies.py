"""Finished replies: what happens when a response ends, and interruptions reported later.

A finished response becomes a :class:`~dashscope_rt.reply.Reply` with its cost, its metrics and
its history line, and the notices about it. The last few replies are kept so that a barge-in
or a player's figure that comes after the end can still mark them interrupted. Sans-IO; part
of :class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from . import events as ev
from ._heard import heard_prefix
from ._notices import BudgetExceeded, Notice, ReplyInterrupted, ResponseFinished, ToolCallsReady
from ._transcript import Transcript
from ._turns import OpenResponse
from .reply import Reply, TurnMetrics

if TYPE_CHECKING:
    from .pricing import CostMeter

__all__ = ["FinishedReplies"]

_RECENT_REPLIES_KEPT = 16


class FinishedReplies:
    """The replies so far: the last one, the metrics of the newest ``max_metrics`` (None: all),
    and the running cost (``meter``)."""

    def __init__(
        self, transcript: Transcript, meter: CostMeter | None, max_metrics: int | None
    ) -> None:
        self.transcript = transcript
        self.meter = meter
        self.max_metrics = max_metrics
        self.metrics: list[TurnMetrics] = []
        self.last: Reply | None = None
        self._recent: dict[str | None, tuple[Reply, int]] = {}  # reply and its seq, by id

    def finish(
        self,
        resp: OpenResponse,
        t: float,
        status: str,
        done: ev.Response | None,
        out: list[Notice],
    ) -> Reply:
        """Make the reply of ``resp``, record it, and add the notices it causes to ``out``."""
        usage = done.usage if done is not None else None
        cost, over_budget = self.meter.charge(usage) if self.meter else (None, False)
        reply = resp.to_reply(t, status, done, cost)
        key = ("assistant", resp.seq)
        if reply.text or key in self.transcript:
            self.transcript.set(
                key,
                "assistant",
                resp.item_id,
                reply.text,
                True,
                interrupted=reply.interrupted,
                heard_text=reply.heard_transcript,
            )
        self._recent.pop(resp.id, None)
        self._recent[resp.id] = (reply, resp.seq)
        if len(self._recent) > _RECENT_REPLIES_KEPT:
            del self._recent[next(iter(self._recent))]
        self.metrics.append(reply.metrics)
        if self.max_metrics is not None and len(self.metrics) > self.max_metrics:
            del self.metrics[: len(self.metrics) - self.max_metrics]
        self.last = reply
        out.append(ResponseFinished(reply))
        if reply.interrupted:
            out.append(ReplyInterrupted(reply))
        if reply.tool_calls and status not in ("cancelled", "failed"):
            out.append(ToolCallsReady(resp.id, reply.tool_calls))
        if over_budget and self.meter is not None and self.meter.budget is not None:
            out.append(BudgetExceeded(self.meter.total, self.meter.budget, resp.id))
        return reply

    def interrupt(self, response_id: str | None, played_ms: float, out: list[Notice]) -> None:
        """Playback of a finished reply (None: the last one) was cut after ``played_ms``."""
        last = self.last
        rid = last.response_id if response_id is None and last is not None else response_id
        found = self._recent.get(rid)
        if found is None:
            return
        reply, seq = found
        heard = heard_prefix(reply.transcript or reply.text, played_ms, reply.duration * 1000.0)
        reply = attrs.evolve(reply, interrupted=True, played_ms=played_ms, heard_transcript=heard)
        self._recent[rid] = (reply, seq)
        if last is not None and last.response_id == rid:
            self.last = reply
        self.transcript.mark_heard(seq, heard)
        out.append(ReplyInterrupted(reply))
