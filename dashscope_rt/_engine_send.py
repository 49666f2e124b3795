"""The engine's send side: client events out, in the order the conversation state sees them.

Each client event is checked (the session is open), encoded, and accounted in the conversation
and queued on the link under the conversation's lock, so that the state and the wire agree on
the order; nothing here waits for the network. Also the requests that follow from an answer or
wait for one: ``session.update`` (and its ``session.updated``), ``response.cancel``, and the
tool results with the ``response.create`` after them. A base of
:class:`~dashscope_rt._engine.Engine`: the state it uses is the engine's (declared below).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import events as ev
from .config import SessionConfig
from .errors import InvalidInput, InvalidType, SessionClosed, Timeout

if TYPE_CHECKING:
    from ._dispatch import Dispatcher
    from ._link import Link
    from ._sdk_events import Closed
    from ._settings import SessionSettings
    from ._tool_runner import ToolRunner
    from ._waiters import Waiters
    from .conversation import Conversation

__all__ = ["SendSide"]


class SendSide:
    """``check_open``, ``send_event``, ``send_raw``, ``update``, ``cancel_response``; tool
    results."""

    conv: Conversation
    conv_cv: threading.Condition
    link: Link
    dispatcher: Dispatcher
    settings: SessionSettings
    tools: ToolRunner
    waiters: Waiters
    close_info: Closed | None
    fatal: BaseException | None

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

    def update(self, config: SessionConfig, *, wait: bool, timeout: float) -> None:
        """Merge ``config`` into the current one and send it whole (see Session.update)."""
        self.check_open()
        if not isinstance(config, SessionConfig):
            raise InvalidType(f"config must be a SessionConfig, got {type(config).__name__}")
        old, wire = self.settings.propose(config)
        event = ev.SessionUpdate(session=wire, event_id=ev.new_event_id())
        assert event.event_id is not None
        waiter = None
        if wait and not self.dispatcher.on_dispatcher():
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
