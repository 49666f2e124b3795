"""The dispatcher: one thread that runs the user's handlers, in arrival order.

``dashscope_rt-dispatch-N`` takes what the link delivered (events stamped with their arrival
time), lets the session account for each one (``process``) and calls the matching handlers.
Registering and removing handlers is safe from any thread (the registry is a tuple replaced
under a lock, read without one). A handler that raises is reported to the ``on_error``
handlers (or the log) and the next event goes on. ``events()`` iterators are fed here too.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ._link import LinkLost
from .errors import ConnectionClosed, InvalidType, ReceiveBacklogFull, ServerError

__all__ = ["Dispatcher", "percentile"]

log = logging.getLogger("dashscope_rt.session")

_LAG_SAMPLES = 8192
_STOP = object()


@attrs.define
class _Call:
    """Run ``fn()`` on the dispatcher thread, in event order."""

    fn: Callable[[], None]


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


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))])


def check_callable(fn: Any) -> None:
    if not callable(fn):
        raise InvalidType(f"a handler must be callable, got {fn!r}")


def callable_name(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))


class Dispatcher:
    """Handler registry, event queue and the thread that calls handlers.

    ``process(t, obj)`` handles one delivered item (it calls :meth:`emit` itself);
    ``idle()`` runs when ``next_deadline()`` passes with nothing to do; ``end(lost)`` runs for
    the final :class:`LinkLost`, after which the thread ends (``closed`` is set by then).
    ``on_handler_error(exc)`` is told of each exception raised by a handler (after the
    ``on_error`` handlers).
    """

    def __init__(
        self,
        *,
        number: int,
        process: Callable[[float, Any], None],
        idle: Callable[[], None],
        next_deadline: Callable[[], float | None],
        end: Callable[[LinkLost], None],
        on_handler_error: Callable[[BaseException], None],
        closed: threading.Event,
        max_backlog_bytes: int,
    ) -> None:
        self.number = number
        self._process = process
        self._idle = idle
        self._next_deadline = next_deadline
        self._end = end
        self._on_handler_error = on_handler_error
        self._queue: queue.SimpleQueue[tuple[float, Any, int]] = queue.SimpleQueue()
        self.max_backlog_bytes = max_backlog_bytes
        self._backlog = 0  # bytes of received frames queued and not yet handled
        self._backlog_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._handlers: tuple[_Handler, ...] = ()
        # Wire-level handlers per event class, filled on first use, emptied on every change.
        self._routes: dict[type, tuple[Callable[[Any], Any], ...]] = {}
        self._error_handlers: tuple[Callable[[BaseException], Any], ...] = ()
        self._reg_lock = threading.Lock()
        self._iterators: list[queue.Queue[Any]] = []
        self._iter_lock = threading.Lock()
        self._iter_drops = 0
        self.lag_samples: collections.deque[float] = collections.deque(maxlen=_LAG_SAMPLES)
        self._slow_warned: set[int] = set()
        self.slow_handler_warning = 1.0
        self._closed = closed
        self.observer: Callable[[Any, float], None] | None = None  # tracing sees everything

    # -- the queue and the thread ------------------------------------------------------------------

    def deliver(self, t: float, obj: Any, size: int = 0) -> None:
        """Queue ``obj`` (arrived at ``t``, ``size`` bytes on the wire) for the dispatcher
        thread. Any thread.

        Raises :class:`~dashscope_rt.errors.ReceiveBacklogFull`, without queueing ``obj``, when
        the frames waiting would pass ``max_backlog_bytes``; what is queued stays queued.
        """
        if size:
            with self._backlog_lock:
                backlog = self._backlog + size
                if backlog > self.max_backlog_bytes:
                    raise ReceiveBacklogFull(backlog, self.max_backlog_bytes)
                self._backlog = backlog
        self._queue.put((t, obj, size))

    @property
    def backlog(self) -> int:
        """Bytes of received frames waiting for the handlers."""
        return self._backlog

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the dispatcher thread after the items already queued."""
        self._queue.put((time.monotonic(), _Call(fn), 0))

    def drained(self) -> bool:
        """Whether nothing is queued for the dispatcher thread (a snapshot)."""
        return self._queue.empty()

    def on_dispatcher(self) -> bool:
        """Whether the calling thread is the dispatcher (handlers run there)."""
        return threading.current_thread() is self.thread

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._loop, name=f"dashscope_rt-dispatch-{self.number}", daemon=True
        )
        self.thread.start()

    def join(self, timeout: float) -> None:
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("a handler is still running after close(); its thread ends later")

    def _next(self) -> tuple[float, Any, int] | None:
        deadline = self._next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _loop(self) -> None:
        try:
            while True:
                item = self._next()
                if item is None:
                    self._idle()
                    continue
                t, obj, size = item
                if size:
                    with self._backlog_lock:
                        self._backlog -= size
                if isinstance(obj, _Call):
                    obj.fn()
                elif isinstance(obj, LinkLost):
                    self._end(obj)
                    self._stop_iterators()
                    return
                else:
                    self._process(t, obj)
        except BaseException:  # a bug: report it and end the session cleanly
            log.exception("the dispatcher thread failed")
            self._end(LinkLost(ConnectionClosed(1006, "dispatcher failed", by_server=False)))
            self._stop_iterators()

    # -- the handler registry ----------------------------------------------------------------------

    def add(self, key: Any, fn: Callable[[Any], Any], orig: Any = None) -> None:
        check_callable(fn)
        with self._reg_lock:
            self._handlers = (*self._handlers, _Handler(key, fn, orig))
            self._routes = {}

    def add_error_handler(self, fn: Callable[[BaseException], Any]) -> None:
        check_callable(fn)
        with self._reg_lock:
            self._error_handlers = (*self._error_handlers, fn)

    def remove(self, key: Any, fn: Callable[..., Any] | None) -> int:
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
            self._routes = {}
            if key is None or key == "error":
                before = len(self._error_handlers)
                self._error_handlers = tuple(
                    h for h in self._error_handlers if fn is not None and h != fn
                )
                removed += before - len(self._error_handlers)
            return removed

    # -- calling handlers --------------------------------------------------------------------------

    def emit(self, obj: Any, t: float, *, wire: bool) -> None:
        """Call the handlers registered for ``obj``; ``wire``: also ``on_event`` and iterators."""
        if self.observer is not None:
            self.observer(obj, t)
        fns = self._routes.get(type(obj)) if wire else None
        if fns is None:
            fns = self._route(obj, wire)
        if fns:
            now = time.monotonic()
            self.lag_samples.append(now - t)
            for fn in fns:
                now = self._call(fn, obj, now)
        if wire and self._iterators:
            self._feed_iterators(obj)

    def _route(self, obj: Any, wire: bool) -> tuple[Callable[[Any], Any], ...]:
        routes, handlers = self._routes, self._handlers  # one consistent snapshot
        fns = tuple(h.fn for h in handlers if h.matches(obj, wire))
        cls = type(obj)
        # The match depends on the class alone when the wire type is the class's own
        # (UnknownEvent carries its type per instance).
        own_type: Any = getattr(cls, "TYPE", None)
        if wire and own_type and getattr(obj, "type", None) == own_type:
            routes[cls] = fns  # into the snapshot's dict: a stale route dies with it
        return fns

    def _call(self, fn: Callable[[Any], Any], obj: Any, start: float) -> float:
        """Call one handler (``start``: the time now); return the time after it."""
        try:
            fn(obj)
        except Exception as exc:
            self.report_error(exc, handler=fn)
            self._on_handler_error(exc)
        end = time.monotonic()
        took = end - start
        if took > self.slow_handler_warning and id(fn) not in self._slow_warned:
            self._slow_warned.add(id(fn))
            log.warning(
                "handler %s took %.2f s; later events wait for it (the connection itself is "
                "still served). Move slow work to another thread.",
                callable_name(fn),
                took,
            )
        return end

    def report_error(self, exc: BaseException, *, handler: Any = None) -> None:
        """Give ``exc`` to the ``on_error`` handlers (default: log it). Dispatcher thread."""
        handlers = self._error_handlers
        if not handlers:
            if isinstance(exc, ServerError):
                log.error("server error: %s", exc)
            elif handler is None and exc.__traceback__ is None:
                log.error("%s: %s", type(exc).__name__, exc)
            else:
                where = f"handler {callable_name(handler)}" if handler is not None else "a tool"
                log.error(
                    "%s raised:\n%s",
                    where,
                    "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                )
        for fn in handlers:
            try:
                fn(exc)
            except Exception:
                log.exception("the on_error handler %s raised", callable_name(fn))

    def lag_percentiles(self) -> tuple[float, float]:
        """p50 and p99, in seconds, of frame read → first handler call."""
        samples = list(self.lag_samples)
        return percentile(samples, 0.5), percentile(samples, 0.99)

    # -- pull iterators ----------------------------------------------------------------------------

    def iterate(self, timeout: float | None, maxsize: int) -> Iterator[Any]:
        """Yield every wire-level item emitted while the iterator exists (see Session.events)."""
        q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        with self._iter_lock:
            self._iterators.append(q)
        try:
            while True:
                if self._closed.is_set() and q.empty():
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

    def _stop_iterators(self) -> None:
        with self._iter_lock:
            for q in self._iterators:
                with contextlib.suppress(queue.Full):
                    q.put_nowait(_STOP)
