"""OpenTelemetry spans per session, turn and tool call, read from the in-memory exporter."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dashscope_rt import PriceTable, Reply, Session, SessionConfig, telemetry
from dashscope_rt.testing import ScriptedReply as SimReply
from dashscope_rt.testing import ScriptedToolCall as SimCall
from dashscope_rt.testing import Simulator, synthesize

PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-otel"
MANUAL = SessionConfig(turn_detection=None)
PRICES = PriceTable(prices={PLUS: {"text_in": 1.0, "audio_in": 10.0, "text_out": 4.0}})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def named(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def get_weather(city: str) -> str:
    """Get the weather of a city.

    Args:
        city: the city
    """
    return f"sunny in {city}"


def broken_tool(city: str) -> str:
    """Always fails.

    Args:
        city: the city
    """
    raise RuntimeError("no network")


@pytest.mark.timeout(30)
def test_session_turn_and_tool_spans(
    sim: Simulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sim.script_replies([SimReply(tool_calls=(SimCall("get_weather", {"city": "Paris"}),))])
    with Session(
        PLUS,
        api_key=KEY,
        url=sim.url,
        config=MANUAL,
        tools=[get_weather],
        prices=PRICES,
        tracer_provider=provider,
        close_timeout=2.0,
    ) as s:
        reply = s.ask(text="What is the weather in Paris?", timeout=10)
        sid = s.session_id
    spans = exporter.get_finished_spans()
    assert not named(spans, "probe")
    (session,) = named(spans, "realtime_session ")
    turns = named(spans, "chat ")
    (tool,) = named(spans, "execute_tool ")
    assert len(turns) == 2  # the tool call, then the answer with its result
    a = session.attributes or {}
    assert a["gen_ai.provider.name"] == "dashscope" and a["gen_ai.request.model"] == PLUS
    assert a["gen_ai.conversation.id"] == sid and a["server.address"] == "127.0.0.1"
    assert a["dashscope_rt.session.turns"] == 2 and a["dashscope_rt.session.close_code"] == 1000
    assert a["dashscope_rt.session.cost"] == pytest.approx(s.total_cost)
    for turn in turns:
        assert turn.parent is not None and turn.parent.span_id == session.context.span_id
        assert turn.context.trace_id == session.context.trace_id
    last = turns[-1].attributes or {}
    assert last["gen_ai.operation.name"] == "chat"
    assert last["gen_ai.response.id"] == reply.response_id
    assert last["gen_ai.response.finish_reasons"] == ("completed",)
    assert reply.usage is not None
    assert last["gen_ai.usage.input_tokens"] == reply.usage.input_tokens
    assert last["gen_ai.usage.output_tokens"] == reply.usage.output_tokens
    assert last["dashscope_rt.turn.interrupted"] is False
    assert last["dashscope_rt.turn.cost"] == pytest.approx(reply.cost)
    assert last["dashscope_rt.turn.created_to_first_audio_ms"] == pytest.approx(
        reply.metrics.created_to_first_audio_ms
    )
    assert "gen_ai.response.time_to_first_chunk" in last
    t = tool.attributes or {}
    assert t["gen_ai.operation.name"] == "execute_tool" and t["gen_ai.tool.name"] == "get_weather"
    assert t["gen_ai.tool.call.id"] == reply.tool_calls[0].call_id
    assert tool.parent is not None and tool.parent.span_id == turns[0].context.span_id
    assert tool.status.status_code is StatusCode.UNSET


@pytest.mark.timeout(30)
def test_a_failing_tool_and_an_interrupted_turn(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    audio = threading.Event()
    done: list[Reply] = []
    with Simulator(api_key=KEY, realtime=2.0) as sim:
        sim.script_replies([SimReply(tool_calls=(SimCall("broken_tool", {"city": "Rome"}),))])
        with Session(
            PLUS,
            api_key=KEY,
            url=sim.url,
            config=MANUAL,
            tools=[broken_tool],
            tracer_provider=provider,
            close_timeout=2.0,
        ) as s:
            s.on_error(lambda exc: None)
            s.ask(text="Is it raining in Rome?", timeout=10)
            s.on_audio_delta(lambda ev: audio.set())
            s.on_response_done(done.append)
            s.append_audio(synthesize("tell me a long story about the sea", 16000))
            s.commit()
            s.create_response()
            assert audio.wait(10)
            s.cancel_response()
            sim.wait_for(lambda: done, 10)
    spans = exporter.get_finished_spans()
    (tool,) = named(spans, "execute_tool ")
    assert tool.status.status_code is StatusCode.ERROR
    assert (tool.attributes or {})["error.type"] == "RuntimeError"
    assert any(e.name == "exception" for e in tool.events)
    last = named(spans, "chat ")[-1].attributes or {}
    assert last["dashscope_rt.turn.interrupted"] is True
    assert last["dashscope_rt.turn.status"] == done[0].status != "completed"


@pytest.mark.timeout(30)
def test_a_turn_cut_by_the_app_is_interrupted_even_if_the_server_completed_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The span reads ``Reply.interrupted``: a cut reported while the reply streams counts,
    though no barge-in came from the server and the response completed."""
    done: list[Reply] = []
    with (
        Simulator(api_key=KEY, realtime=2.0) as sim,
        Session(PLUS, api_key=KEY, url=sim.url, config=MANUAL, tracer_provider=provider) as s,
    ):
        s.on_audio_delta(lambda ev: s.report_interruption(120.0))
        s.on_response_done(done.append)
        s.ask(text="Tell me about the sea.", timeout=10)
        sim.wait_for(lambda: done, 10)
    assert done[0].interrupted and done[0].status == "completed"
    last = named(exporter.get_finished_spans(), "chat ")[-1].attributes or {}
    assert last["dashscope_rt.turn.interrupted"] is True
    assert last["dashscope_rt.turn.status"] == "completed"


def test_nothing_is_traced_without_a_configured_provider(sim: Simulator) -> None:
    s = Session(PLUS, api_key=KEY, url=sim.url)  # the global provider is the no-op default
    assert s._engine.dispatcher.observer is None and s._engine.tools.observer is None


def test_without_opentelemetry_it_is_a_no_op_or_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider
) -> None:
    monkeypatch.setattr(telemetry, "_import_trace", lambda: None)
    assert telemetry.make_tracer(PLUS, "host") is None
    with pytest.raises(ImportError, match=r"dashscope-rt\[otel\]"):
        Session(PLUS, api_key=KEY, tracer_provider=provider)
