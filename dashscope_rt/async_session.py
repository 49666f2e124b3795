"""``AsyncSession``: the same session for asyncio, on the same threaded core.

The connection still runs on the session's threads (reader, dispatcher, sender); this module
moves what reaches your code onto your event loop: handlers (plain or ``async def``) run on
the loop one at a time in arrival order, ``events()`` is an async iterator, and the calls that
wait (``connect``, ``ask``, ``update``, ``end``, ``close``) wait in a short-lived thread while
the loop goes on. Send methods only encode and queue, so they are plain methods that never
block the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import attrs

from ._handlers import HandlerMethods
from ._sdk_events import Closed
from ._session_send import SendMethods
from ._session_view import StateProperties
from .config import SessionConfig
from .errors import RealtimeError, SessionClosed
from .events import SessionEvent
from .models import ModelInfo
from .reply import Reply, ToolCall
from .session import Session
from .tools import Tool, as_tools

__all__ = ["AsyncSession"]

log = logging.getLogger("dashscope_rt.async_session")

T = TypeVar("T")

_STOP = object()
_threads = itertools.count(1)


class _LoopBridge:
    """Carries events from the session's dispatcher thread to handlers on one event loop.

    Engine handlers hold this object, never the ``AsyncSession``, so an ``AsyncSession`` that
    nobody references any more can still be finalised (its ``Session`` then closes).
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue[Any] | None = None
        self.pump: asyncio.Task[None] | None = None
        self.error_handlers: list[Callable[[Exception], Any]] = []
        self.closed: asyncio.Event | None = None
        self.session_closed = threading.Event()  # replaced by the engine's own event

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is not None and self.loop is not loop:
            raise RuntimeError("an AsyncSession is used from one event loop only")
        if self.loop is None:
            self.loop = loop
            self.queue = asyncio.Queue()
            self.closed = asyncio.Event()
            self.pump = loop.create_task(self._pump(), name="dashscope_rt-async-handlers")

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """From any thread: run ``fn(*args)`` on the loop (dropped once the loop is closed)."""
        loop = self.loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def handler(self, fn: Callable[[Any], Any]) -> Callable[[Any], None]:
        """An engine handler that queues ``fn(event)`` for the loop."""

        def bridge(obj: Any) -> None:
            queue = self.queue
            if queue is not None:
                self.call_soon(queue.put_nowait, (fn, obj))

        return bridge

    async def _pump(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            item = await queue.get()
            if item is _STOP:
                return
            fn, obj = item
            try:
                result = fn(obj)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                await self.report(exc, fn)

    async def report(self, exc: Exception, fn: Any) -> None:
        """A handler on the loop raised: tell the ``on_error`` handlers, else log it."""
        if not self.error_handlers:
            log.error("handler %s raised", getattr(fn, "__qualname__", fn), exc_info=exc)
        for handler in self.error_handlers:
            try:
                result = handler(exc)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("the on_error handler %r raised", handler)

    async def stop(self, timeout: float) -> None:
        """Run the handlers already queued (``on_close`` among them), then end the pump."""
        pump, queue = self.pump, self.queue
        if pump is None or queue is None or pump.done():
            return
        queue.put_nowait(_STOP)
        done, _ = await asyncio.wait({pump}, timeout=timeout)
        if not done:
            log.warning("a handler is still running after close(); it is cancelled")
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def run_coroutine(self, coro: Any) -> Any:
        """From a tool thread: run ``coro`` on the loop and wait for it (not past a close)."""
        loop, closed = self.loop, self.session_closed
        if loop is None:
            coro.close()
            raise SessionClosed("the session is not connected")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if closed.is_set():
                    future.cancel()
                    raise SessionClosed("the session closed while a tool was running") from None


def _in_thread(bridge: _LoopBridge, fn: Callable[..., T], *args: Any, **kw: Any) -> Any:
    """Run a blocking call in a new daemon thread; return an asyncio future of its result."""
    loop = bridge.loop
    assert loop is not None
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result = fn(*args, **kw)
        except BaseException as exc:
            bridge.call_soon(settle, None, exc)
        else:
            bridge.call_soon(settle, result, None)

    name = f"dashscope_rt-async-{next(_threads)}"
    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" warning


class _AskGate:
    """Decides, under one lock, whether a cancelled ``ask()`` had already sent its request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = False
        self.sent = False

    def __call__(self) -> None:
        with self._lock:
            if self.cancelled:
                raise asyncio.CancelledError("ask() was cancelled before its request was sent")
            self.sent = True

    def cancel(self) -> bool:
        """Mark cancelled; True when the request had gone out (so a response must be cancelled)."""
        with self._lock:
            self.cancelled = True
            return self.sent


class AsyncSession(HandlerMethods, SendMethods, StateProperties):
    """A realtime session for asyncio; takes the same arguments as :class:`Session`.

    ::

        async with AsyncSession("qwen3-omni-flash-realtime", config=cfg) as s:
            s.on_audio_delta(play)                  # a plain function or an ``async def``
            reply = await s.ask(audio=pcm, sample_rate=16000)
            async for ev in s.events(): ...

    Handlers run on the event loop that connected the session, one at a time, in arrival
    order (an ``async def`` handler is awaited before the next one runs). Tools given as
    ``async def`` (in ``tools=`` or ``on_tool_call``) run on the loop too; plain tool
    functions run in the session's tool threads, as with ``Session``. Cancelling a task that
    awaits :meth:`ask` sends ``response.cancel`` if the request went out (and nothing if it
    did not); leaving ``async with`` (also by cancellation, e.g. of a task group) closes the
    session. ``handler_errors="raise"`` applies to the session's own threads only: handler
    exceptions on the loop go to ``on_error`` (default: logged).
    """

    def __init__(self, model: str | ModelInfo, **options: Any) -> None:
        self._bridge = _LoopBridge()
        tools = options.pop("tools", None)
        if tools is not None:
            options["tools"] = [self._loop_tool(t) for t in as_tools(tools)]
        self._session = Session(model, **options)
        self._engine = self._session._engine  # what the shared methods work on
        self._asker = self._session._asker
        self._bridge.session_closed = self._engine.closed_event
        self._bridges: dict[Any, list[tuple[Any, Callable[[Any], None]]]] = {}

    def __repr__(self) -> str:
        return "<Async" + repr(self._session)[1:]

    def _loop_tool(self, tool: Tool) -> Tool:
        fn = tool.fn
        if fn is None or not inspect.iscoroutinefunction(fn):
            return tool
        bridge, coro_fn = self._bridge, fn

        def run_on_loop(*args: Any, **kwargs: Any) -> Any:
            return bridge.run_coroutine(coro_fn(*args, **kwargs))

        return attrs.evolve(tool, fn=run_on_loop)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def connect(self) -> AsyncSession:
        """Open the connection and apply the config, without blocking the loop.

        Raises what :meth:`Session.connect` raises. Cancelled, it closes the session.
        """
        bridge = self._bridge
        bridge.bind(asyncio.get_running_loop())
        closed = bridge.closed
        assert closed is not None
        self._session.on(Closed, lambda _c: bridge.call_soon(closed.set))
        future = _in_thread(self._bridge, self._session.connect)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            threading.Thread(target=self._session.close, daemon=True).start()
            raise
        except Exception:
            await bridge.stop(1.0)  # no thread is left; no task either
            raise
        return self

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; ``on_close`` handlers have run when this returns. Idempotent."""
        bridge = self._bridge
        if bridge.loop is None:
            self._session.close(code, reason)  # never connected: nothing to wait for
            return
        future = _in_thread(bridge, self._session.close, code, reason)
        try:
            await asyncio.shield(future)
        finally:
            future.add_done_callback(_consume)
        await bridge.stop(self._session._engine.link.close_timeout + 1.0)

    async def __aenter__(self) -> AsyncSession:
        if self._session.state in ("new", "connecting"):
            await self.connect()
        elif self._session.closed:
            raise SessionClosed("this session was already closed; create a new AsyncSession")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the session is closed; re-raise the error that ended it, if any."""
        closed = self._bridge.closed
        if closed is None:
            raise SessionClosed("the session is not connected: call connect() or use async with")
        await asyncio.wait_for(closed.wait(), timeout)
        info = self._session.close_info
        if info is not None and info.error is not None:
            raise info.error

    async def end(self, timeout: float = 5.0) -> None:
        """Finish politely (``session.finish``), then close; see :meth:`Session.end`."""
        await asyncio.shield(_in_thread(self._bridge, self._session.end, timeout))
        await self.close()

    # -- handlers (the typed on_* methods are HandlerMethods'; these hooks bring them here) -------

    def _add_handler(
        self, event: str | type[Any], fn: Callable[[Any], Any], orig: Any = None
    ) -> None:
        self._register(event, orig if orig is not None else fn, self._bridge.handler(fn))

    def _register(self, event: Any, key: Any, bridge: Callable[[Any], Any]) -> None:
        if event == "*":
            self._session.on_event(bridge)
        else:
            self._session.on(event, bridge)
        self._bridges.setdefault(key, []).append((event, bridge))

    def _remove_handlers(self, event: str | type[Any] | None, fn: Any) -> int:
        removed = 0
        for key in [fn] if fn is not None else list(self._bridges):
            kept = []
            for registered, bridge in self._bridges.get(key, []):
                if event is None or registered == event:
                    removed += self._session.off(bridge)
                else:
                    kept.append((registered, bridge))
            if kept:
                self._bridges[key] = kept
            else:
                self._bridges.pop(key, None)
        if fn is not None and fn in self._bridge.error_handlers:
            self._bridge.error_handlers.remove(fn)
        return removed

    def _add_error_handler(self, fn: Callable[[Exception], Any]) -> None:
        self._bridge.error_handlers.append(fn)
        bridge = self._bridge.handler(fn)
        self._session.on_error(bridge)
        self._bridges.setdefault(fn, []).append(("error", bridge))

    def _set_tool_handler(self, fn: Callable[[ToolCall], Any]) -> None:
        """An ``async def`` runs on the loop; a plain function in the session's tool threads."""
        target = fn
        if inspect.iscoroutinefunction(fn):
            bridge = self._bridge

            def target(call: ToolCall) -> Any:
                return bridge.run_coroutine(fn(call))

        self._session.on_tool_call(target)
        self._bridges.setdefault(fn, []).append(("tool_call", target))

    async def events(self, *, maxsize: int = 4096) -> AsyncIterator[SessionEvent]:
        """Iterate over events as they arrive; ends after :class:`Closed`.

        Only events arriving while the iterator runs are seen; a consumer more than
        ``maxsize`` events behind loses the newer ones (with a warning).
        """
        if self._session.closed:
            return
        self._bridge.bind(asyncio.get_running_loop())
        queue: asyncio.Queue[SessionEvent] = asyncio.Queue(maxsize)
        dropped = 0

        def offer(obj: SessionEvent) -> None:
            nonlocal dropped
            try:
                queue.put_nowait(obj)
            except asyncio.QueueFull:
                dropped += 1
                if dropped in (1, 100, 10_000):
                    log.warning("events(): the consumer is too slow; %d events dropped", dropped)

        def feed(obj: SessionEvent) -> None:
            self._bridge.call_soon(offer, obj)

        self._session.on_event(feed)
        try:
            while True:
                obj = await queue.get()
                yield obj
                if isinstance(obj, Closed):
                    return
        finally:
            self._session.off(feed)

    # -- blocking calls, awaited (the send methods are SendMethods': they never block) -----------

    async def update(
        self, config: SessionConfig, *, wait: bool = True, timeout: float = 10.0
    ) -> None:
        """Change the config; with ``wait``, until ``session.updated`` (see Session.update)."""
        call = _in_thread(self._bridge, self._session.update, config, wait=wait, timeout=timeout)
        await call

    async def ask(
        self,
        *,
        text: str | None = None,
        audio: Any = None,
        image: bytes | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        instructions: str | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        """Send one user turn and return the whole reply (see :meth:`Session.ask`).

        Cancelled, it sends ``response.cancel`` when its request had gone out; the waiting
        thread ends once the cancelled response is over.
        """
        self._bridge.bind(asyncio.get_running_loop())
        gate = _AskGate()
        future = _in_thread(
            self._bridge,
            self._session._asker.ask,
            text=text,
            audio=audio,
            image=image,
            sample_rate=sample_rate,
            channels=channels,
            instructions=instructions,
            timeout=timeout,
            gate=gate,
        )
        try:
            reply: Reply = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            if gate.cancel() and not self._session.closed:
                with contextlib.suppress(RealtimeError):
                    self._session.cancel_response()
            raise
        return reply

    async def stream_audio(
        self,
        audio: Any,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        speed: float = 1.0,
        timeout: float = 60.0,
        no_speech_timeout: float = 4.0,
        on_chunk: Callable[[Any, float], None] | None = None,
    ) -> Reply:
        """Stream a WAV file or array as one spoken turn at real-time pace; return the reply
        (see :meth:`Session.stream_audio`). ``on_chunk`` runs in the thread that streams.

        Cancelled, it stops sending, drops the half-sent turn on the server and cancels a
        response in progress, as an interrupted ``Session.stream_audio`` does.
        """
        from .streaming import _stream_audio  # numpy and the audio package: on first use

        self._bridge.bind(asyncio.get_running_loop())
        stop = threading.Event()
        future = _in_thread(
            self._bridge,
            _stream_audio,
            self._session,
            audio,
            sample_rate,
            channels,
            speed,
            timeout,
            no_speech_timeout,
            on_chunk,
            stop,
        )
        try:
            reply: Reply = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            stop.set()
            raise
        return reply

    # -- state (the rest is StateProperties') ------------------------------------------------

    @property
    def session(self) -> Session:
        """The underlying threaded :class:`Session` (its handlers run on its own thread)."""
        return self._session
