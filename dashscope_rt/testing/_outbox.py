"""The simulated service's outbox: server events (and a close) scheduled at clock times.

Every event is a typed event of :mod:`dashscope_rt.events`, written to its wire dict here with a
fresh id from the core's id generator.
"""

from __future__ import annotations

import heapq
from typing import Any

import attrs

from ..events import ConversationItemCreated, ErrorDetail, ErrorEvent, ServerEvent, new_event_id
from ._behaviour import Behaviour

__all__ = ["Outbox", "Outgoing", "Scheduled"]


@attrs.frozen
class Outgoing:
    """One thing to send: a server event (its wire dict), or a close (code, reason) when
    ``event`` is None."""

    event: dict[str, Any] | None
    close: tuple[int, str] | None = None
    response_id: str | None = None


@attrs.define
class Scheduled:
    """An :class:`Outgoing` with what the session must note when it goes out.

    ``kind``: "" (nothing), "audio"/"transcript" (``payload`` is what the reply said so far),
    "response_done", "close", or "finalize" (a marker, never sent: ``payload`` is the response
    id whose closing events are due).
    """

    out: Outgoing
    kind: str = ""
    payload: Any = None


class Outbox:
    """A time-ordered queue of :class:`Scheduled` items (ties keep their order)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.closing = False
        """A close was queued: nothing more is accepted from the client."""
        self._heap: list[tuple[float, int, Scheduled]] = []
        self._seq = 0
        self._last_item_id: str | None = None

    def emit(
        self,
        due: float,
        event: ServerEvent,
        *,
        response_id: str | None = None,
        kind: str = "",
        payload: Any = None,
    ) -> None:
        """Queue ``event`` (with a new event id) to go out at ``due``.

        A ``conversation.item.created`` gets the ``previous_item_id`` of the item created before
        it, as the service sends on every item but the session's first (docs/protocol.md §4.8).
        """
        item = event.item if isinstance(event, ConversationItemCreated) else None
        if isinstance(event, ConversationItemCreated) and item is not None:
            if event.previous_item_id is None and self._last_item_id is not None:
                event = attrs.evolve(event, previous_item_id=self._last_item_id)
            self._last_item_id = item.id
        wire = event.to_wire(event_id=new_event_id())
        self.push(due, Scheduled(Outgoing(wire, None, response_id), kind, payload))

    def error(
        self,
        due: float,
        etype: str,
        code: str | None,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
    ) -> None:
        """Queue an ``error`` event in the shape ``Behaviour.error_ids`` chooses: with ids and
        codes (``client_event_id`` in ``error.event_id``), or with them empty or absent, as
        measured on the service (docs/protocol.md §4.1)."""
        ids = self.behaviour.error_ids
        if ids == "present":
            detail = ErrorDetail(
                type=etype, code=code, message=message, param=param, event_id=client_event_id
            )
            self.emit(due, ErrorEvent(error=detail))
            return
        if ids == "empty":
            detail = ErrorDetail(type=etype, code="", message=message, param="")
        else:  # "absent": the reported shape has no param either
            detail = ErrorDetail.from_wire(dict(type=etype, code="", message=message))
        wire = ErrorEvent(error=detail).to_wire(event_id="" if ids == "empty" else None)
        self.push(due, Scheduled(Outgoing(wire)))

    def close(self, due: float, code: int, reason: str) -> None:
        """Queue a close; everything queued after it is dropped when it goes out."""
        self.push(due, Scheduled(Outgoing(None, (code, reason)), "close"))
        self.closing = True

    def push(self, due: float, item: Scheduled) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, item))

    def pop(self, now: float) -> Scheduled | None:
        """The next item due at ``now``, or None."""
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[2]
        return None

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def discard(self, response_id: str, *, keep_audio: int = 0) -> list[Scheduled]:
        """Drop everything still queued for ``response_id`` (a cancel); return its next
        ``keep_audio`` audio items (dropped too: the caller sends them now)."""
        mine = sorted(e for e in self._heap if e[2].out.response_id == response_id)
        audio = [e[2] for e in mine if e[2].kind == "audio"][:keep_audio]
        self._heap = [e for e in self._heap if e[2].out.response_id != response_id]
        heapq.heapify(self._heap)
        return audio

    def clear(self) -> None:
        self._heap.clear()
