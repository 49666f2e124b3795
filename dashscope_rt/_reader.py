"""The reader thread: frames in, and the connection kept while the session lasts.

``dashscope_rt-reader-N`` blocks in ``Transport.recv``, decodes each frame and hands it on with
its arrival time (``Link.deliver``). It pings a quiet line and gives up a dead one, warns before
the service's 120-minute cap and, between turns, rolls over to a new server session before it;
when the connection drops it redials as the :class:`~dashscope_rt._link.ReconnectPolicy`
allows. It never runs user code. The connection's state is the link's: the reader changes it
through :class:`~dashscope_rt._link.Link`'s methods.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from ._handshake import binary_frame_error
from ._sdk_events import Reconnected, Reconnecting, RolledOver, SessionExpiring
from .errors import ConnectionClosed, ProtocolError, ReceiveBacklogFull, ServerError, TransportError
from .transport import OP_BINARY, OP_PONG, Transport

if TYPE_CHECKING:
    from ._link import Link

__all__ = ["Reader"]

log = logging.getLogger("dashscope_rt.session")


class _RollOver(Exception):
    """Raised in the reader to move to a new server session (see ``Reader._roll_over``)."""


class Reader:
    """The reader thread of ``link``, and what it keeps of the 120-minute cap."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.thread: threading.Thread | None = None
        self._expiry_warned = False
        self._expiry_check_at = 0.0
        self._rollover_failed = False

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._read_loop, name=f"dashscope_rt-reader-{self.link.number}", daemon=True
        )
        self.thread.start()

    def _read_loop(self) -> None:
        link = self.link
        closed: ConnectionClosed
        try:
            while True:
                transport = link.transport
                assert transport is not None
                try:
                    self._read_until_closed(transport)
                    continue  # pragma: no cover - only ever ends by raising
                except _RollOver:
                    self._roll_over(transport)
                    continue
                except ConnectionClosed as exc:
                    closed = exc
                if link.user_closed:
                    link.gone(closed)
                    return
                ok, cause = self._redial(closed)
                if not ok:
                    link.gone(closed, cause)
                    return
        except BaseException as exc:  # a bug: never leave the session hanging
            log.exception("the reader thread failed")
            link.gone(ConnectionClosed(1006, f"reader failed: {exc!r}", by_server=False))

    def _read_until_closed(self, transport: Transport) -> None:
        link = self.link
        interval = link.ping_interval
        ping_sent: float | None = None
        transport.settimeout(interval)
        deliver = link.deliver
        decode = ev.decode
        monotonic = time.monotonic
        recording = link.wire_log.active
        while True:
            frame = transport.recv()
            if frame is None:  # the line was quiet for a while
                now = monotonic()
                if link.user_closed:  # the server did not answer our close frame in time
                    transport.abort()
                    code, reason = link.close_args
                    raise ConnectionClosed(code, reason, by_server=False)
                self._check_expiry(now)
                if interval is None:
                    continue
                if ping_sent is not None:
                    if now - ping_sent >= link.ping_timeout:
                        transport.abort()
                        raise ConnectionClosed(
                            1006,
                            f"keepalive: no answer to a ping within {link.ping_timeout:g} s",
                            by_server=False,
                        )
                    transport.settimeout(max(0.01, ping_sent + link.ping_timeout - now))
                    continue
                transport.ping(b"dashscope_rt")
                ping_sent = now
                transport.settimeout(link.ping_timeout)
                continue
            t = monotonic()
            if ping_sent is not None:
                ping_sent = None
                transport.settimeout(interval)
            opcode, data = frame
            if opcode == OP_PONG:
                continue
            event: Any
            try:
                if opcode == OP_BINARY:
                    raise binary_frame_error(data)
                event = decode(data)
            except ProtocolError as exc:
                event = exc
            else:
                if recording:
                    link.wire_log.received(event)
            try:
                deliver(t, event, len(data))
            except ReceiveBacklogFull:
                transport.fail(1008, "receive backlog full")
                raise
            if t >= self._expiry_check_at:  # after the frame: a rollover must not lose it
                self._check_expiry(t)

    def _check_expiry(self, now: float) -> None:
        link = self.link
        start = link.connected_at
        self._expiry_check_at = now + 1.0
        if start is None:
            return
        remaining = link.session_cap - (now - start)
        lead = link.rollover_lead
        if (
            lead is not None
            and remaining <= lead
            and not self._rollover_failed
            and link.can_roll_over()
        ):
            raise _RollOver
        if self._expiry_warned:
            return
        if remaining <= link.expiry_warning:
            self._expiry_warned = True
            log.warning("the session reaches the service's 120-minute cap in %.0f s", remaining)
            link.deliver(now, SessionExpiring(remaining=max(0.0, remaining)), 0)

    def _redial(self, closed: ConnectionClosed) -> tuple[bool, BaseException | None]:
        """Try the reconnect policy; (True, None) once a new connection is up."""
        link = self.link
        policy = link.reconnect
        if policy is None or not policy.recoverable(closed):
            return False, None
        if not link.begin_redial(closed):
            return False, None
        cause: BaseException = closed
        for attempt in range(1, policy.max_attempts + 1):
            delay = policy.delay(attempt)
            log.warning(
                "connection lost (%s); reconnecting in %.2f s (attempt %d of %d)",
                cause,
                delay,
                attempt,
                policy.max_attempts,
            )
            waiting = Reconnecting(attempt=attempt, delay=delay, cause=cause)
            link.deliver(time.monotonic(), waiting, 0)
            if link.redial_stopped(delay):
                return False, None
            try:
                transport, early, session_id = link.dial()
            except (TransportError, ServerError) as exc:
                cause = exc
                if isinstance(exc, ServerError) or not policy.recoverable(exc):
                    return False, exc
                continue
            notice = Reconnected(attempt=attempt, session_id=session_id)
            if not self._adopt(transport, early, notice):
                return False, None
            log.info("reconnected (attempt %d): session %s", attempt, session_id)
            return True, None
        return False, cause

    def _adopt(self, transport: Transport, early: list[tuple[float, Any]], notice: Any) -> bool:
        """The link takes the new connection; its cap counts afresh. False if closed meanwhile."""
        if not self.link.adopt(transport, early, notice):
            return False
        self._expiry_warned = False
        self._rollover_failed = False
        return True

    def _roll_over(self, old: Transport) -> None:
        """Move to a new server session before the cap (the context goes along).

        Done between turns only; frames being written to the old connection at that moment
        are lost with it.
        """
        link = self.link
        previous = link.session_id
        try:
            transport, early, session_id = link.dial()
        except (TransportError, ServerError) as exc:
            log.warning("rollover to a new session failed (%s); this one runs to the cap", exc)
            self._rollover_failed = True
            return
        notice = RolledOver(session_id=session_id, previous_session_id=previous)
        if not self._adopt(transport, early, notice):
            return
        log.info("rolled over from session %s to %s", previous, session_id)
        old.close(1000, "rollover")
        old.release()
