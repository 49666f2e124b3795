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

from ._handlers import _positional_params
from ._sdk_events import Closed
from .config import SessionConfig
from .errors import RealtimeError, SessionClosed
from .events import Response
from .models import ModelInfo
from .reply import HistoryEntry, Reply, TurnMetrics
from .session import Session
from .tools import Tool, as_tools

__all__ = ["AsyncSession"]

log = logging.getLogger("dashscope_rt.async_session")

F = TypeVar("F", bound=Callable[..., Any])
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
        self.error_handlers: list[Callable[[BaseException], Any]] = []
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

    async def report(self, exc: BaseException, fn: Any) -> None:
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


class AsyncSession:
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
        self._bridge.session_closed = self._session._engine.closed_event
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

    # -- handlers ----------------------------------------------------------------------------------

    def on(self, event: str | type[Any], fn: F | None = None) -> Any:
        """Call ``fn(ev)`` on the loop for each event of a wire type or class (see Session.on)."""

        def register(f: F) -> F:
            self._register(event, f, self._bridge.handler(f))
            return f

        return register if fn is None else register(fn)

    def _register(self, event: Any, fn: Any, bridge: Callable[[Any], None]) -> None:
        if event == "*":
            self._session.on_event(bridge)
        else:
            self._session.on(event, bridge)
        self._bridges.setdefault(fn, []).append((event, bridge))

    def on_event(self, fn: F) -> F:
        """``fn(ev)`` for every server event and every SDK event."""
        self._register("*", fn, self._bridge.handler(fn))
        return fn

    def off(self, event: str | type[Any] | Callable[..., Any] | None = None, fn: Any = None) -> int:
        """Unregister: ``off(fn)``, ``off("response.done")``, ``off(key, fn)``; returns a count."""
        if event is not None and not isinstance(event, (str, type)) and fn is None:
            fn, event = event, None
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

    def on_audio_delta(self, fn: F) -> F:
        """``fn(ev)`` for each ``response.audio.delta`` (``ev.audio``: PCM16LE mono)."""
        return self.on("response.audio.delta", fn)  # type: ignore[no-any-return]

    def on_text_delta(self, fn: F) -> F:
        """``fn(ev)`` for each ``response.text.delta``."""
        return self.on("response.text.delta", fn)  # type: ignore[no-any-return]

    def on_transcript_delta(self, fn: F) -> F:
        """``fn(ev)`` for each ``response.audio_transcript.delta``."""
        return self.on("response.audio_transcript.delta", fn)  # type: ignore[no-any-return]

    def on_input_transcript(self, fn: F) -> F:
        """``fn(ev)`` with the final transcript of the user's speech."""
        key = "conversation.item.input_audio_transcription.completed"
        return self.on(key, fn)  # type: ignore[no-any-return]

    def on_speech_started(self, fn: F) -> F:
        """``fn(ev)`` when the server VAD hears the user start."""
        return self.on("input_audio_buffer.speech_started", fn)  # type: ignore[no-any-return]

    def on_speech_stopped(self, fn: F) -> F:
        """``fn(ev)`` when the server VAD hears the user stop."""
        return self.on("input_audio_buffer.speech_stopped", fn)  # type: ignore[no-any-return]

    def on_response_done(self, fn: F) -> F:
        """``fn(reply)`` when a response ends, with the whole :class:`Reply`."""
        return self.on(Reply, fn)  # type: ignore[no-any-return]

    def on_error(self, fn: F) -> F:
        """``fn(exc)`` for server errors, tool errors and exceptions of handlers."""
        self._bridge.error_handlers.append(fn)
        bridge = self._bridge.handler(fn)
        self._session.on_error(bridge)
        self._bridges.setdefault(fn, []).append(("error", bridge))
        return fn

    def on_close(self, fn: F) -> F:
        """``fn(closed)`` or ``fn(code, reason, by_server)`` once, when the session ends."""
        target: Callable[[Any], Any] = fn
        if _positional_params(fn) >= 3:

            def target(c: Closed) -> Any:
                return fn(c.code, c.reason, c.by_server)

        self._register(Closed, fn, self._bridge.handler(target))
        return fn

    def on_tool_call(self, fn: F) -> F:
        """``fn(call) -> result`` for tool calls not covered by ``tools=``.

        An ``async def`` runs on the loop; a plain function in the session's tool threads.
        """
        if inspect.iscoroutinefunction(fn):
            bridge = self._bridge

            def run_on_loop(call: Any) -> Any:
                return bridge.run_coroutine(fn(call))

            self._session.on_tool_call(run_on_loop)
            self._bridges.setdefault(fn, []).append(("tool_call", run_on_loop))
        else:
            self._session.on_tool_call(fn)
        return fn

    async def events(self, *, maxsize: int = 4096) -> AsyncIterator[Any]:
        """Iterate over events as they arrive; ends after :class:`Closed`.

        Only events arriving while the iterator runs are seen; a consumer more than
        ``maxsize`` events behind loses the newer ones (with a warning).
        """
        if self._session.closed:
            return
        self._bridge.bind(asyncio.get_running_loop())
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        dropped = 0

        def offer(obj: Any) -> None:
            nonlocal dropped
            try:
                queue.put_nowait(obj)
            except asyncio.QueueFull:
                dropped += 1
                if dropped in (1, 100, 10_000):
                    log.warning("events(): the consumer is too slow; %d events dropped", dropped)

        def feed(obj: Any) -> None:
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

    # -- sending (never blocks: encode and queue) --------------------------------------------------

    def append_audio(self, data: Any, sample_rate: int | None = None, channels: int = 1) -> None:
        """Queue audio (see :meth:`Session.append_audio`)."""
        self._session.append_audio(data, sample_rate, channels)

    def append_image(self, jpeg: bytes | bytearray | memoryview) -> None:
        """Queue one JPEG frame (see :meth:`Session.append_image`)."""
        self._session.append_image(jpeg)

    def commit(self) -> str:
        """Send the buffered input as one user turn; returns the event id."""
        return self._session.commit()

    def clear_audio(self) -> str:
        """Drop the audio buffered locally and on the server."""
        return self._session.clear_audio()

    def create_response(self, instructions: str | None = None, **extra: Any) -> str:
        """Ask the model to answer now (``response.create``)."""
        return self._session.create_response(instructions, **extra)

    def cancel_response(self) -> str:
        """Stop the response in progress (``response.cancel``)."""
        return self._session.cancel_response()

    def send_text(self, text: str, *, respond: bool = True) -> str:
        """Send a user text message (qwen3.5 models); with ``respond`` ask for the answer."""
        return self._session.send_text(text, respond=respond)

    def send_raw(self, event: Any) -> str:
        """Send any client event as a dict."""
        return self._session.send_raw(event)

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

    # -- state -------------------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The underlying threaded :class:`Session` (its handlers run on its own thread)."""
        return self._session

    @property
    def model_info(self) -> ModelInfo:
        return self._session.model_info

    @property
    def session_id(self) -> str | None:
        return self._session.session_id

    @property
    def config(self) -> SessionConfig | None:
        return self._session.config

    @property
    def tools(self) -> tuple[Tool, ...]:
        return self._session.tools

    @property
    def state(self) -> str:
        return self._session.state

    @property
    def closed(self) -> bool:
        return self._session.closed

    @property
    def close_info(self) -> Closed | None:
        return self._session.close_info

    @property
    def active_response(self) -> Response | None:
        return self._session.active_response

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        return self._session.history

    def export_history(self, *, indent: int | None = None) -> str:
        """The transcript as JSON (see :meth:`Session.export_history`)."""
        return self._session.export_history(indent=indent)

    @property
    def total_cost(self) -> float | None:
        return self._session.total_cost

    @property
    def metrics(self) -> tuple[TurnMetrics, ...]:
        return self._session.metrics

    @property
    def last_reply(self) -> Reply | None:
        return self._session.last_reply

    @property
    def input_rate(self) -> int:
        return self._session.input_rate

    @property
    def output_rate(self) -> int:
        return self._session.output_rate

    @property
    def send_backlog(self) -> int:
        return self._session.send_backlog
