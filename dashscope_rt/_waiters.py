"""Waiters: the blocking calls (``ask``, ``update``, ``end``) waiting for the server's answer.

A waiter is resolved on the dispatcher thread by what the session sees (a reply, an ``error``
event, ``session.updated``, ``session.finished``, the end of the session) and woken through a
:class:`threading.Event`. The bookkeeping is under one lock, so waiters may be added and removed
from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import attrs

from .errors import ServerError
from .reply import Reply, ToolCall

__all__ = ["AskWaiter", "UpdateWaiter", "Waiters"]


@attrs.define(eq=False)
class AskWaiter:
    """A blocking ``ask()`` waiting for its reply (through tool round trips)."""

    generation: int = 0
    event_ids: set[str] = attrs.field(factory=set)
    started: bool = False
    reply: Reply | None = None
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    error: BaseException | None = None
    done: threading.Event = attrs.field(factory=threading.Event)


@attrs.define(eq=False)
class UpdateWaiter:
    """A blocking ``update()`` waiting for ``session.updated`` (or the refusal)."""

    event_id: str
    error: BaseException | None = None
    done: threading.Event = attrs.field(factory=threading.Event)


class Waiters:
    """Every pending blocking call of one session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asks: list[AskWaiter] = []
        self._updates: list[UpdateWaiter] = []
        self._finish: tuple[str, threading.Event] | None = None

    # -- ask ---------------------------------------------------------------------------------------

    def add_ask(self, generation: int) -> AskWaiter:
        waiter = AskWaiter(generation=generation)
        with self._lock:
            self._asks.append(waiter)
        return waiter

    def remove_ask(self, waiter: AskWaiter) -> None:
        with self._lock:
            if waiter in self._asks:
                self._asks.remove(waiter)

    def _end(
        self, w: AskWaiter, *, reply: Reply | None = None, error: BaseException | None = None
    ) -> None:
        w.reply, w.error = reply, error
        w.done.set()
        self.remove_ask(w)

    def _asking(self) -> list[AskWaiter]:
        with self._lock:
            return list(self._asks)

    def response_started(self) -> None:
        for w in self._asking():
            w.started = True

    def tool_results_sent(self) -> None:
        """The model goes on after tool results: the waiters of that turn see a new response."""
        for w in self._asking():
            if w.tool_calls:
                w.started = True

    def reply(self, reply: Reply, will_answer: Callable[[Sequence[ToolCall]], bool]) -> None:
        """A response finished: it is the answer, unless the model waits for tool results."""
        for w in self._asking():
            if not w.started:
                continue
            w.tool_calls.extend(reply.tool_calls)
            if (
                reply.tool_calls
                and reply.status not in ("cancelled", "failed")
                and will_answer(reply.tool_calls)
            ):
                w.started = False  # the model goes on once the results are in
                continue
            self._end(w, reply=reply)

    def create_failed(self, event_id: str | None, message: str) -> None:
        for w in self._asking():
            if event_id is not None and event_id in w.event_ids:
                self._end(w, error=ServerError(f"response.create failed: {message}"))

    def server_error(self, error: ServerError) -> None:
        """An ``error`` event: it refuses the request it names (or the one not yet answered)."""
        eid = error.event_id
        with self._lock:
            for u in self._updates:
                if eid is None or eid == u.event_id:
                    self._updates.remove(u)
                    u.error = error
                    u.done.set()
                    break
        finish = self._finish
        if finish is not None and (eid is None or eid == finish[0]):
            self.finished()
        for w in self._asking():
            # Without an event id, an error before the response started is taken as the
            # refusal of the waiter's request (Omni errors may not carry error.event_id).
            if eid in w.event_ids if eid is not None else not w.started:
                self._end(w, error=error)

    def fail_older(self, generation: int, error: BaseException, *, planned: bool = False) -> None:
        """A redial: the asks sent on an older connection will get no answer.

        After a planned rollover (between turns) only asks whose response had started fail.
        """
        for w in self._asking():
            if w.generation < generation and not (planned and not w.started):
                self._end(w, error=error)

    # -- update ------------------------------------------------------------------------------------

    def add_update(self, event_id: str) -> UpdateWaiter:
        waiter = UpdateWaiter(event_id)
        with self._lock:
            self._updates.append(waiter)
        return waiter

    def remove_update(self, waiter: UpdateWaiter) -> None:
        with self._lock:
            if waiter in self._updates:
                self._updates.remove(waiter)

    def updated(self) -> None:
        """``session.updated``: the oldest update is applied."""
        with self._lock:
            waiter = self._updates.pop(0) if self._updates else None
        if waiter is not None:
            waiter.done.set()

    # -- end ---------------------------------------------------------------------------------------

    def set_finish(self, event_id: str) -> threading.Event:
        done = threading.Event()
        self._finish = (event_id, done)
        return done

    def finished(self) -> None:
        """``session.finished`` (or its refusal, or the end of the session)."""
        waiter, self._finish = self._finish, None
        if waiter is not None:
            waiter[1].set()

    # -- the end of the session --------------------------------------------------------------------

    def fail_all(self, error: BaseException) -> None:
        for w in self._asking():
            self._end(w, error=error)
        with self._lock:
            updates, self._updates = self._updates, []
        for u in updates:
            u.error = error
            u.done.set()
        self.finished()
