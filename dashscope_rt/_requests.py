"""The client requests the conversation state waits on, and which of them an ``error`` refuses.

A ``response.create`` waits for its response to start; a ``response.cancel`` for what it
cancels to end. Sans-IO; part of :class:`~dashscope_rt.conversation.Conversation`.
"""

from __future__ import annotations

__all__ = ["Requests"]


class Requests:
    """The outstanding ``response.create`` and ``response.cancel``."""

    def __init__(self) -> None:
        self.response_pending = False
        self.create_id: str | None = None
        self.create_sent_at: float | None = None
        self.cancel_id: str | None = None
        self.cancel_sent_at: float | None = None
        self.cancel_next: float | None = None  # a cancel sent before its response showed up

    def create_sent(self, event_id: str | None, t: float) -> None:
        self.response_pending = True
        self.create_id = event_id
        self.create_sent_at = t

    def create_done(self) -> str | None:
        """The create got its answer (or never will); returns its event id."""
        event_id = self.create_id
        self.response_pending = False
        self.create_id = None
        self.create_sent_at = None
        return event_id

    def create_deadline(self, timeout: float) -> float | None:
        """When a pending create stops waiting for its response (None: none is pending)."""
        if self.response_pending and self.create_sent_at is not None:
            return self.create_sent_at + timeout
        return None

    def cancel_sent(self, event_id: str | None, t: float, *, response_open: bool) -> None:
        self.cancel_id = event_id
        self.cancel_sent_at = t
        if not response_open and self.response_pending:
            # The response may already run on the server: cancel it when it shows up.
            self.cancel_next = t

    def take_cancel_next(self) -> float | None:
        """For a response that starts: when a cancel meant for it was sent (or None)."""
        t, self.cancel_next = self.cancel_next, None
        return t

    def refused(self, error_event_id: str | None, *, cancelling: bool) -> tuple[bool, bool]:
        """Whether an ``error`` refuses the pending create, the outstanding cancel: a pair.

        ``cancelling``: a response that a cancel was sent for is still open.
        """
        # The protocol does not say which request an error refuses, except through the optional
        # error.event_id. Without one, the error is taken as the refusal of the oldest request
        # still waiting for its answer (the server answers client events in order): a pending
        # response.create, or a response.cancel whose response has not ended.
        create = self.create_sent_at if self.response_pending else None
        outstanding = self.cancel_sent_at is not None and (
            self.cancel_next is not None or cancelling
        )
        cancel = self.cancel_sent_at if outstanding else None
        if error_event_id is not None:
            refuses_create = error_event_id == self.create_id and create is not None
            refuses_cancel = error_event_id == self.cancel_id and cancel is not None
        else:
            refuses_create = create is not None and (cancel is None or create < cancel)
            refuses_cancel = cancel is not None and not refuses_create
        return refuses_create, refuses_cancel

    def cancel_refused(self) -> None:
        """The cancel found nothing to cancel."""
        self.cancel_next = None
        self.cancel_sent_at = None
