"""The link: one session's connection to the service, kept alive and redialled.

:class:`Link` owns the socket, the connection's state and two threads:

* ``dashscope_rt-reader-N`` (:mod:`~dashscope_rt._reader`) decodes each frame and hands it on
  with its arrival time (``deliver``), keeps the line alive, watches the 120-minute cap and
  redials when a :class:`ReconnectPolicy` allows; it changes the state through the link's
  methods (``begin_redial``, ``adopt``, ``gone``).
* ``dashscope_rt-sender-N`` writes queued frames in order, so that a send never waits for the
  network.

It also performs the handshake (``session.created`` → ``session.update`` → ``session.updated``)
and the closing handshake. It knows the protocol only as far as the handshake needs.
"""

from __future__ import annotations

import enum
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from . import events as ev
from . import limits
from ._handshake import Dialer, WireLog
from ._reader import Reader
from ._sdk_events import RolledOver
from ._voice_refusal import refused_voice
from .errors import (
    ConnectionClosed,
    HandshakeError,
    SendBacklogFull,
    SessionClosed,
    TransportError,
)
from .transport import ProxySetting, Transport

__all__ = ["Link", "LinkLost", "ReconnectPolicy", "State"]

log = logging.getLogger("dashscope_rt.session")

SESSION_CAP_S = limits.MAX_SESSION_DURATION_S
_RECOVERABLE = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """Opt-in automatic redial after a recoverable drop.

    The backoff doubles from ``initial_backoff`` up to ``max_backoff``, varied by ±``jitter`` (a
    fraction). Never used after an authentication failure, a quota (1007) or policy (1008)
    close, or :meth:`Session.close`. The new connection is a fresh server session: the config and
    tools are sent again, and the earlier turns only as the transcript in its instructions.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    initial_backoff: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_backoff: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0), attrs.validators.le(1)]
    )
    recoverable_codes: frozenset[int] = attrs.field(default=_RECOVERABLE, converter=frozenset)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def recoverable(self, exc: BaseException) -> bool:
        """Whether a connection that ended with ``exc`` may be redialled.

        Close codes per ``recoverable_codes``; a failed redial is retried on network errors and
        HTTP 5xx/408, never on 401/403 (key) or other 4xx such as 429 (rate limit or quota),
        nor after a refused voice (a new connection would be refused the same way).
        """
        if isinstance(exc, ConnectionClosed):
            return exc.code in self.recoverable_codes and refused_voice(exc.reason) is None
        if isinstance(exc, HandshakeError):
            return exc.status >= 500 or exc.status == 408
        return isinstance(exc, TransportError)


class State(enum.Enum):
    """Lifecycle of a session."""

    NEW = "new"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"


@attrs.define
class LinkLost:
    """The reader ended: the connection is gone for good (``cause``: why a redial failed)."""

    error: ConnectionClosed
    cause: BaseException | None = None


@attrs.define
class _Out:
    text: str
    audio: bytes | None = None


_STOP = object()
_CLOSE_FRAME = object()


class _SendQueue:
    """FIFO of outgoing frames, bounded in bytes; ``put`` never blocks.

    A C ``SimpleQueue`` carries the items to the sender thread; a lock guards the byte count and
    ``pending``, the items put and not yet ``done()`` (queued, or being written).
    """

    def __init__(self, max_bytes: int) -> None:
        self._q: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._bytes = 0
        self._pending = 0
        self.max_bytes = max_bytes

    def put(self, item: Any, nbytes: int = 0) -> None:
        with self._lock:
            if nbytes and self._bytes + nbytes > self.max_bytes:
                raise SendBacklogFull(
                    f"send backlog above {self.max_bytes} bytes: the network is slower than "
                    "the data being sent, or the connection is stalled (nothing queued was lost)",
                    backlog=self._bytes,
                    limit=self.max_bytes,
                )
            self._bytes += nbytes
            self._pending += 1
            self._q.put((item, nbytes))  # under the lock: the order of the count

    def send_now(self, write: Callable[[], bool]) -> bool:
        """Run ``write()`` (which must not block) if nothing is queued or being written: a frame
        that goes out this way cannot overtake one before it. Its result: whether it wrote."""
        with self._lock:
            return self._pending == 0 and write()

    def get(self) -> Any:
        item, nbytes = self._q.get()
        if nbytes:
            with self._lock:
                self._bytes -= nbytes
        return item

    def done(self) -> None:
        """The item last returned by :meth:`get` is written (or dropped)."""
        with self._lock:
            self._pending -= 1

    @property
    def backlog(self) -> int:
        """Bytes waiting to be sent."""
        return self._bytes


class Link:
    """The connection of one session: handshake, reader, keepalive, sender, redial, close.

    ``deliver(t, obj)`` receives, in order, every decoded event (or :class:`ProtocolError`),
    the SDK's own notices (:class:`Reconnecting`, ...) and finally one :class:`LinkLost`.
    ``session_update()`` gives the ``session`` object to send at each handshake;
    ``on_session(info)`` is told the server's ``session.created``/``updated`` payloads during
    a handshake; ``on_redial(generation, planned)`` runs (on the reader thread) once a redial
    (or, ``planned``, a rollover) succeeded, before the events of the new connection are
    delivered; the engine then calls :meth:`state_reset` once its state is fresh. With
    ``rollover_lead`` set, when the cap (``session_cap``) is that close and ``can_roll_over()``
    says no turn is in progress, the reader moves to a new server session itself.
    """

    def __init__(
        self,
        *,
        number: int,
        url: str,
        headers: Mapping[str, str],
        region: str | None,
        connect_timeout: float,
        ping_interval: float | None,
        ping_timeout: float,
        close_timeout: float,
        reconnect: ReconnectPolicy | None,
        ca_file: str | None,
        ssl_context: Any,
        proxy: ProxySetting,
        max_frame_bytes: int,
        send_backlog_bytes: int,
        expiry_warning: float,
        deliver: Callable[[float, Any, int], None],
        session_update: Callable[[], dict[str, Any]],
        on_session: Callable[[ev.SessionInfo | None], None],
        on_redial: Callable[[int, bool], None],
    ) -> None:
        self.number = number
        self.url = url
        self._dialer = Dialer(
            url=url,
            headers=headers,
            region=region,
            timeout=connect_timeout,
            ca_file=ca_file,
            ssl_context=ssl_context,
            proxy=proxy,
            max_frame_bytes=max_frame_bytes,
        )
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.reconnect = reconnect
        self.expiry_warning = expiry_warning
        self.deliver = deliver
        self._session_update = session_update
        self._on_session = on_session
        self._on_redial = on_redial
        self.wire_log = WireLog()

        self.state = State.NEW
        self._state_cv = threading.Condition(threading.RLock())
        self.transport: Transport | None = None
        self._up = False  # a transport is usable for sending
        self.connected_at: float | None = None
        self.generation = 0
        self.drop_cause: ConnectionClosed | None = None
        self.user_closed = False
        self.close_args: tuple[int, str] = (1000, "")
        self._close_deadline: float | None = None
        self._stop_reconnect = threading.Event()
        self._outq = _SendQueue(send_backlog_bytes)
        self._reader = Reader(self)
        self._sender: threading.Thread | None = None
        self.session_cap = SESSION_CAP_S
        self.rollover_lead: float | None = None
        self.can_roll_over: Callable[[], bool] = lambda: False
        self._ready_generation = 0  # the generation whose session state is in place
        self.session_id: str | None = None  # of the current server session

    # -- state -------------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Bytes queued and not yet written to the socket."""
        return self._outq.backlog

    def is_open(self) -> bool:
        return self.state is State.OPEN

    def check_open(self, closed_detail: str = "") -> None:
        """Raise :class:`SessionClosed` unless frames can be sent (or queued for a redial)."""
        state = self.state
        if state is State.OPEN or state is State.RECONNECTING:
            return
        if state is State.NEW or state is State.CONNECTING:
            raise SessionClosed("the session is not connected: call connect() or use `with`")
        raise SessionClosed(f"the session is closed{closed_detail}; nothing more can be sent")

    def wait_open(self, timeout: float) -> bool:
        """Block while a redial is in progress; True once the link is open.

        Open means also that the engine has reset its state for the new connection, so that
        what is sent next is accounted to it, not to the old one.
        """
        deadline = time.monotonic() + timeout
        with self._state_cv:
            while self.state is State.RECONNECTING or (
                self.state is State.OPEN and self._ready_generation < self.generation
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._state_cv.wait(left)
            return self.state is State.OPEN

    def state_reset(self, generation: int) -> None:
        """The engine's state is fresh for connection ``generation`` (see :meth:`wait_open`)."""
        with self._state_cv:
            self._ready_generation = generation
            self._state_cv.notify_all()

    def mark_closed(self) -> None:
        """The session has ended (the dispatcher has run ``on_close``)."""
        with self._state_cv:
            self.state = State.CLOSED
            self._up = False
            self._state_cv.notify_all()
        self._outq.put(_STOP)

    # -- connecting --------------------------------------------------------------------------------

    def begin_connect(self) -> None:
        with self._state_cv:
            if self.state is not State.NEW:
                raise SessionClosed("this session was already connected once; create a new Session")
            self.state = State.CONNECTING

    def connect(self) -> None:
        """Handshake, then start the reader and the sender (after :meth:`begin_connect`).

        On failure no thread and no socket are left, and the state is CLOSED.
        """
        try:
            transport, early, self.session_id = self.dial()
        except BaseException:
            with self._state_cv:
                self.state = State.CLOSED
            raise
        with self._state_cv:
            if self.state is not State.CONNECTING:  # closed meanwhile from another thread
                transport.abort()
                transport.release()
                raise SessionClosed("the session was closed while connecting")
            self.transport = transport
            self._up = True
            self.connected_at = time.monotonic()
            self.state = State.OPEN
            self._state_cv.notify_all()
        for t, obj in early:
            self.deliver(t, obj, 0)
        n = self.number
        self._sender = threading.Thread(
            target=self._send_loop, name=f"dashscope_rt-sender-{n}", daemon=True
        )
        self._sender.start()
        self._reader.start()

    def dial(self) -> tuple[Transport, list[tuple[float, Any]], str | None]:
        """A new connection, handshaken: (transport, events received early, session id)."""
        return self._dialer.dial(self._session_update(), self._on_session, self.wire_log)

    # -- the reader's changes (see _reader) -------------------------------------------------

    def begin_redial(self, closed: ConnectionClosed) -> bool:
        """Reader: the connection dropped and may be redialled; False if closing already."""
        with self._state_cv:
            if self.state is not State.OPEN:
                return False
            self.state = State.RECONNECTING
            self._up = False
            self._state_cv.notify_all()
        old = self.transport
        if old is not None:
            old.abort()
            old.release()
        self.drop_cause = closed
        return True

    def redial_stopped(self, delay: float) -> bool:
        """Reader: wait ``delay`` before a redial; True if closing stopped it meanwhile."""
        return self._stop_reconnect.wait(delay)

    def adopt(self, transport: Transport, early: list[tuple[float, Any]], notice: Any) -> bool:
        """Reader: make a freshly handshaken connection the link's (``notice``: Reconnected after
        a redial, RolledOver before the cap); False if closed meanwhile."""
        planned = isinstance(notice, RolledOver)
        with self._state_cv:
            if self.state is not (State.OPEN if planned else State.RECONNECTING):
                transport.abort()
                transport.release()
                return False
            self.transport = transport
            self.session_id = getattr(notice, "session_id", None)
            self.connected_at = time.monotonic()
            self.generation += 1
            self._on_redial(self.generation, planned)
            now = time.monotonic()
            for t, obj in early:
                self.deliver(t, obj, 0)
            self.deliver(now, notice, 0)
            self.state = State.OPEN
            self._up = True
            self._state_cv.notify_all()
        return True

    def gone(self, closed: ConnectionClosed, cause: BaseException | None = None) -> None:
        """Reader: the connection is gone for good (``cause``: why a redial failed)."""
        with self._state_cv:
            self._up = False
            if self.state is not State.CLOSED:
                self.state = State.CLOSING
            self._state_cv.notify_all()
        self._stop_reconnect.set()
        transport = self.transport
        if transport is not None:
            transport.abort()
        self._outq.put(_STOP)
        self.deliver(time.monotonic(), LinkLost(closed, cause), 0)

    # -- sender thread -----------------------------------------------------------------------------

    def send(self, text: str, audio: bytes | None = None) -> None:
        """Send one text frame (``audio``: the PCM it carries, for the recording); never blocks.

        Written on this thread when the sender is idle and the socket has room for it (no
        hand-off, no thread to wake: most of an append's cost at real-time pace), else queued.
        """
        tr = self.transport
        log = (lambda: self.wire_log.sent(text, audio)) if self.wire_log.active else None
        if (
            tr is not None
            and self._up
            and self.state is State.OPEN
            and self._outq.send_now(lambda: tr.try_send_text(text, before=log))
        ):
            return
        self._outq.put(_Out(text, audio), len(text))

    def _wait_up(self) -> Transport | None:
        with self._state_cv:
            while True:
                if self._up and self.transport is not None:
                    return self.transport
                if self.state in (State.CLOSING, State.CLOSED):
                    return None
                self._state_cv.wait()

    def _send_loop(self) -> None:
        recording = self.wire_log.active
        while True:
            item = self._outq.get()
            if item is _STOP:
                return
            if item is _CLOSE_FRAME:
                tr = self.transport
                if tr is not None and self._up:
                    tr.close(*self.close_args)
                return
            logged = False
            while True:
                tr = self._wait_up()
                if tr is None:
                    break  # the connection is gone for good: drop
                if recording and not logged:
                    # Logged before the write, so that the log never shows a reply before
                    # its request (the reader may log the answer before this thread resumes).
                    self.wire_log.sent(item.text, item.audio)
                    logged = True
                try:
                    tr.send_text(item.text)
                except ConnectionClosed:
                    with self._state_cv:
                        if self.transport is tr and self.state is State.OPEN:
                            self._up = False  # until the reader decides
                    continue
                break
            self._outq.done()

    # -- closing -----------------------------------------------------------------------------------

    def close_async(self, code: int = 1000, reason: str = "") -> tuple[bool, bool]:
        """Start closing (never blocks): (started, never_opened).

        ``started`` is False when it was already closing or closed; ``never_opened`` is True
        when no connection was ever up (the session is then CLOSED at once).
        """
        with self._state_cv:
            if self.state in (State.CLOSING, State.CLOSED):
                return False, False
            never_opened = self.state in (State.NEW, State.CONNECTING)
            self.state = State.CLOSING if not never_opened else State.CLOSED
            self.user_closed = True
            self.close_args = (code, reason)
            self._close_deadline = time.monotonic() + self.close_timeout
            self._state_cv.notify_all()
        self._stop_reconnect.set()
        if not never_opened:
            self._outq.put(_CLOSE_FRAME)  # after the frames already queued
        return True, never_opened

    @property
    def close_deadline(self) -> float | None:
        """When an unanswered close is aborted (None: not closing)."""
        return self._close_deadline

    def close_watchdog(self) -> None:
        """Abort a close that the server does not answer (needed when no thread joins)."""
        due = self._close_deadline
        if due is not None and time.monotonic() >= due:
            self._close_deadline = None
            tr = self.transport
            if tr is not None:
                tr.abort()

    def join(self, deadline: float) -> None:
        """Wait for the sender and the reader to end (by ``deadline``), aborting if need be."""
        me = threading.current_thread()
        sender, reader = self._sender, self._reader.thread
        if sender is not None and sender is not me:
            sender.join(max(0.0, deadline - time.monotonic()))
            if sender.is_alive():  # stuck in a send: the abort below frees it
                log.warning("the send queue did not drain within the close timeout")
        if reader is not None and reader is not me:
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():  # no close echo from the server
                tr = self.transport
                if tr is not None:
                    tr.abort()
                reader.join(1.0)
        if sender is not None and sender is not me and sender.is_alive():
            self._outq.put(_STOP)
            sender.join(1.0)

    def release(self) -> None:
        """Free the socket once the connection is gone."""
        transport = self.transport
        if transport is not None:
            transport.release()
