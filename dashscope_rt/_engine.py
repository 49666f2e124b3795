"""The coordinator behind :class:`dashscope_rt.Session`: it wires the parts and keeps the state.

The parts, each in its own module:

* :class:`~dashscope_rt._link.Link` — the connection: handshake, reader thread (keepalive,
  redial), sender thread, closing.
* :class:`~dashscope_rt._dispatch.Dispatcher` — the dispatcher thread, the handler registry,
  error reporting and ``events()`` iterators.
* :class:`~dashscope_rt._uplink.Uplink` — audio conversion and chunking, commit accounting,
  the image-after-audio rule.
* :class:`~dashscope_rt._tool_runner.ToolRunner` — tool calls in a pool, their results.
* :class:`~dashscope_rt._waiters.Waiters` — the blocking calls waiting for an answer.

The :class:`Engine` holds what they share: the config, the server's session info and the sans-IO
:class:`~dashscope_rt.conversation.Conversation`. For each event the dispatcher delivers it
updates the conversation first, then the session's bookkeeping, then calls the handlers, then
routes the conversation's notices (reply, tool calls, barge-in, ...). It holds no reference to
the public ``Session``, so a ``Session`` nobody references any more is finalised and closes it.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from . import events as ev
from ._dispatch import Dispatcher
from ._handshake import server_error
from ._legacy import LegacyReplies
from ._link import Link, LinkLost, ReconnectPolicy, State
from ._playback import PlaybackLink
from ._sdk_events import Closed, Reconnected, Reconnecting, RolledOver, SessionExpiring
from ._settings import SessionSettings
from ._tool_runner import ToolRunner
from ._uplink import Uplink
from ._voice_refusal import voice_refusal
from ._waiters import Waiters
from .config import SessionConfig
from .conversation import (
    BargeIn,
    BudgetExceeded,
    Conversation,
    CreateFailed,
    ResponseFinished,
    ResponseStarted,
    ToolCallsReady,
)
from .errors import (
    ConnectionClosed,
    InvalidInput,
    InvalidType,
    ProtocolError,
    ServerError,
    SessionClosed,
    Timeout,
)
from .models import ModelInfo
from .recording import LogWriter
from .tools import Tool
from .transport import ProxySetting, Transport

__all__ = ["Engine"]

log = logging.getLogger("dashscope_rt.session")

T = TypeVar("T")
_counter = itertools.count(1)
_SDK_NOTICES = (Reconnecting, Reconnected, RolledOver, SessionExpiring)
_AUDIO_DELTA = ev.ResponseAudioDelta


class Engine:
    """Everything a session does at run time; see the module docstring for its parts."""

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
        proxy: ProxySetting,
        max_frame_bytes: int,
        send_backlog_bytes: int,
        receive_backlog_bytes: int,
        record_to: str | None,
        expiry_warning: float,
        tool_workers: int,
        tool_timeout: float | None,
    ) -> None:
        self.number = next(_counter)
        self.model = model
        self.url = url
        self.handler_errors = handler_errors
        self.record_to = record_to
        self.settings = SessionSettings(model, config, tools)
        self.active_response: ev.Response | None = None
        self.fatal: BaseException | None = None
        self.closed_event = threading.Event()
        self.close_info: Closed | None = None
        self._last_error: ServerError | None = None
        self._legacy = LegacyReplies()
        self._recorder: LogWriter | None = None
        self.playback: PlaybackLink | None = None

        # Conversation state: fed by the dispatcher (received) and by the senders (sent).
        self.conv = Conversation(model)
        self._conv_lock = threading.Lock()
        self.conv_cv = threading.Condition(self._conv_lock)

        self.dispatcher = Dispatcher(
            number=self.number,
            process=self._dispatch_one,
            idle=self._idle,
            next_deadline=self._next_deadline,
            end=self._finish,
            on_handler_error=self._handler_failed,
            closed=self.closed_event,
            max_backlog_bytes=receive_backlog_bytes,
        )
        self.link = Link(
            number=self.number,
            url=url,
            headers=headers,
            region=region,
            connect_timeout=connect_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            reconnect=reconnect,
            ca_file=ca_file,
            ssl_context=ssl_context,
            proxy=proxy,
            max_frame_bytes=max_frame_bytes,
            send_backlog_bytes=send_backlog_bytes,
            expiry_warning=expiry_warning,
            deliver=self.dispatcher.deliver,
            session_update=self._session_update,
            on_session=self.settings.apply,
            on_redial=self._on_redial,
        )
        self.uplink = Uplink(
            send=self._send_audio_event, input_rate=lambda: self.settings.input_rate
        )
        self.tools = ToolRunner(
            tools=tools,
            workers=tool_workers,
            timeout=tool_timeout,
            number=self.number,
            call_soon=self.dispatcher.call_soon,
            on_result=self._tool_result,
        )
        self.waiters = Waiters()
        self.link.can_roll_over = self._between_turns
        # Set by the session: the context text for a new server session's instructions.
        self.context_builder: Callable[[], str] | None = None
        self.budget_ends_session = False

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.link.state

    @property
    def transport(self) -> Transport | None:
        return self.link.transport

    @property
    def lag_samples(self) -> Sequence[float]:
        return self.dispatcher.lag_samples

    def check_open(self) -> None:
        """Raise :class:`SessionClosed` unless frames can be sent (or queued for a redial)."""
        closed = self.close_info
        detail = ""
        if closed is not None and closed.code is not None:
            detail = f" (code {closed.code}{': ' + closed.reason if closed.reason else ''})"
        try:
            self.link.check_open(detail)
        except SessionClosed as exc:
            if self.fatal is not None:
                raise SessionClosed(f"{exc} (it ended with: {self.fatal})") from self.fatal
            raise

    def on_dispatcher(self) -> bool:
        return self.dispatcher.on_dispatcher()

    # -- config ----------------------------------------------------------------------------------

    def update(self, config: SessionConfig, *, wait: bool, timeout: float) -> None:
        """Merge ``config`` into the current one and send it whole (see Session.update)."""
        self.check_open()
        if not isinstance(config, SessionConfig):
            raise InvalidType(f"config must be a SessionConfig, got {type(config).__name__}")
        old, wire = self.settings.propose(config)
        event = ev.SessionUpdate(session=wire, event_id=ev.new_event_id())
        assert event.event_id is not None
        waiter = None
        if wait and not self.on_dispatcher():
            waiter = self.waiters.add_update(event.event_id)
        try:
            self.send_event(event)
            if waiter is None:
                return
            if not waiter.done.wait(timeout):
                raise Timeout(f"no session.updated within {timeout} s")
        finally:
            if waiter is not None:
                self.waiters.remove_update(waiter)
        if waiter.error is not None:
            self.settings.restore(old, wire)
            raise waiter.error

    # -- connecting and closing --------------------------------------------------------------------

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
        if self.on_dispatcher():
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

    # -- sending -----------------------------------------------------------------------------------

    def send_event(self, event: ev.ClientEvent, *, audio: bytes | None = None) -> str:
        """Encode and queue ``event``; return its event id. Thread-safe; never blocks."""
        self.check_open()
        eid = getattr(event, "event_id", None) or ev.new_event_id()
        text = ev.encode(event, event_id=eid)
        with self.conv_cv:
            self.conv.sent(event, event_id=eid)
            self.link.send(text, audio)
        return eid

    def _send_audio_event(self, event: ev.ClientEvent, audio: bytes | None) -> str:
        return self.send_event(event, audio=audio)

    def send_raw(self, event: Mapping[str, Any]) -> str:
        self.check_open()
        if not isinstance(event, Mapping):
            raise InvalidType(f"send_raw() takes a dict, got {type(event).__name__}")
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
            self.link.send(text)
        return eid

    def cancel_response(self) -> str:
        eid = self.send_event(ev.ResponseCancel())
        self.dispatcher.call_soon(lambda: self.tools.cancel("response.cancel"))
        return eid

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

    def report_interruption(self, response_id: str | None, played_ms: float) -> None:
        """Record a cut reply now; its notices go to the handlers from the dispatcher."""
        with self.conv_cv:
            notices = self.conv.mark_interrupted(response_id, played_ms)
        t = time.monotonic()
        for notice in notices:
            self.dispatcher.call_soon(functools.partial(self._notice, notice, t))

    def read_conversation(self, read: Callable[[Conversation], T]) -> T:
        """``read(conversation)`` under the conversation's lock (for a consistent snapshot)."""
        with self.conv_cv:
            return read(self.conv)

    # -- the dispatcher's side ---------------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        with self.conv_cv:
            deadline = self.conv.next_deadline()
        closing = self.link.close_deadline
        if closing is not None:
            deadline = min(deadline or closing, closing)
        return deadline

    def _idle(self) -> None:
        self.link.close_watchdog()
        with self.conv_cv:
            notices = self.conv.poll()
            self.conv_cv.notify_all()
        now = time.monotonic()
        for notice in notices:
            self._notice(notice, now)

    def _dispatch_one(self, t: float, obj: Any) -> None:
        if type(obj) is _AUDIO_DELTA and self.link.close_deadline is None:
            # The bulk of the traffic: of the bookkeeping only the player's part, and no waiter
            # to wake (an audio delta never makes the conversation idle) unless notices come.
            self._last_error = None
            with self._conv_lock:
                notices = self.conv.receive(obj, now=t)
                if notices:
                    self.conv_cv.notify_all()
            if self.playback is not None:
                self.playback.feed(obj)
            self.dispatcher.emit(obj, t, wire=True)
            for notice in notices:
                self._notice(notice, t)
            return
        if self.link.close_deadline is not None:
            self.link.close_watchdog()
        if isinstance(obj, ProtocolError):
            self.dispatcher.report_error(obj)
            return
        self._last_error = None
        if isinstance(obj, _SDK_NOTICES):
            self.dispatcher.emit(obj, t, wire=True)
            return
        with self.conv_cv:
            notices = self.playback.cut(obj, self.conv, t) if self.playback is not None else []
            notices += self.conv.receive(obj, now=t)
            self.conv_cv.notify_all()
        self._account(obj)
        self.dispatcher.emit(obj, t, wire=True)
        if isinstance(obj, ev.ErrorEvent) and self._voice_refused(obj):
            return
        for notice in notices:
            self._notice(notice, t)
        if isinstance(obj, ev.ErrorEvent):
            self._server_error_event(obj)
        elif isinstance(obj, ev.LegacyChoices):  # its audio and text reach the usual handlers
            for typed in self._legacy.events(obj, spoken=self.settings.speaks()):
                self._dispatch_one(t, typed)

    def _account(self, obj: Any) -> None:
        """Session bookkeeping, done before any user code sees ``obj``.

        Audio deltas do not come here (the fast branch of :meth:`_dispatch_one`): what concerns
        them must be done there too.
        """
        if self.playback is not None:
            self.playback.feed(obj)
        if isinstance(obj, ev.SessionCreated):
            self.settings.apply(obj.session)
        elif isinstance(obj, ev.SessionUpdated):
            self.settings.apply(obj.session)
            self.waiters.updated()
        elif isinstance(obj, ev.ResponseCreated):
            self.active_response = obj.response
        elif isinstance(obj, ev.InputAudioBufferSpeechStarted):
            self.tools.cancel("the user spoke")
        elif isinstance(obj, (ev.InputAudioBufferCommitted, ev.InputAudioBufferCleared)):
            self.uplink.committed()
        elif isinstance(obj, ev.SessionFinished):
            self.waiters.finished()

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

    def _server_error_event(self, event: ev.ErrorEvent) -> None:
        # Reported at once as recoverable; _finish marks it fatal if the server then closes.
        err = server_error(event, fatal=False)
        self._last_error = err
        self.waiters.server_error(err)
        self.dispatcher.report_error(err)

    def _notice(self, notice: Any, t: float) -> None:
        if isinstance(notice, ResponseStarted):
            self.waiters.response_started()
        elif isinstance(notice, ResponseFinished):
            self.active_response = None
            self.waiters.reply(notice.reply, self.tools.will_answer)
        elif isinstance(notice, ToolCallsReady):
            self.tools.start(notice.response_id, notice.calls)
        elif isinstance(notice, BargeIn):
            self.tools.cancel("barge-in")
        elif isinstance(notice, BudgetExceeded) and self.budget_ends_session:
            log.warning(
                "cost %.6g reached the budget %.6g: closing", notice.total_cost, notice.budget
            )
            self.close_async(1000, "budget exceeded")
        elif isinstance(notice, CreateFailed):
            self.waiters.create_failed(notice.event_id, notice.message)
        self.dispatcher.emit(notice, t, wire=False)
        if isinstance(notice, ResponseFinished):
            self.dispatcher.emit(notice.reply, t, wire=False)
        if isinstance(notice, (ResponseFinished, CreateFailed)):
            self._flush_tools()

    def _handler_failed(self, exc: BaseException) -> None:
        if self.handler_errors == "raise" and self.fatal is None:
            self.fatal = exc
            self.close_async(1011, "handler error")

    def _tool_result(self, error: BaseException | None) -> None:
        if error is not None:
            self.dispatcher.report_error(error)
        self._flush_tools()

    def _flush_tools(self) -> None:
        """Send the results of the oldest complete batch and one response.create, if idle."""
        if not self.link.is_open():
            return
        with self.conv_cv:
            if not self.conv.can_create_response():
                return  # sent once the current response is done
        batch = self.tools.pop_ready()
        if batch is None:
            return
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
        self.waiters.tool_results_sent()

    def _session_update(self) -> dict[str, Any]:
        """Reader thread, at each handshake: a new server session gets the context so far."""
        if self.context_builder is not None:
            self.settings.context_text = self.context_builder()
        return self.settings.wire_session()

    def _between_turns(self) -> bool:
        """Reader thread: no response in progress and every received event handled."""
        with self.conv_cv:
            idle = self.conv.can_create_response()
        return idle and not self.tools.busy() and self.dispatcher.drained()

    def _on_redial(self, generation: int, planned: bool) -> None:
        """Reader thread: a new connection is up; reset the state before its events."""
        reset = functools.partial(self._reset_after_redial, generation, planned)
        self.dispatcher.call_soon(reset)

    def _reset_after_redial(self, generation: int, planned: bool = False) -> None:
        """Dispatcher: the server forgot everything; start the state afresh, keep the history."""
        lost = self.link.drop_cause or ConnectionClosed(1006, "connection lost")
        self.waiters.fail_older(generation, lost, planned=planned)
        with self.conv_cv:
            self.conv = self.conv.carry_over()
            self.conv_cv.notify_all()
        self.active_response = None
        self.tools.cancel("a new server session")
        self.uplink.reset()
        self.link.state_reset(generation)

    def lag_percentiles(self) -> tuple[float, float]:
        return self.dispatcher.lag_percentiles()
