"""The tool runner: the model's function calls run in a small pool, off the dispatcher.

When a response ends with tool calls (``ToolCallsReady``), each call runs in a
``dashscope_rt-tool-N_*`` thread: the declared Python function (``tools=``) or the
``on_tool_call`` handler. Results are collected per response (a *batch*); once every call of
the oldest batch has its result, the session sends them and one ``response.create``. A batch is
dropped when the user interrupts that turn (barge-in, cancel, clear, a new server session).

A call with a timeout (the tool's own, else the session's ``tool_timeout``) runs in a thread of
its own; when the time is up the model gets an error result and the worker moves on. Python
cannot stop a thread, so a tool that never returns keeps its thread: every thread here is a
daemon, so none of them delays the interpreter's exit (``concurrent.futures`` workers would).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .errors import Timeout, UnknownName
from .reply import ToolCall
from .tools import Tool

__all__ = ["ToolBatch", "ToolRunner"]

log = logging.getLogger("dashscope_rt.session")


@attrs.define
class ToolBatch:
    """The calls of one response and their results (JSON text), by call id."""

    response_id: str | None
    calls: tuple[ToolCall, ...]
    results: dict[str, str] = attrs.field(factory=dict)
    cancelled: bool = False

    @property
    def complete(self) -> bool:
        return len(self.results) >= len(self.calls)


class ToolRunner:
    """Runs tool calls in a pool and keeps their batches until they are sent.

    ``call_soon(fn)`` runs ``fn`` on the dispatcher thread; a finished call is handed back
    there, stored in its batch, and ``on_result(error)`` is told of it (``error``: what the
    tool raised, else None). Batches are only touched on the dispatcher thread.
    """

    def __init__(
        self,
        *,
        tools: Sequence[Tool],
        workers: int,
        timeout: float | None,
        number: int,
        call_soon: Callable[[Callable[[], None]], None],
        on_result: Callable[[BaseException | None], None],
    ) -> None:
        self.tools: Mapping[str, Tool] = {t.name: t for t in tools}
        self._workers = workers
        self._timeout = timeout
        self._number = number
        self._call_soon = call_soon
        self._on_result = on_result
        self._handler: Callable[[ToolCall], Any] | None = None
        self._batches: list[ToolBatch] = []
        self._jobs: queue.SimpleQueue[tuple[ToolBatch, ToolCall] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False
        # Told of each finished call: (call, start and end in time.time_ns(), error); tracing.
        self.observer: Callable[[ToolCall, int, int, BaseException | None], None] | None = None

    # -- the on_tool_call handler ------------------------------------------------------------------

    def set_handler(self, fn: Callable[[ToolCall], Any]) -> None:
        if self._handler is not None:
            log.warning("on_tool_call: the previous tool handler is replaced")
        self._handler = fn

    def remove_handler(self, fn: Callable[..., Any] | None) -> int:
        """Remove the handler (if it is ``fn``, or any when None); return 1 if removed."""
        if self._handler is not None and (fn is None or fn == self._handler):
            self._handler = None
            return 1
        return 0

    def will_answer(self, calls: Sequence[ToolCall]) -> bool:
        """Whether results will be sent for ``calls`` (so the model goes on by itself)."""
        return self._handler is not None or any(c.name in self.tools for c in calls)

    # -- running -----------------------------------------------------------------------------------

    def start(self, response_id: str | None, calls: tuple[ToolCall, ...]) -> None:
        """Run the calls of one finished response. Dispatcher thread."""
        if not self.tools and self._handler is None:
            log.warning(
                "the model called %s but no tools= or on_tool_call handler is set",
                ", ".join(repr(c.name) for c in calls),
            )
            return
        batch = ToolBatch(response_id=response_id, calls=calls)
        self._batches.append(batch)
        with self._lock:
            if self._stopped:  # we are closing
                return
            for call in calls:
                self._jobs.put((batch, call))
                self._threads = [t for t in self._threads if t.is_alive()]
                if len(self._threads) < self._workers:
                    worker = threading.Thread(
                        target=self._work,
                        name=f"dashscope_rt-tool-{self._number}_{len(self._threads)}",
                        daemon=True,
                    )
                    self._threads.append(worker)
                    worker.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._run(*job)

    def _run(self, batch: ToolBatch, call: ToolCall) -> None:
        declared = self.tools.get(call.name)
        limit = declared.timeout if declared is not None and declared.timeout else None
        limit = limit or self._timeout
        started = time.time_ns()
        if limit is None:
            output, error = self._attempt(call)
        else:
            box: list[tuple[str, BaseException | None]] = []
            runner = threading.Thread(
                target=lambda: box.append(self._attempt(call)),
                name=f"{threading.current_thread().name}-call",
                daemon=True,
            )
            runner.start()
            runner.join(limit)
            if box:
                output, error = box[0]
            else:
                error = Timeout(
                    f"the tool {call.name!r} did not return within {limit:g} s: the model was "
                    "sent an error result (its thread runs on; it does not delay exit)"
                )
                text = f"the tool did not return within {limit:g} s"
                output = json.dumps({"error": text}, ensure_ascii=False)
        if self.observer is not None:
            self.observer(call, started, time.time_ns(), error)

        def done() -> None:
            if batch.cancelled:
                log.info("dropped the result of %r: the user interrupted that turn", call.name)
            else:
                batch.results[call.call_id] = output
            self._on_result(error)

        self._call_soon(done)

    def _attempt(self, call: ToolCall) -> tuple[str, BaseException | None]:
        """(JSON result, None), or (an error result, the exception) if the tool raised."""
        try:
            return self._invoke(call), None
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            return json.dumps({"error": text}, ensure_ascii=False), exc

    def _invoke(self, call: ToolCall) -> str:
        declared = self.tools.get(call.name)
        if declared is not None and declared.fn is not None:
            return declared.invoke(call.arguments)
        if self._handler is not None:
            result = self._handler(call)
            return result if isinstance(result, str) else json.dumps(result, default=str)
        raise UnknownName(
            f"the model called the tool {call.name!r}, which has no function "
            f"(declared: {', '.join(self.tools) or 'none'}; or set on_tool_call)"
        )

    # -- batches -----------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether results are still to come or to be sent. Any thread (a snapshot)."""
        return bool(self._batches)

    def pop_ready(self) -> ToolBatch | None:
        """The oldest batch if every result is in (removed), else None. Dispatcher thread."""
        if self._batches and self._batches[0].complete:
            return self._batches.pop(0)
        return None

    def cancel(self, why: str) -> None:
        """Drop the results still to come (barge-in, cancel, clear). Dispatcher thread."""
        for batch in self._batches:
            batch.cancelled = True
            log.debug("results for response %s will be dropped (%s)", batch.response_id, why)
        self._batches = []

    def shutdown(self) -> None:
        """Drop the calls not started yet and let idle workers end (running tools run on)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            while True:
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
            for _ in self._threads:
                self._jobs.put(None)
            self._threads = []
