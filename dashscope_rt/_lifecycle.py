"""The engine's lifecycle: connect, close, and how a session ends.

Closing starts without blocking and ends on the dispatcher, which fires ``on_close`` once with
the :class:`~dashscope_rt._sdk_events.Closed` that says what ended the session. The protocol
has no fatal flag: an ``error`` the server closes the socket after (no other event in between)
is what ended it; a refused voice ends it at once; so does a failing handler with
``handler_errors="raise"``. A base of :class:`~dashscope_rt._engine.Engine`: the state it uses
is the engine's (declared below).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from . import events as ev
from ._handshake import server_error
from ._sdk_events import Closed
from ._voice_refusal import voice_refusal
from .errors import SessionClosed
from .recording import LogWriter

if TYPE_CHECKING:
    from ._dispatch import Dispatcher
    from ._link import Link, LinkLost
    from ._settings import SessionSettings
    from ._tool_runner import ToolRunner
    from ._uplink import Uplink
    from ._waiters import Waiters
    from .errors import ServerError
    from .models import ModelInfo

__all__ = ["Lifecycle"]

log = logging.getLogger("dashscope_rt.session")


class Lifecycle:
    """``connect``, ``close_async``, ``close``; the end: ``on_close``'s Closed and its error."""

    model: ModelInfo
    url: str
    record_to: str | None
    handler_errors: str
    link: Link
    dispatcher: Dispatcher
    settings: SessionSettings
    tools: ToolRunner
    uplink: Uplink
    waiters: Waiters
    conv_cv: threading.Condition
    closed_event: threading.Event
    close_info: Closed | None
    fatal: BaseException | None
    _last_error: ServerError | None
    _recorder: LogWriter | None

    def connect(self) -> None:
        """Open, handshake, start the threads. On failure no thread and no socket are left."""
        self.link.begin_connect()
        try:
            if self.record_to is not None:
                self._recorder = LogWriter(
                    self.record_to,
                    model=self.model.name,
                    input_rate=self.settings.input_rate,
                    output_rate=self.settings.output_rate,
                )
                self.link.wire_log.recorder = self._recorder
            self.link.connect()
        except BaseException as exc:
            self._close_recorder()
            self.closed_event.set()
            refused = voice_refusal(exc, self.model)
            if refused is not None:
                raise refused from exc
            raise
        self.dispatcher.start()
        log.debug("session %s connected to %s", self.settings.session_id, self.url)

    def close_async(self, code: int = 1000, reason: str = "") -> bool:
        """Start closing (never blocks); False if it was already closing or closed."""
        started, never_opened = self.link.close_async(code, reason)
        if never_opened:
            self.closed_event.set()
        return started

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close, then join every thread but the calling one (each join is bounded)."""
        timeout = self.link.close_timeout if timeout is None else timeout
        self.close_async(code, reason)
        if self.dispatcher.on_dispatcher():
            return  # the threads end by themselves; on_close runs after this handler
        deadline = time.monotonic() + timeout
        self.link.join(deadline)
        self.tools.shutdown()
        self.dispatcher.join(max(0.5, deadline - time.monotonic()))

    def _close_recorder(self) -> None:
        rec, self._recorder = self._recorder, None
        self.link.wire_log.recorder = None
        if rec is not None:
            try:
                rec.close()
            except Exception:
                log.debug("closing the recording failed", exc_info=True)

    def _finish(self, lost: LinkLost) -> None:
        """Dispatcher: the connection is gone. Fire ``on_close`` once and end."""
        closed = lost.error
        self.link.release()
        self._close_recorder()
        user_closed = self.link.user_closed
        if self.fatal is None:
            if lost.cause is not None:
                self.fatal = lost.cause
            elif self._last_error is not None and closed.by_server and not user_closed:
                # The protocol has no fatal flag: an error the server closes the socket after
                # (no other event in between) is what ended the session.
                self._last_error.fatal = True
                closed.__cause__ = self._last_error
                self.fatal = self._last_error
            elif not user_closed and closed.code not in (1000, 1005):
                self.fatal = closed
        server_said = self.fatal or (closed if closed.by_server else None)
        self.fatal = voice_refusal(server_said, self.model) or self.fatal
        if closed.by_server:
            log.info("session %s closed by the server: %s", self.settings.session_id, closed)
        info = Closed(
            code=closed.code, reason=closed.reason, by_server=closed.by_server, error=self.fatal
        )
        self.close_info = info
        self.link.mark_closed()
        self.waiters.fail_all(self.fatal or SessionClosed(f"the session ended: {closed}"))
        self.tools.shutdown()
        # soxr's native state must not outlive the session: a closed Session that something
        # still holds at interpreter exit would leak it (nanobind reports that on stderr).
        self.uplink.release()
        self.dispatcher.emit(info, time.monotonic(), wire=True)
        self.closed_event.set()
        with self.conv_cv:
            self.conv_cv.notify_all()

    def _voice_refused(self, event: ev.ErrorEvent) -> bool:
        """A refused voice ends the session at once: the connection does not recover from it
        (docs/protocol.md §9.2), so nothing waits for an answer or a close that may not come."""
        refused = voice_refusal(server_error(event, fatal=True), self.model)
        if refused is None:
            return False
        if self.fatal is None:
            self.fatal = refused
        self.waiters.fail_all(refused)
        self.dispatcher.report_error(refused)
        self.close_async(1000, "voice not supported")
        return True

    def _handler_failed(self, exc: BaseException) -> None:
        if self.handler_errors == "raise" and self.fatal is None:
            self.fatal = exc
            self.close_async(1011, "handler error")
