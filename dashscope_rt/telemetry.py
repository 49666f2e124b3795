"""OpenTelemetry traces of a session: one span per session, per turn and per tool call.

Used when ``opentelemetry-api`` is installed (``pip install 'dashscope-rt[otel]'``); without it,
or without a configured tracer provider, nothing is recorded and nothing is slowed down.
Attribute names follow the OpenTelemetry GenAI semantic conventions where they exist
(``gen_ai.*``); what they do not cover (turn latencies, interruption, cost) is under
``dashscope_rt.*``. Span times are wall-clock, converted from the session's monotonic stamps.
"""

from __future__ import annotations

import collections
import importlib
import logging
import threading
import time
from typing import Any

from . import events as ev
from ._sdk_events import Closed, Reconnected, RolledOver
from .conversation import BudgetExceeded
from .errors import MissingExtra
from .reply import Reply, ToolCall

__all__ = ["OTEL_EXTRA_HINT", "SessionTracer", "make_tracer"]

log = logging.getLogger("dashscope_rt.telemetry")

OTEL_EXTRA_HINT = "pip install 'dashscope-rt[otel]'"
PROVIDER = "dashscope"
_KEPT_TURNS = 64
_METRICS = (
    "speech_end_to_first_audio_ms",
    "committed_to_first_audio_ms",
    "created_to_first_text_ms",
    "created_to_first_audio_ms",
    "total_ms",
    "audio_out_ms",
)


def _import_trace() -> Any:
    try:
        return importlib.import_module("opentelemetry.trace")
    except ImportError:
        return None


def make_tracer(model: str, server: str, tracer_provider: Any = None) -> SessionTracer | None:
    """A tracer for one session, or None when OpenTelemetry is absent or records nothing.

    ``tracer_provider`` (default: the global one) must be given only with OpenTelemetry
    installed; otherwise :class:`~dashscope_rt.errors.MissingExtra` names the extra.
    """
    trace = _import_trace()
    if trace is None:
        if tracer_provider is not None:
            raise MissingExtra(
                f"tracer_provider= needs opentelemetry-api: {OTEL_EXTRA_HINT}", extra="otel"
            )
        return None
    from ._version import __version__

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    tracer = provider.get_tracer("dashscope_rt", __version__)
    probe = tracer.start_span("probe")
    recording = probe.is_recording()
    if not recording:  # no SDK configured: stay out of the event path entirely
        probe.end()
        return None
    # The probe is never ended, so no exporter sees it. A provider configured after the
    # session was created is not used by it.
    return SessionTracer(trace, tracer, model, server)


def _wall_ns(t: float | None, now_mono: float, now_ns: int) -> int | None:
    if t is None:
        return None
    return now_ns - int((now_mono - t) * 1e9)


class SessionTracer:
    """Turns what a session emits into spans (the engine's ``observer``, plus tool results)."""

    def __init__(self, trace: Any, tracer: Any, model: str, server: str) -> None:
        self._trace = trace
        self._tracer = tracer
        self._model = model
        self._server = server
        self._lock = threading.Lock()
        self._session: Any = None
        self._session_ctx: Any = None
        self._turns: collections.OrderedDict[str | None, Any] = collections.OrderedDict()
        self._turn_count = 0
        self._cost = 0.0

    # -- observer ---------------------------------------------------------------------------------

    def observe(self, obj: Any, t: float) -> None:
        """Called by the dispatcher with every object it emits, before the handlers."""
        try:
            self._observe(obj, t)
        except Exception:  # tracing never breaks a session
            log.debug("tracing failed on %r", type(obj).__name__, exc_info=True)

    def _observe(self, obj: Any, t: float) -> None:
        if isinstance(obj, ev.SessionCreated):
            self._on_session_created(obj, t)
        elif isinstance(obj, Reply):
            self._on_reply(obj)
        elif isinstance(obj, (Reconnected, RolledOver)):
            self._session_event(obj.type, {"gen_ai.conversation.id": obj.session_id or ""})
        elif isinstance(obj, BudgetExceeded):
            self._session_event(obj.type, {"dashscope_rt.budget": obj.budget})
        elif isinstance(obj, ev.ErrorEvent):
            self._session_event(
                "error", {"error.type": obj.error.code or obj.error.type or "server_error"}
            )
        elif isinstance(obj, Closed):
            self._on_closed(obj)

    def _on_session_created(self, obj: ev.SessionCreated, t: float) -> None:
        sid = obj.session.id or ""
        if self._session is not None:
            self._session.set_attribute("gen_ai.conversation.id", sid)
            return
        start = _wall_ns(t, time.monotonic(), time.time_ns())
        span = self._tracer.start_span(
            f"realtime_session {self._model}",
            kind=self._trace.SpanKind.CLIENT,
            start_time=start,
            attributes={
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": self._model,
                "gen_ai.conversation.id": sid,
                "server.address": self._server,
            },
        )
        self._session = span
        self._session_ctx = self._trace.set_span_in_context(span)

    def _session_event(self, name: str, attributes: dict[str, Any]) -> None:
        if self._session is not None:
            self._session.add_event(name, attributes=attributes)

    def _on_reply(self, reply: Reply) -> None:
        m = reply.metrics
        now_mono, now_ns = time.monotonic(), time.time_ns()
        starts = [x for x in (m.speech_stopped_at, m.committed_at, m.response_created_at) if x]
        start = _wall_ns(min(starts) if starts else m.done_at, now_mono, now_ns)
        interrupted = reply.interrupted or reply.status == "cancelled"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": self._model,
            "gen_ai.response.finish_reasons": (reply.status,),
            "dashscope_rt.turn.status": reply.status,
            "dashscope_rt.turn.interrupted": interrupted,
            "dashscope_rt.turn.tool_calls": len(reply.tool_calls),
        }
        if reply.response_id:
            attributes["gen_ai.response.id"] = reply.response_id
        if m.response_created_at is not None:
            firsts = [x for x in (m.first_text_at, m.first_audio_at) if x is not None]
            if firsts:
                attributes["gen_ai.response.time_to_first_chunk"] = (
                    min(firsts) - m.response_created_at
                )
        for name in _METRICS:
            value = getattr(m, name)
            if value is not None:
                attributes[f"dashscope_rt.turn.{name}"] = float(value)
        attributes.update(_usage_attributes(reply.usage))
        if reply.cost is not None:
            self._cost += reply.cost
            attributes["dashscope_rt.turn.cost"] = reply.cost
        span = self._tracer.start_span(
            f"chat {self._model}",
            context=self._session_ctx,
            kind=self._trace.SpanKind.CLIENT,
            start_time=start,
            attributes=attributes,
        )
        if reply.status == "failed":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "response failed"))
        span.end(end_time=_wall_ns(m.done_at, now_mono, now_ns))
        self._turn_count += 1
        with self._lock:
            self._turns[reply.response_id] = self._trace.set_span_in_context(span)
            while len(self._turns) > _KEPT_TURNS:
                self._turns.popitem(last=False)

    def _on_closed(self, closed: Closed) -> None:
        span, self._session = self._session, None
        if span is None:
            return
        span.set_attribute("dashscope_rt.session.turns", self._turn_count)
        if closed.code is not None:
            span.set_attribute("dashscope_rt.session.close_code", closed.code)
        if self._cost:
            span.set_attribute("dashscope_rt.session.cost", self._cost)
        if closed.error is not None:
            span.set_attribute("error.type", type(closed.error).__name__)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(closed.error)))
        span.end()

    # -- tool calls (from the tool pool's threads) -----------------------------------------------

    def tool_done(
        self, call: ToolCall, start_ns: int, end_ns: int, error: BaseException | None
    ) -> None:
        """Record one finished tool call as a span under the turn that asked for it."""
        try:
            with self._lock:
                parent = self._turns.get(call.response_id, self._session_ctx)
            span = self._tracer.start_span(
                f"execute_tool {call.name}",
                context=parent,
                kind=self._trace.SpanKind.INTERNAL,
                start_time=start_ns,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.tool.name": call.name,
                    "gen_ai.tool.call.id": call.call_id,
                    "gen_ai.tool.type": "function",
                },
            )
            if error is not None:
                span.set_attribute("error.type", type(error).__name__)
                span.record_exception(error)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(error)))
            span.end(end_time=end_ns)
        except Exception:
            log.debug("tracing a tool call failed", exc_info=True)


def _usage_attributes(usage: ev.Usage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    out: dict[str, Any] = {}
    if usage.input_tokens is not None:
        out["gen_ai.usage.input_tokens"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["gen_ai.usage.output_tokens"] = usage.output_tokens
    for side, details in (
        ("input", usage.input_tokens_details),
        ("output", usage.output_tokens_details),
    ):
        for key, value in details.items():
            if isinstance(value, int) and not isinstance(value, bool):
                out[f"dashscope_rt.usage.{side}.{key}"] = value
    return out
