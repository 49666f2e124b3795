"""The machinery behind :class:`dashscope_rt.Session`: threads, queues, handlers, reconnect.

Threads of one connected session (``N`` is a process-wide session number):

* ``dashscope_rt-reader-N`` blocks in ``Transport.recv``, decodes each frame and puts it on the
  dispatch queue stamped with ``time.monotonic()``. It answers pings, pings a quiet line, records
  received frames and redials when a reconnect policy allows. It never runs user code, so a
  slow handler cannot stall reading or keepalive.
* ``dashscope_rt-dispatch-N`` takes events in arrival order, feeds the sans-IO
  :class:`~dashscope_rt.conversation.Conversation` first, then calls the handlers, then the
  handlers of the derived notices (reply, tool calls, ...).
* ``dashscope_rt-sender-N`` sends queued frames in order. Send methods encode, enqueue and
  return at once, so an audio callback never waits for the network.
* ``dashscope_rt-tool-N_*`` is a small pool, created on the first tool call.

The engine holds no reference to the public ``Session``, so a ``Session`` nobody references
any more (a re-run notebook cell) is finalised and closes its engine.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import enum
import functools
import itertools
import json
import logging
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from . import events as ev
from ._playback import PlaybackLink
from ._sdk_events import Closed, Reconnected, Reconnecting, SessionExpiring
from .config import UNSET, SessionConfig
from .conversation import (
    BargeIn,
    Conversation,
    CreateFailed,
    Reply,
    ResponseFinished,
    ResponseStarted,
    ToolCall,
    ToolCallsReady,
)
from .errors import (
    ConnectionClosed,
    ConnectTimeout,
    HandshakeError,
    InvalidInput,
    ProtocolError,
    RealtimeError,
    ServerError,
    SessionClosed,
    TransportError,
)
from .models import ModelInfo
from .tools import Tool
from .transport import Transport

__all__ = ["Engine", "ReconnectPolicy", "State"]

log = logging.getLogger("dashscope_rt.session")

_counter = itertools.count(1)
_RECOVERABLE = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})
SESSION_CAP_S = 120 * 60.0
_LAG_SAMPLES = 8192
_PONG = 0xA


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """Opt-in automatic redial after a recoverable drop.

    The backoff doubles from ``initial_backoff`` up to ``max_backoff``, varied by ±``jitter`` (a
    fraction). Never used after an authentication failure, a quota (1007) or policy (1008)
    close, or :meth:`Session.close`. The new connection is a fresh server session: the config
    and tools are sent again, but the model has no memory of earlier turns.
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
        HTTP 5xx/408, never on 401/403 (key) or other 4xx such as 429 (rate limit or quota).
        """
        if isinstance(exc, ConnectionClosed):
            return exc.code in self.recoverable_codes
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


# ---------------------------------------------------------------------------------------------
# internal records


@attrs.define
class _Out:
    text: str
    audio: bytes | None = None


_STOP = object()
_CLOSE_FRAME = object()


@attrs.define
class _Call:
    """Run ``fn()`` on the dispatcher thread, in event order."""

    fn: Callable[[], None]


@attrs.define
class _LinkLost:
    """The reader ended: the connection is gone for good."""

    error: ConnectionClosed


@attrs.define
class _Handler:
    key: Any  # a wire type string, "*" (every event), or a class
    fn: Callable[[Any], Any]
    orig: Any = None  # what the user registered, when ``fn`` wraps it

    def matches(self, obj: Any, wire: bool) -> bool:
        key = self.key
        if isinstance(key, str):
            if key == "*":
                return wire
            return getattr(obj, "type", None) == key
        return isinstance(obj, key)


@attrs.define
class _ToolBatch:
    response_id: str | None
    calls: tuple[ToolCall, ...]
    results: dict[str, str] = attrs.field(factory=dict)
    cancelled: bool = False


@attrs.define(eq=False)
class Waiter:
    """A blocking ``ask()`` waiting for its reply (through tool round trips)."""

    generation: int = 0
    event_ids: set[str] = attrs.field(factory=set)
    started: bool = False
    reply: Reply | None = None
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    error: BaseException | None = None
    done: threading.Event = attrs.field(factory=threading.Event)


class _SendQueue:
    """FIFO of outgoing frames, bounded in bytes; ``put`` never blocks."""

    def __init__(self, max_bytes: int) -> None:
        self._dq: collections.deque[tuple[Any, int]] = collections.deque()
        self._cv = threading.Condition(threading.Lock())
        self._bytes = 0
        self.max_bytes = max_bytes

    def put(self, item: Any, nbytes: int = 0) -> None:
        with self._cv:
            if nbytes and self._bytes + nbytes > self.max_bytes:
                raise TransportError(
                    f"send backlog above {self.max_bytes} bytes: the network is slower than the "
                    "data being sent, or the connection is stalled"
                )
            self._bytes += nbytes
            self._dq.append((item, nbytes))
            self._cv.notify()

    def get(self) -> Any:
        with self._cv:
            while not self._dq:
                self._cv.wait()
            item, nbytes = self._dq.popleft()
            self._bytes -= nbytes
            return item

    @property
    def backlog(self) -> int:
        """Bytes waiting to be sent."""
        return self._bytes


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))])


# ---------------------------------------------------------------------------------------------


class Engine:
    """Everything a session does at run time; see the module docstring for its threads."""

    def __init__(
        self,
        *,
        model: ModelInfo,
        url: str,
        headers: Mapping[str, str],
        region: str | None,
        config: SessionConfig,
        tools: Sequence[Tool],
        connect_timeout: float,
        ping_interval: float | None,
        ping_timeout: float,
        close_timeout: float,
        reconnect: ReconnectPolicy | None,
        handler_errors: str,
        ca_file: str | None,
        ssl_context: Any,
        send_backlog_bytes: int,
        record_to: str | None,
        expiry_warning: float,
        tool_workers: int,
    ) -> None:
        self.number = next(_counter)
        self.model = model
        self.url = url
        self._headers = dict(headers)  # holds the key: never logged, never in a repr
        self.region = region
        self.base_config = config
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.reconnect = reconnect
        self.handler_errors = handler_errors
        self.ca_file = ca_file
        self.ssl_context = ssl_context
        self.record_to = record_to
        self.expiry_warning = expiry_warning
        self.tool_workers = tool_workers

        self.state = State.NEW
        self._state_cv = threading.Condition(threading.RLock())
        self.transport: Transport | None = None
        self._link_up = False
        self.session_id: str | None = None
        self.effective: SessionConfig | None = None
        self.session_info: ev.SessionInfo | None = None
        self.connected_at: float | None = None
        self.fatal: BaseException | None = None
        self.closed_event = threading.Event()
        self.close_info: Closed | None = None
        self._user_close = False
        self._close_args: tuple[int, str] = (1000, "")
        self._close_deadline: float | None = None

        self._outq = _SendQueue(send_backlog_bytes)
        self._dq: queue.SimpleQueue[tuple[float, Any]] = queue.SimpleQueue()
        self._pending: tuple[float, Any] | None = None
        self._reader: threading.Thread | None = None
        self.dispatcher: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stop_reconnect = threading.Event()

        self._handlers: tuple[_Handler, ...] = ()
        self._error_handlers: tuple[Callable[[BaseException], Any], ...] = ()
        self._tool_handler: Callable[[ToolCall], Any] | None = None
        self._reg_lock = threading.Lock()
        self._iterators: list[queue.Queue[Any]] = []
        self._iter_lock = threading.Lock()
        self._iter_drops = 0

        # Conversation state: fed by the dispatcher (receive) and by senders (sent).
        self.conv = Conversation(model)
        self.conv_cv = threading.Condition(threading.Lock())
        self.active_response: ev.Response | None = None
        self._tool_batches: list[_ToolBatch] = []
        self._waiters: list[Waiter] = []
        self._update_waiters: list[tuple[str, list[BaseException | None], threading.Event]] = []
        self._finish_waiter: tuple[str, threading.Event] | None = None
        self._audio_since_commit = 0
        self._expiry_warned = False
        self._expiry_check_at = 0.0
        self.generation = 0
        self._drop_cause: ConnectionClosed | None = None

        # Audio uplink: one streaming resampler; the lock keeps convert+enqueue atomic.
        self._audio_lock = threading.Lock()
        self._converter: Any = None
        self._converter_key: tuple[int, int] | None = None

        self.lag_samples: collections.deque[float] = collections.deque(maxlen=_LAG_SAMPLES)
        self._slow_warned: set[int] = set()
        self.slow_handler_warning = 1.0
        self._recorder: Any = None
        self.playback: PlaybackLink | None = None

    # -- config ------------------------------------------------------------------------------------

    def full_config(self) -> SessionConfig:
        """The config to send: the user's config plus the declared tools."""
        cfg = self.base_config
        if self.tools:
            declared = tuple(t.to_wire() for t in self.tools.values())
            names = {t.name for t in self.tools.values()}
            existing = () if cfg.tools is UNSET else tuple(cfg.tools)
            kept = tuple(t for t in existing if t.get("function", {}).get("name") not in names)
            cfg = attrs.evolve(cfg, tools=declared + kept)
        return cfg

    def wire_session(self) -> dict[str, Any]:
        return self.full_config().to_wire(self.model)

    @property
    def input_rate(self) -> int:
        return self.base_config.input_rate(self.model)

    @property
    def output_rate(self) -> int:
        return self.base_config.output_rate(self.model)

    def manual_mode(self) -> bool:
        """True when turn detection is off: as configured, else as the server reports it."""
        if self.base_config.turn_detection is not UNSET:
            return self.base_config.turn_detection is None
        info = self.session_info
        return (
            info is not None and "turn_detection" in info.raw and info.raw["turn_detection"] is None
        )

    def wait_open(self, timeout: float) -> bool:
        """Block while a reconnect is in progress; True once the session is open."""
        deadline = time.monotonic() + timeout
        with self._state_cv:
            while self.state is State.RECONNECTING:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._state_cv.wait(left)
            return self.state is State.OPEN

    def vad_silence_ms(self) -> int:
        """The server VAD's end-of-turn silence (server echo, local config, else 800 ms)."""
        info = self.session_info
        td = info.turn_detection if info is not None else None
        value = td.get("silence_duration_ms") if td else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
        local = getattr(self.base_config.turn_detection, "silence_duration_ms", UNSET)
        return local if isinstance(local, int) else 800

    # -- connecting --------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open, handshake, start the threads. On failure no thread and no socket are left."""
        with self._state_cv:
            if self.state is not State.NEW:
                raise SessionClosed("this session was already connected once; create a new Session")
            self.state = State.CONNECTING
        try:
            self._open_recorder()
            transport, early = self._open_and_handshake()
        except BaseException:
            rec, self._recorder = self._recorder, None
            if rec is not None:
                rec.close()
            with self._state_cv:
                self.state = State.CLOSED
            self.closed_event.set()
            raise
        with self._state_cv:
            if self.state is not State.CONNECTING:  # closed meanwhile from another thread
                transport.abort()
                transport.release()
                self.closed_event.set()
                raise SessionClosed("the session was closed while connecting")
            self.transport = transport
            self._link_up = True
            self.connected_at = time.monotonic()
            self.state = State.OPEN
            self._state_cv.notify_all()
        for item in early:
            self._dq.put(item)
        n = self.number
        self._reader = threading.Thread(
            target=self._read_loop, name=f"dashscope_rt-reader-{n}", daemon=True
        )
        self.dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"dashscope_rt-dispatch-{n}", daemon=True
        )
        self._sender = threading.Thread(
            target=self._send_loop, name=f"dashscope_rt-sender-{n}", daemon=True
        )
        self.dispatcher.start()
        self._sender.start()
        self._reader.start()
        log.debug("session %s connected to %s", self.session_id, self.url)

    def _open_and_handshake(self) -> tuple[Transport, list[tuple[float, Any]]]:
        deadline = time.monotonic() + self.connect_timeout
        wire = self.wire_session()
        transport = Transport.connect(
            self.url,
            headers=self._headers,
            timeout=self.connect_timeout,
            region=self.region,
            ca_file=self.ca_file,
            ssl_context=self.ssl_context,
        )
        try:
            early: list[tuple[float, Any]] = []
            created = self._await(transport, deadline, ev.SessionCreated, early)
            self._apply_session(created.session)
            text = ev.encode(ev.SessionUpdate(session=wire))
            transport.send_text(text)
            self._record_sent(text)
            updated = self._await(transport, deadline, ev.SessionUpdated, early)
            self._apply_session(updated.session)
            return transport, early
        except BaseException:
            transport.abort()
            transport.release()
            raise

    def _await(
        self,
        transport: Transport,
        deadline: float,
        wanted: type[Any],
        early: list[tuple[float, Any]],
    ) -> Any:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectTimeout(
                    f"no {wanted.TYPE} within the connect timeout ({self.connect_timeout:g} s)",
                    url=transport.url,
                )
            transport.settimeout(remaining)
            frame = transport.recv()
            if frame is None or frame[0] == _PONG:
                continue
            t = time.monotonic()
            try:
                event = ev.decode(frame[1])
            except ProtocolError as exc:
                early.append((t, exc))  # reported to on_error once the dispatcher runs
                continue
            self._record_received(event)
            early.append((t, event))
            if isinstance(event, ev.ErrorEvent):
                raise _server_error(event, fatal=True)
            if isinstance(event, wanted):
                return event

    def _apply_session(self, info: ev.SessionInfo | None) -> None:
        if info is None:
            return
        self.session_info = info
        if info.id:
            self.session_id = info.id
        try:
            self.effective = SessionConfig.from_wire(info.raw)
        except RealtimeError:
            log.debug("could not read the effective session config", exc_info=True)

    # -- recording ---------------------------------------------------------------------------------

    def _open_recorder(self) -> None:
        if self.record_to is None:
            return
        from .recording import LogWriter

        self._recorder = LogWriter(
            self.record_to,
            model=self.model.name,
            input_rate=self.input_rate,
            output_rate=self.output_rate,
        )

    def _record_sent(self, text: str, audio: bytes | None = None) -> None:
        rec = self._recorder
        if rec is None:
            return
        try:
            event = json.loads(text)
            if audio is not None:
                event.pop("audio", None)
            rec.record_sent(event, audio=audio)
        except Exception:
            log.debug("recording a sent event failed", exc_info=True)

    def _record_received(self, event: Any) -> None:
        rec = self._recorder
        if rec is None:
            return
        audio = event.audio if isinstance(event, ev.ResponseAudioDelta) else None
        try:
            rec.record_received(dict(getattr(event, "raw", None) or {}), audio=audio)
        except Exception:
            log.debug("recording a received event failed", exc_info=True)

    # -- reader thread -----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        closed: ConnectionClosed
        try:
            while True:
                transport = self.transport
                assert transport is not None
                try:
                    self._read_until_closed(transport)
                    continue  # pragma: no cover - only ever ends by raising
                except ConnectionClosed as exc:
                    closed = exc
                if self._user_close or not self._try_reconnect(closed):
                    self._link_gone(closed)
                    return
        except BaseException as exc:  # a bug: never leave the session hanging
            log.exception("the reader thread failed")
            self._link_gone(ConnectionClosed(1006, f"reader failed: {exc!r}", by_server=False))

    def _read_until_closed(self, transport: Transport) -> None:
        interval = self.ping_interval
        ping_sent: float | None = None
        transport.settimeout(interval)
        put = self._dq.put
        decode = ev.decode
        monotonic = time.monotonic
        recording = self._recorder is not None
        while True:
            frame = transport.recv()
            if frame is None:  # the line was quiet for a while
                now = monotonic()
                if self._user_close:  # the server did not answer our close frame in time
                    transport.abort()
                    code, reason = self._close_args
                    raise ConnectionClosed(code, reason, by_server=False)
                self._check_expiry(now)
                if interval is None:
                    continue
                if ping_sent is not None:
                    if now - ping_sent >= self.ping_timeout:
                        transport.abort()
                        raise ConnectionClosed(
                            1006,
                            f"keepalive: no answer to a ping within {self.ping_timeout:g} s",
                            by_server=False,
                        )
                    transport.settimeout(max(0.01, ping_sent + self.ping_timeout - now))
                    continue
                transport.ping(b"dashscope_rt")
                ping_sent = now
                transport.settimeout(self.ping_timeout)
                continue
            t = monotonic()
            if t >= self._expiry_check_at:
                self._check_expiry(t)
            if ping_sent is not None:
                ping_sent = None
                transport.settimeout(interval)
            opcode, data = frame
            if opcode == _PONG:
                continue
            try:
                event = decode(data)
            except ProtocolError as exc:
                put((t, exc))
                continue
            if recording:
                self._record_received(event)
            put((t, event))

    def _check_expiry(self, now: float) -> None:
        start = self.connected_at
        self._expiry_check_at = now + 1.0
        if start is None or self._expiry_warned:
            return
        remaining = SESSION_CAP_S - (now - start)
        if remaining <= self.expiry_warning:
            self._expiry_warned = True
            log.warning(
                "session %s reaches the service's 120-minute cap in %.0f s",
                self.session_id,
                remaining,
            )
            self._dq.put((now, SessionExpiring(remaining=max(0.0, remaining))))

    def _try_reconnect(self, closed: ConnectionClosed) -> bool:
        policy = self.reconnect
        if policy is None or not policy.recoverable(closed):
            return False
        with self._state_cv:
            if self.state is not State.OPEN:
                return False
            self.state = State.RECONNECTING
            self._link_up = False
            self._state_cv.notify_all()
        old = self.transport
        if old is not None:
            old.abort()
            old.release()
        self._drop_cause = closed
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
            self._dq.put(
                (time.monotonic(), Reconnecting(attempt=attempt, delay=delay, cause=cause))
            )
            if self._stop_reconnect.wait(delay):
                return False
            try:
                transport, early = self._open_and_handshake()
            except (TransportError, ServerError) as exc:
                cause = exc
                if isinstance(exc, ServerError) or not policy.recoverable(exc):
                    self.fatal = exc
                    return False
                continue
            with self._state_cv:
                if self.state is not State.RECONNECTING:  # closed meanwhile
                    transport.abort()
                    transport.release()
                    return False
                self.transport = transport
                self.connected_at = time.monotonic()
                self._expiry_warned = False
                self.generation += 1
                gen = self.generation
                now = time.monotonic()
                self._dq.put((now, _Call(functools.partial(self._reset_after_reconnect, gen))))
                for item in early:
                    self._dq.put(item)
                self._dq.put((now, Reconnected(attempt=attempt, session_id=self.session_id)))
                self.state = State.OPEN
                self._link_up = True
                self._state_cv.notify_all()
            log.info("reconnected (attempt %d): session %s", attempt, self.session_id)
            return True
        self.fatal = cause
        return False

    def _reset_after_reconnect(self, gen: int) -> None:
        """Dispatcher: the server forgot everything; start the state afresh, keep the history."""
        lost = self._drop_cause or ConnectionClosed(1006, "connection lost")
        for w in list(self._waiters):
            if w.generation < gen:
                self._end_waiter(w, error=lost)
        with self.conv_cv:
            old = self.conv
            self.conv = Conversation(self.model)
            self.conv.history = old.history
            self.conv.metrics = old.metrics
            self.conv_cv.notify_all()
        self.active_response = None
        for batch in self._tool_batches:
            batch.cancelled = True
        self._tool_batches.clear()
        self.reset_audio()

    def _link_gone(self, closed: ConnectionClosed) -> None:
        with self._state_cv:
            self._link_up = False
            if self.state is not State.CLOSED:
                self.state = State.CLOSING
            self._state_cv.notify_all()
        self._stop_reconnect.set()
        transport = self.transport
        if transport is not None:
            transport.abort()
        self._outq.put(_STOP)
        self._dq.put((time.monotonic(), _LinkLost(closed)))

    # -- sender thread -----------------------------------------------------------------------------

    def _wait_link(self) -> Transport | None:
        with self._state_cv:
            while True:
                if self._link_up and self.transport is not None:
                    return self.transport
                if self.state in (State.CLOSING, State.CLOSED):
                    return None
                self._state_cv.wait()

    def _send_loop(self) -> None:
        recording = self._recorder is not None
        while True:
            item = self._outq.get()
            if item is _STOP:
                return
            if item is _CLOSE_FRAME:
                tr = self.transport
                if tr is not None and self._link_up:
                    tr.close(*self._close_args)
                return
            while True:
                tr = self._wait_link()
                if tr is None:
                    break  # the connection is gone for good: drop
                try:
                    tr.send_text(item.text)
                except ConnectionClosed:
                    with self._state_cv:
                        if self.transport is tr and self.state is State.OPEN:
                            self._link_up = False  # until the reader decides
                    continue
                if recording:
                    self._record_sent(item.text, item.audio)
                break

    def check_open(self) -> None:
        """Raise :class:`SessionClosed` unless frames can be sent (or queued for a redial)."""
        state = self.state
        if state is State.OPEN or state is State.RECONNECTING:
            return
        if state is State.NEW or state is State.CONNECTING:
            raise SessionClosed("the session is not connected: call connect() or use `with`")
        closed = self.close_info
        detail = ""
        if closed is not None and closed.code is not None:
            detail = f" (code {closed.code}{': ' + closed.reason if closed.reason else ''})"
        raise SessionClosed(f"the session is closed{detail}; nothing more can be sent")

    def send_event(self, event: ev.ClientEvent, *, audio: bytes | None = None) -> str:
        """Encode and enqueue ``event``; return its event id. Thread-safe; never blocks."""
        self.check_open()
        eid = getattr(event, "event_id", None) or ev.new_event_id()
        text = ev.encode(event, event_id=eid)
        with self.conv_cv:
            self.conv.sent(event, event_id=eid)
            self._outq.put(_Out(text, audio), len(text))
        return eid

    def send_raw(self, event: Mapping[str, Any]) -> str:
        self.check_open()
        data = dict(event)
        if not isinstance(data.get("type"), str):
            raise InvalidInput("send_raw() needs a dict with a string 'type'")
        eid = data.get("event_id")
        if not isinstance(eid, str):
            eid = data["event_id"] = ev.new_event_id()
        try:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"send_raw(): the event is not JSON-serialisable: {exc}") from None
        with self.conv_cv:
            self.conv.sent(data, event_id=eid)
            self._outq.put(_Out(text), len(text))
        return eid

    # -- audio -------------------------------------------------------------------------------------

    def append_audio(self, data: Any, sample_rate: int | None, channels: int) -> None:
        from .audio import AudioConverter

        self.check_open()
        rate = self.input_rate if sample_rate is None else sample_rate
        key = (rate, channels)
        with self._audio_lock:
            chunks: list[bytes] = []
            conv = self._converter
            if conv is None:
                conv = AudioConverter(self.input_rate, input_rate=rate, channels=channels)
                self._converter = conv
            elif key != self._converter_key:
                chunks.extend(conv.set_input(rate, channels))
            self._converter_key = key
            chunks.extend(conv.convert(data))
            for chunk in chunks:
                self._send_audio_chunk(chunk)

    def flush_audio(self) -> int:
        """Send what the resampler still holds; return the bytes sent."""
        with self._audio_lock:
            if self._converter is None:
                return 0
            chunks = self._converter.flush()
            for chunk in chunks:
                self._send_audio_chunk(chunk)
            return sum(len(c) for c in chunks)

    def append_pcm(self, pcm: bytes) -> None:
        """Append PCM16 already at the input rate, in 100 ms chunks, after any buffered audio."""
        self.check_open()
        step = max(2, self.input_rate // 10 * 2)
        with self._audio_lock:
            if self._converter is not None:
                for chunk in self._converter.flush():
                    self._send_audio_chunk(chunk)
            for i in range(0, len(pcm), step):
                self._send_audio_chunk(pcm[i : i + step])

    def _send_audio_chunk(self, chunk: bytes) -> None:
        if chunk:
            self.send_event(ev.InputAudioBufferAppend(audio=chunk), audio=chunk)
            self._audio_since_commit += len(chunk)

    def reset_audio(self) -> None:
        with self._audio_lock:
            if self._converter is not None:
                self._converter.reset()
            self._audio_since_commit = 0

    @property
    def audio_since_commit(self) -> int:
        """Audio bytes appended since the last commit or clear."""
        return self._audio_since_commit

    def mark_committed(self) -> None:
        self._audio_since_commit = 0

    # -- handler registry --------------------------------------------------------------------------

    def add_handler(self, key: Any, fn: Callable[[Any], Any], orig: Any = None) -> None:
        _check_callable(fn)
        with self._reg_lock:
            self._handlers = (*self._handlers, _Handler(key, fn, orig))

    def add_error_handler(self, fn: Callable[[BaseException], Any]) -> None:
        _check_callable(fn)
        with self._reg_lock:
            self._error_handlers = (*self._error_handlers, fn)

    def set_tool_handler(self, fn: Callable[[ToolCall], Any]) -> None:
        _check_callable(fn)
        if self._tool_handler is not None:
            log.warning("on_tool_call: the previous tool handler is replaced")
        self._tool_handler = fn

    def remove_handlers(self, key: Any, fn: Callable[..., Any] | None) -> int:
        """Remove handlers by key, by function, or both; return how many were removed."""
        with self._reg_lock:
            removed = 0
            kept: list[_Handler] = []
            for h in self._handlers:
                if (key is None or h.key == key) and (fn is None or fn in (h.fn, h.orig)):
                    removed += 1
                else:
                    kept.append(h)
            self._handlers = tuple(kept)
            if key is None or key == "error":
                before = len(self._error_handlers)
                self._error_handlers = tuple(
                    h for h in self._error_handlers if fn is not None and h != fn
                )
                removed += before - len(self._error_handlers)
            if (
                (key is None or key == "tool_call")
                and self._tool_handler is not None
                and (fn is None or fn == self._tool_handler)
            ):
                self._tool_handler = None
                removed += 1
            return removed

    # -- dispatcher thread -------------------------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the dispatcher thread after the events already queued."""
        self._dq.put((time.monotonic(), _Call(fn)))

    def on_dispatcher(self) -> bool:
        """Whether the calling thread is the dispatcher (handlers run there)."""
        return threading.current_thread() is self.dispatcher

    def _next_item(self) -> tuple[float, Any] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        with self.conv_cv:
            deadline = self.conv.next_deadline()
        if self._close_deadline is not None:
            deadline = min(deadline or self._close_deadline, self._close_deadline)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._dq.get(timeout=timeout)
        except queue.Empty:
            return None

    def _peek(self, timeout: float) -> tuple[float, Any] | None:
        if self._pending is None:
            try:
                self._pending = self._dq.get(timeout=timeout)
            except queue.Empty:
                return None
        return self._pending

    def _dispatch_loop(self) -> None:
        try:
            while True:
                item = self._next_item()
                if item is None:
                    self._close_watchdog()
                    with self.conv_cv:
                        notices = self.conv.poll()
                        self.conv_cv.notify_all()
                    now = time.monotonic()
                    for notice in notices:
                        self._notice(notice, now)
                    continue
                if self._close_deadline is not None:
                    self._close_watchdog()
                t, obj = item
                if isinstance(obj, _LinkLost):
                    self._finish(obj.error)
                    return
                self._dispatch_one(t, obj)
        except BaseException:  # a bug: report it and end the session cleanly
            log.exception("the dispatcher thread failed")
            self._finish(ConnectionClosed(1006, "dispatcher failed", by_server=False))

    def _close_watchdog(self) -> None:
        """Abort a close that the server does not answer (needed when no thread joins)."""
        due = self._close_deadline
        if due is not None and time.monotonic() >= due:
            self._close_deadline = None
            tr = self.transport
            if tr is not None:
                tr.abort()

    def _dispatch_one(self, t: float, obj: Any) -> None:
        if isinstance(obj, _Call):
            obj.fn()
            return
        if isinstance(obj, ProtocolError):
            self.report_error(obj)
            return
        if isinstance(obj, (Reconnecting, Reconnected, SessionExpiring)):
            self._emit(obj, t, wire=True)
            return
        with self.conv_cv:
            notices = self.playback.cut(obj, self.conv, t) if self.playback is not None else []
            notices += self.conv.receive(obj, now=t)
            self.conv_cv.notify_all()
        self._internal(obj)
        self._emit(obj, t, wire=True)
        for notice in notices:
            self._notice(notice, t)
        if isinstance(obj, ev.ErrorEvent):
            self._server_error_event(obj)

    def _emit(self, obj: Any, t: float, *, wire: bool) -> None:
        first = True
        for h in self._handlers:
            if h.matches(obj, wire):
                if first:
                    self.lag_samples.append(time.monotonic() - t)
                    first = False
                self._call_handler(h.fn, obj)
        if wire and self._iterators:
            self._feed_iterators(obj)

    def _call_handler(self, fn: Callable[[Any], Any], obj: Any) -> None:
        start = time.monotonic()
        try:
            fn(obj)
        except Exception as exc:
            self.report_error(exc, handler=fn)
        took = time.monotonic() - start
        if took > self.slow_handler_warning and id(fn) not in self._slow_warned:
            self._slow_warned.add(id(fn))
            log.warning(
                "handler %s took %.2f s; later events wait for it (the connection itself is "
                "still served). Move slow work to another thread.",
                _name(fn),
                took,
            )

    def report_error(self, exc: BaseException, *, handler: Any = None) -> None:
        """Give ``exc`` to the ``on_error`` handlers (default: log it). Dispatcher thread."""
        handlers = self._error_handlers
        if not handlers:
            if isinstance(exc, ServerError):
                log.error("server error: %s", exc)
            elif handler is not None or exc.__traceback__ is not None:
                where = f"handler {_name(handler)}" if handler is not None else "a tool"
                log.error(
                    "%s raised:\n%s",
                    where,
                    "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                )
            else:
                log.error("%s: %s", type(exc).__name__, exc)
        for fn in handlers:
            try:
                fn(exc)
            except Exception:
                log.exception("the on_error handler %s raised", _name(fn))
        if handler is not None and self.handler_errors == "raise" and self.fatal is None:
            self.fatal = exc
            self.close_async(1011, "handler error")

    def _server_error_event(self, event: ev.ErrorEvent) -> None:
        # A fatal error is followed at once by the server closing the socket: look for that.
        nxt = self._peek(0.2)
        fatal = nxt is not None and isinstance(nxt[1], _LinkLost) and nxt[1].error.by_server
        err = _server_error(event, fatal=fatal)
        if fatal and self.fatal is None:
            self.fatal = err
        eid = event.error.event_id
        self._resolve_update(eid, err)
        if self._finish_waiter is not None and (eid is None or eid == self._finish_waiter[0]):
            self._resolve_finish()
        for w in list(self._waiters):
            # Without an event id, an error before the response started is taken as the
            # refusal of the waiter's request (Omni errors may not carry error.event_id).
            if fatal or (eid in w.event_ids if eid is not None else not w.started):
                self._end_waiter(w, error=err)
        self.report_error(err)

    def _notice(self, notice: Any, t: float) -> None:
        if isinstance(notice, ResponseStarted):
            for w in self._waiters:
                w.started = True
        elif isinstance(notice, ResponseFinished):
            self.active_response = None
            self._on_reply(notice.reply)
        elif isinstance(notice, ToolCallsReady):
            self._start_tools(notice)
        elif isinstance(notice, BargeIn):
            self.cancel_tool_batches("barge-in")
        elif isinstance(notice, CreateFailed):
            for w in list(self._waiters):
                if notice.event_id is not None and notice.event_id in w.event_ids:
                    self._end_waiter(
                        w, error=ServerError(f"response.create failed: {notice.message}")
                    )
        self._emit(notice, t, wire=False)
        if isinstance(notice, ResponseFinished):
            self._emit(notice.reply, t, wire=False)
        if isinstance(notice, (ResponseFinished, CreateFailed)):
            self._flush_tools()

    def _internal(self, obj: Any) -> None:
        """Session bookkeeping, done before any user code sees ``obj``."""
        if self.playback is not None:
            self.playback.feed(obj)
        if isinstance(obj, ev.SessionCreated):
            self._apply_session(obj.session)
        elif isinstance(obj, ev.SessionUpdated):
            self._apply_session(obj.session)
            self._resolve_update(None, None)
        elif isinstance(obj, ev.ResponseCreated):
            self.active_response = obj.response
        elif isinstance(obj, ev.InputAudioBufferSpeechStarted):
            self.cancel_tool_batches("the user spoke")
        elif isinstance(obj, (ev.InputAudioBufferCommitted, ev.InputAudioBufferCleared)):
            self._audio_since_commit = 0
        elif isinstance(obj, ev.SessionFinished):
            self._resolve_finish()

    def report_interruption(self, response_id: str | None, played_ms: float) -> None:
        """Record a cut reply now; its notices go to the handlers from the dispatcher."""
        with self.conv_cv:
            notices = self.conv.mark_interrupted(response_id, played_ms)
        t = time.monotonic()
        for notice in notices:
            self.call_soon(functools.partial(self._notice, notice, t))

    # -- blocking helpers' plumbing ----------------------------------------------------------------

    def add_update_waiter(
        self, event_id: str
    ) -> tuple[list[BaseException | None], threading.Event]:
        box: list[BaseException | None] = []
        done = threading.Event()
        with self.conv_cv:
            self._update_waiters.append((event_id, box, done))
        return box, done

    def _resolve_update(self, event_id: str | None, error: BaseException | None) -> None:
        with self.conv_cv:
            for entry in self._update_waiters:
                eid, box, done = entry
                if error is not None and event_id is not None and event_id != eid:
                    continue
                box.append(error)
                done.set()
                self._update_waiters.remove(entry)
                return

    def set_finish_waiter(self, event_id: str) -> threading.Event:
        done = threading.Event()
        self._finish_waiter = (event_id, done)
        return done

    def _resolve_finish(self) -> None:
        waiter, self._finish_waiter = self._finish_waiter, None
        if waiter is not None:
            waiter[1].set()

    def add_waiter(self) -> Waiter:
        waiter = Waiter(generation=self.generation)
        with self.conv_cv:
            self._waiters.append(waiter)
        return waiter

    def remove_waiter(self, waiter: Waiter) -> None:
        with self.conv_cv:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _end_waiter(
        self, w: Waiter, *, reply: Reply | None = None, error: BaseException | None = None
    ) -> None:
        w.reply, w.error = reply, error
        w.done.set()
        self.remove_waiter(w)

    def _on_reply(self, reply: Reply) -> None:
        for w in list(self._waiters):
            if not w.started:
                continue
            w.tool_calls.extend(reply.tool_calls)
            if (
                reply.tool_calls
                and reply.status not in ("cancelled", "failed")
                and self._will_answer(reply.tool_calls)
            ):
                w.started = False  # the model goes on once the results are in
                continue
            self._end_waiter(w, reply=reply)

    def _will_answer(self, calls: Sequence[ToolCall]) -> bool:
        return self._tool_handler is not None or any(c.name in self.tools for c in calls)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no response is in progress or pending (not on the dispatcher)."""
        deadline = time.monotonic() + timeout
        with self.conv_cv:
            while not self.conv.can_create_response():
                left = deadline - time.monotonic()
                if left <= 0 or self.closed_event.is_set():
                    return False
                self.conv_cv.wait(min(left, 0.5))
            return True

    # -- tools -------------------------------------------------------------------------------------

    def _start_tools(self, notice: ToolCallsReady) -> None:
        if not self.tools and self._tool_handler is None:
            log.warning(
                "the model called %s but no tools= or on_tool_call handler is set",
                ", ".join(repr(c.name) for c in notice.calls),
            )
            return
        batch = _ToolBatch(response_id=notice.response_id, calls=notice.calls)
        self._tool_batches.append(batch)
        pool = self._get_pool()
        for call in notice.calls:
            try:
                pool.submit(self._run_tool, batch, call)
            except RuntimeError:  # shut down: we are closing
                return

    def _get_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.tool_workers,
                    thread_name_prefix=f"dashscope_rt-tool-{self.number}",
                )
            return self._pool

    def _run_tool(self, batch: _ToolBatch, call: ToolCall) -> None:
        error: BaseException | None = None
        try:
            declared = self.tools.get(call.name)
            if declared is not None and declared.fn is not None:
                output = declared.invoke(call.arguments)
            elif self._tool_handler is not None:
                result = self._tool_handler(call)
                output = result if isinstance(result, str) else json.dumps(result, default=str)
            else:
                raise LookupError(f"no function for the tool {call.name!r}")
        except Exception as exc:
            error = exc
            output = json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False)

        def done() -> None:
            self._tool_done(batch, call, output, error)

        self._dq.put((time.monotonic(), _Call(done)))

    def _tool_done(
        self, batch: _ToolBatch, call: ToolCall, output: str, error: BaseException | None
    ) -> None:
        if error is not None:
            self.report_error(error)
        if batch.cancelled:
            log.info("dropped the result of %r: the user interrupted that turn", call.name)
            return
        batch.results[call.call_id] = output
        self._flush_tools()

    def cancel_tool_batches(self, why: str) -> None:
        """Drop the results still to come (barge-in, cancel, clear). Dispatcher thread."""
        for batch in self._tool_batches:
            batch.cancelled = True
            log.debug("results for response %s will be dropped (%s)", batch.response_id, why)
        self._tool_batches = []

    def _flush_tools(self) -> None:
        """Send the results of the oldest complete batch and one response.create, if idle."""
        if not self._tool_batches or self.state is not State.OPEN:
            return
        batch = self._tool_batches[0]
        if len(batch.results) < len(batch.calls):
            return
        with self.conv_cv:
            if not self.conv.can_create_response():
                return  # sent once the current response is done
        self._tool_batches.pop(0)
        try:
            for call in batch.calls:
                self.send_event(
                    ev.ConversationItemCreate.function_call_output(
                        call.call_id, batch.results[call.call_id]
                    )
                )
            self.send_event(ev.ResponseCreate())
        except SessionClosed:
            return
        for w in self._waiters:
            if w.tool_calls:
                w.started = True

    # -- pull iterator -----------------------------------------------------------------------------

    def iterate(self, timeout: float | None, maxsize: int) -> Iterator[Any]:
        q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        with self._iter_lock:
            self._iterators.append(q)
        try:
            while True:
                if self.closed_event.is_set() and q.empty():
                    return
                try:
                    item = q.get(timeout=timeout if timeout is not None else 1.0)
                except queue.Empty:
                    if timeout is not None:
                        return
                    continue
                if item is _STOP:
                    return
                yield item
        finally:
            with self._iter_lock:
                if q in self._iterators:
                    self._iterators.remove(q)

    def _feed_iterators(self, obj: Any) -> None:
        with self._iter_lock:
            for q in self._iterators:
                try:
                    q.put_nowait(obj)
                except queue.Full:
                    self._iter_drops += 1
                    if self._iter_drops in (1, 100, 10_000):
                        log.warning(
                            "events(): the consumer is too slow; %d events dropped (maxsize %d)",
                            self._iter_drops,
                            q.maxsize,
                        )

    # -- closing -----------------------------------------------------------------------------------

    def close_async(self, code: int = 1000, reason: str = "") -> bool:
        """Start closing (never blocks); False if it was already closing or closed."""
        with self._state_cv:
            if self.state in (State.CLOSING, State.CLOSED):
                return False
            never_opened = self.state in (State.NEW, State.CONNECTING)
            self.state = State.CLOSING if not never_opened else State.CLOSED
            self._user_close = True
            self._close_args = (code, reason)
            self._close_deadline = time.monotonic() + self.close_timeout
            self._state_cv.notify_all()
        self._stop_reconnect.set()
        if never_opened:
            self.closed_event.set()
        else:
            self._outq.put(_CLOSE_FRAME)  # after the frames already queued
        return True

    def close(self, code: int = 1000, reason: str = "", timeout: float | None = None) -> None:
        """Close, then join every thread but the calling one (each join is bounded)."""
        timeout = self.close_timeout if timeout is None else timeout
        self.close_async(code, reason)
        me = threading.current_thread()
        if me is self.dispatcher:
            return  # the threads end by themselves; on_close runs after this handler
        deadline = time.monotonic() + timeout
        sender, reader, dispatcher = self._sender, self._reader, self.dispatcher
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
        self._shutdown_pool()
        if dispatcher is not None and dispatcher is not me:
            dispatcher.join(max(0.5, deadline - time.monotonic()))
            if dispatcher.is_alive():
                log.warning("a handler is still running after close(); its thread ends later")

    def _shutdown_pool(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _finish(self, closed: ConnectionClosed) -> None:
        """Dispatcher: the connection is gone. Fire ``on_close`` once and end."""
        transport = self.transport
        if transport is not None:
            transport.release()
        rec, self._recorder = self._recorder, None
        if rec is not None:
            try:
                rec.close()
            except Exception:
                log.debug("closing the recording failed", exc_info=True)
        if self.fatal is None and not self._user_close and closed.code not in (1000, 1005):
            self.fatal = closed
        if closed.by_server:
            log.info("session %s closed by the server: %s", self.session_id, closed)
        info = Closed(
            code=closed.code, reason=closed.reason, by_server=closed.by_server, error=self.fatal
        )
        self.close_info = info
        with self._state_cv:
            self.state = State.CLOSED
            self._link_up = False
            self._state_cv.notify_all()
        self._outq.put(_STOP)
        fail: BaseException = self.fatal or SessionClosed(f"the session ended: {closed}")
        for w in list(self._waiters):
            self._end_waiter(w, error=fail)
        with self.conv_cv:
            pending, self._update_waiters = self._update_waiters, []
            self.conv_cv.notify_all()
        for _eid, box, done in pending:
            box.append(fail)
            done.set()
        self._resolve_finish()
        self._shutdown_pool()
        self._emit(info, time.monotonic(), wire=True)
        with self._iter_lock:
            for q in self._iterators:
                with contextlib.suppress(queue.Full):
                    q.put_nowait(_STOP)
        self.closed_event.set()

    def lag_percentiles(self) -> tuple[float, float]:
        """p50 and p99, in seconds, of frame read → first handler call."""
        samples = list(self.lag_samples)
        return percentile(samples, 0.5), percentile(samples, 0.99)


# ---------------------------------------------------------------------------------------------


def _server_error(event: ev.ErrorEvent, *, fatal: bool) -> ServerError:
    d = event.error
    return ServerError(
        d.message or "server error",
        type=d.type or "",
        code=d.code,
        param=d.param,
        event_id=d.event_id,
        fatal=fatal,
    )


def _check_callable(fn: Any) -> None:
    if not callable(fn):
        raise InvalidInput(f"a handler must be callable, got {fn!r}")


def _name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))
