"""One simulator connection: its records, its controls, and its coroutines on the server's loop."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..errors import Timeout
from ..events import ErrorDetail, ErrorEvent, ServerEvent, new_event_id
from ._engine import SimulatedSession
from ._faults import Faults, close_frame
from ._outbox import Outgoing

if TYPE_CHECKING:
    from ._server import Simulator

__all__ = ["ConnectionRecord"]

log = logging.getLogger("dashscope_rt.testing")

_T = TypeVar("_T")
_IDLE_S = 0.5  # the sender re-checks its state at least this often
_DEAD_GRACE_S = 2.0  # after a raw close or a drop, how long the client has to answer


class _Engine(Protocol):
    @property
    def closing(self) -> bool: ...

    def receive(self, frame: str | bytes, now: float) -> None: ...

    def poll(self, now: float) -> list[Outgoing]: ...

    def next_due(self) -> float | None: ...


class ConnectionRecord:
    """One client connection: what it sent and received, and controls to break it.

    ``received`` and ``sent`` are ``(seconds since the connection opened, event)`` pairs in order;
    an event is the decoded dict, or the raw ``str``/``bytes`` frame when it was not JSON.
    The controls may be called from any thread: they run on the simulator's event loop and
    return once done.
    """

    def __init__(self, sim: Simulator, ws: ServerConnection, info: dict[str, Any]) -> None:
        self._sim = sim
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self.id: int = info["id"]
        self.path: str = info["path"]
        self.model: str = info["model"]
        self.headers: dict[str, str] = info["headers"]
        self.workspace: str | None = info["workspace"]
        self.faults: Faults = copy.deepcopy(sim.faults)
        self.received: list[tuple[float, Any]] = []
        self.sent: list[tuple[float, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: str | None = None
        """"server", "client" or "drop" (TCP cut without a close frame)."""
        self.closed = threading.Event()
        self.engine: _Engine | None = None
        self._t0 = time.monotonic()
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events_sent = 0
        self._dead = False

    def __repr__(self) -> str:
        return (
            f"<ConnectionRecord #{self.id} model={self.model!r} received={len(self.received)} "
            f"sent={len(self.sent)} close={self.close_code}>"
        )

    # ------------------------------------------------------------ inspection
    def received_types(self) -> list[str]:
        return [e.get("type", "") if isinstance(e, dict) else "<raw>" for _, e in self.received]

    def sent_types(self) -> list[str]:
        return [e.get("type", "") if isinstance(e, dict) else "<raw>" for _, e in self.sent]

    def sent_events(self, etype: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for _, e in list(self.sent)
            if isinstance(e, dict) and (etype is None or e.get("type") == etype)
        ]

    def received_events(self, etype: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for _, e in list(self.received)
            if isinstance(e, dict) and (etype is None or e.get("type") == etype)
        ]

    @property
    def session(self) -> dict[str, Any] | None:
        """The effective session config (None in replay mode)."""
        eng = self.engine
        return copy.deepcopy(eng.config) if isinstance(eng, SimulatedSession) else None

    # ------------------------------------------------------------ controls
    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T | None:
        """Run ``coro`` on the loop: wait for it from another thread; from the loop itself (a
        responder, a transcriber) queue it, to go out once the loop is free."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            task = self._loop.create_task(coro)
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
            return None
        if self._loop.is_closed():
            coro.close()
            raise ConnectionClosed(None, None)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _log_sent(self, item: Any) -> None:
        if self._sim.record:
            self.sent.append((self._now(), item))
        self._sim._changed()

    def send_raw(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) frame as is: malformed JSON, unknown types, ..."""
        self._call(self._send_raw(data))

    async def _send_raw(self, data: str | bytes) -> None:
        async with self._send_lock:
            await self._ws.send(data)
            self._log_sent(data)

    def send_event(self, event: ServerEvent | dict[str, Any]) -> None:
        """Send a server event now: a typed event, or a wire dict sent as it is (an
        ``event_id`` is added to either if missing)."""
        self._call(self._send_event(event))

    async def _send_event(self, event: ServerEvent | dict[str, Any]) -> None:
        if isinstance(event, dict):
            ev = event if "event_id" in event else {"event_id": new_event_id(), **event}
        else:
            ev = event.to_wire(event_id=new_event_id() if event.event_id is None else None)
        async with self._send_lock:
            await self._ws.send(json.dumps(ev, ensure_ascii=False))
            self._log_sent(ev)

    def inject_error(
        self,
        message: str = "Internal service error: null",
        *,
        type: str = "server_error",
        code: str | None = "internal_error",
        param: str | None = None,
    ) -> None:
        """Send an ``error`` event."""
        self.send_event(
            ErrorEvent(error=ErrorDetail(type=type, code=code, message=message, param=param))
        )

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``/``reason``; a reason over 123 bytes goes out as a raw frame."""
        if not self._loop.is_closed():
            self._call(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            await self._close_locked(code, reason)

    async def _close_locked(self, code: int, reason: str) -> None:
        if self._dead:
            return
        self._dead = True
        self.close_code, self.close_reason, self.closed_by = code, reason, "server"
        if len(reason.encode("utf-8")) <= 123:
            try:
                await self._ws.close(code, reason)
            except Exception:  # already gone
                log.debug("close failed", exc_info=True)
            return
        transport = self._ws.transport
        try:
            transport.write(close_frame(code, reason))
            if transport.can_write_eof():
                transport.write_eof()
            else:  # TLS: no half-close, the close_notify ends the stream
                transport.close()
        except (OSError, RuntimeError):
            log.debug("raw close failed", exc_info=True)
        self._loop.call_later(_DEAD_GRACE_S, transport.abort)

    def ping(self, data: bytes = b"") -> threading.Event:
        """Send a WebSocket ping; the returned event is set when the client's pong arrives."""
        pong = threading.Event()

        async def send_ping() -> None:
            waiter = await self._ws.ping(data)
            asyncio.ensure_future(waiter).add_done_callback(
                lambda f: pong.set() if not f.cancelled() and f.exception() is None else None
            )

        self._call(send_ping())
        return pong

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006)."""
        if not self._loop.is_closed():
            self._call(self._drop())

    async def _drop(self) -> None:
        async with self._send_lock:
            await self._drop_locked()

    async def _drop_locked(self) -> None:
        if self._dead:
            return
        self._dead = True
        self.closed_by = "drop"
        self.close_code = 1006
        transport = self._ws.transport
        for _ in range(100):  # what was sent reaches the kernel first, as it would have
            if transport.is_closing() or not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.01)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("drop failed", exc_info=True)
        self._loop.call_later(_DEAD_GRACE_S, transport.abort)

    def stall(self) -> None:
        """Stop sending events (they queue up) until :meth:`resume`."""
        self.faults.stall = True

    def resume(self) -> None:
        self.faults.stall = False
        self._poke()

    def _poke(self) -> None:
        """Wake the sender, from any thread."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------ loop
    async def _send_outgoing(self, out: Outgoing) -> bool:
        """Send one engine output; False when the connection is finished."""
        f = self.faults
        if out.event is None:
            code, reason = out.close or (1000, "")
            async with self._send_lock:
                await self._close_locked(code, reason)
            return False
        if f.event_delay_s > 0:
            await asyncio.sleep(f.event_delay_s)
            if self._sim._stopping.is_set():
                return False
        async with self._send_lock:
            if self._dead:
                return False
            try:
                await self._ws.send(json.dumps(out.event, ensure_ascii=False))
            except ConnectionClosed:
                return False
            self._events_sent += 1
            self._log_sent(out.event)
            if f.drop_after_events is not None and self._events_sent >= f.drop_after_events:
                await self._drop_locked()
                return False
            etype = str(out.event.get("type", ""))
            if f.drop_mid_response and etype.startswith("response.") and etype.endswith(".delta"):
                await self._drop_locked()
                return False
        return True

    async def _sender(self) -> None:
        engine = self.engine
        assert engine is not None
        while True:
            if self._sim._stopping.is_set() or self._dead or self.closed.is_set():
                return
            self._wake.clear()
            due: float | None = None
            if not self.faults.stall:
                outs = engine.poll(time.monotonic())
                if outs:
                    for out in outs:
                        if not await self._send_outgoing(out):
                            return
                    continue
                due = engine.next_due()
            timeout = _IDLE_S if due is None else max(0.0, min(_IDLE_S, due - time.monotonic()))
            timer = self._loop.call_later(timeout, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    async def _feed(self, frame: str | bytes) -> None:
        parsed: Any = frame
        if isinstance(frame, str):
            try:
                parsed = json.loads(frame)
            except ValueError:
                parsed = frame
        if self._sim.record:
            self.received.append((self._now(), parsed))
        self._sim._changed()
        etype = parsed.get("type") if isinstance(parsed, dict) else None
        if etype in self.faults.close_on:
            code, reason = self.faults.close_on[str(etype)]
            await self._close(code, reason)
            return
        if etype in self.faults.error_on:
            error = ErrorDetail.from_wire(dict(self.faults.error_on[str(etype)]))
            await self._send_event(ErrorEvent(error=error))
            return
        assert self.engine is not None
        self.engine.receive(frame, time.monotonic())
        self._wake.set()

    async def _first_event_sent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._events_sent < 1:
            if time.monotonic() > deadline:
                raise Timeout(f"simulator condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    async def _run(self) -> None:
        sender = asyncio.create_task(self._sender(), name=f"sim-send-{self.id}")
        try:
            if self.faults.on_connect_frames:
                await self._first_event_sent(5.0)
                for data in self.faults.on_connect_frames:
                    await self._send_raw(data)
            if self.faults.close_after_created is not None:
                await self._first_event_sent(5.0)
                await self._close(*self.faults.close_after_created)
            while not self._sim._stopping.is_set():
                try:
                    frame = await self._ws.recv()
                except ConnectionClosed:
                    break
                await self._feed(frame)
        except Exception:
            log.exception("simulator connection #%d failed", self.id)
        finally:
            if self.closed_by is None:
                rcvd = self._ws.protocol.close_rcvd
                if self._sim._stopping.is_set():
                    self.closed_by, self.close_code = "server", 1001
                elif rcvd is not None:
                    self.closed_by, self.close_code = "client", rcvd.code
                    self.close_reason = rcvd.reason
                else:
                    self.closed_by, self.close_code = "client", 1006
            self.closed.set()
            self._wake.set()
            try:
                await sender
            finally:
                self._ws.transport.abort()
                self._sim._changed()
