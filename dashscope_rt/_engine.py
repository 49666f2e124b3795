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
routes the conversation's notices (reply, tool calls, barge-in, ...). Its send side
(:mod:`~dashscope_rt._engine_send`) and its lifecycle, connect, close and how a session ends
(:mod:`~dashscope_rt._lifecycle`), are its bases, in their own modules. It holds no reference
to the public ``Session``, so a ``Session`` nobody references any more is finalised and closes
it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from . import events as ev
from ._dispatch import Dispatcher
from ._engine_send import SendSide
from ._handshake import server_error
from ._legacy import LegacyReplies
from ._lifecycle import Lifecycle
from ._link import Link, ReconnectPolicy, State
from ._playback import PlaybackLink
from ._sdk_events import Closed, Reconnected, Reconnecting, RolledOver, SessionExpiring
from ._settings import SessionSettings
from ._tool_runner import ToolRunner
from ._uplink import Uplink
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
    ProtocolError,
    ServerError,
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


class Engine(SendSide, Lifecycle):
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

    def on_dispatcher(self) -> bool:
        return self.dispatcher.on_dispatcher()

    # -- the conversation, for the other threads ---------------------------------------------------

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
