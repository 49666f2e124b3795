"""Events the SDK itself emits (no wire form): close, reconnect, session expiry."""

from __future__ import annotations

from typing import ClassVar

import attrs

__all__ = ["Closed", "Reconnected", "Reconnecting", "RolledOver", "SessionExpiring"]


@attrs.frozen(kw_only=True)
class Closed:
    """The session ended. ``code``/``reason`` come from the close frame (1006: no close frame)."""

    TYPE: ClassVar[str] = "sdk.closed"
    code: int | None = None
    reason: str = ""
    by_server: bool = False
    error: BaseException | None = attrs.field(default=None, eq=False)
    """The fatal error that ended the session, if any (what ``wait()`` re-raises)."""

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen(kw_only=True)
class Reconnecting:
    """The connection dropped; attempt ``attempt`` starts after ``delay`` seconds."""

    TYPE: ClassVar[str] = "sdk.reconnecting"
    attempt: int
    delay: float
    cause: BaseException | None = attrs.field(default=None, eq=False)

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen(kw_only=True)
class Reconnected:
    """A new connection is up and the session config (and tools) were sent again.

    The server starts a fresh session: earlier turns reach it only as the transcript carried
    in its instructions (``context_chars``).
    """

    TYPE: ClassVar[str] = "sdk.reconnected"
    attempt: int
    session_id: str | None = None

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen(kw_only=True)
class RolledOver:
    """Before the 120-minute cap the session moved to a new server session (``rollover=``).

    The config and tools were sent again, and the transcript so far through ``instructions``.
    """

    TYPE: ClassVar[str] = "sdk.rolled_over"
    session_id: str | None = None
    previous_session_id: str | None = None

    @property
    def type(self) -> str:
        return self.TYPE


@attrs.frozen(kw_only=True)
class SessionExpiring:
    """The service's session cap (120 minutes) ends this connection in ``remaining`` seconds."""

    TYPE: ClassVar[str] = "sdk.session_expiring"
    remaining: float

    @property
    def type(self) -> str:
        return self.TYPE
