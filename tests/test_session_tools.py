"""Tool calls through a Session and the simulator: parallel calls, errors, barge-in."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dashscope_rt.config import SessionConfig
from dashscope_rt.reply import ToolCall
from dashscope_rt.session import Session
from dashscope_rt.testing import ScriptedReply as SimReply
from dashscope_rt.testing import ScriptedToolCall as SimCall
from dashscope_rt.testing import Simulator, silence, synthesize
from dashscope_rt.tools import tool

PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-tools"
MANUAL = SessionConfig(turn_detection=None)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, **kw: Any) -> Session:
    kw.setdefault("config", MANUAL)
    return Session(PLUS, api_key=KEY, url=sim.url, close_timeout=2.0, **kw)


def two_calls() -> SimReply:
    return SimReply(
        tool_calls=(
            SimCall("get_weather", {"city": "Paris"}),
            SimCall("get_time", {"city": "Paris"}),
        )
    )


def outputs_then_creates(types: list[str]) -> tuple[int, int]:
    """(function outputs, response.create) sent after the first response.create."""
    after = types[types.index("response.create") + 1 :]
    return after.count("conversation.item.create"), after.count("response.create")


@pytest.mark.timeout(30)
def test_two_parallel_calls_then_one_response_create(sim: Simulator) -> None:
    both_running = threading.Barrier(2, timeout=5)
    threads: set[str] = set()

    def get_weather(city: str) -> str:
        """Current weather of a city.

        Args:
            city: the city name
        """
        threads.add(threading.current_thread().name)
        both_running.wait()  # only passes if the two calls run at the same time
        return f"sunny in {city}"

    @tool(name="get_time", description="Local time in a city.")
    def local_time(city: str) -> dict[str, str]:
        threads.add(threading.current_thread().name)
        both_running.wait()
        return {"city": city, "time": "12:00"}

    sim.script_replies([two_calls()])
    with make(sim, tools=[get_weather, local_time]) as s:
        declared = sim.last.received_events("session.update")[0]["session"]["tools"]
        assert {t["function"]["name"] for t in declared} == {"get_weather", "get_time"}
        reply = s.ask(audio=synthesize("weather and time please", 16000), timeout=15)
        rec = sim.last
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert "sunny in Paris" in reply.text and "12:00" in reply.text
    assert all(n.startswith("dashscope_rt-tool-") for n in threads) and len(threads) == 2
    types = rec.received_types()
    assert outputs_then_creates(types) == (2, 1)
    last_output = max(i for i, t in enumerate(types) if t == "conversation.item.create")
    assert types[last_output + 1] == "response.create"
    outs = {
        e["item"]["call_id"]: e["item"]["output"]
        for e in rec.received_events("conversation.item.create")
    }
    assert len(outs) == 2 and all("error" not in o for o in outs.values())


@pytest.mark.timeout(30)
def test_on_tool_call_handler_for_declared_dicts(sim: Simulator) -> None:
    decl = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    seen: list[ToolCall] = []
    sim.script_replies([SimReply(tool_calls=(SimCall("lookup", {"q": "tea"}),))])
    with make(sim, tools=[decl]) as s:

        @s.on_tool_call
        def handle(call: ToolCall) -> Any:
            seen.append(call)
            return {"found": call.parsed_arguments()["q"]}

        reply = s.ask(audio=synthesize("look up tea", 16000), timeout=15)
        rec = sim.last
    assert seen[0].name == "lookup" and seen[0].call_id
    out = rec.received_events("conversation.item.create")[0]["item"]
    assert out["type"] == "function_call_output" and json.loads(out["output"]) == {"found": "tea"}
    assert reply.tool_calls and '"found"' in reply.text


@pytest.mark.timeout(30)
def test_raising_tool_sends_an_error_result_and_reports(sim: Simulator) -> None:
    def get_weather(city: str) -> str:
        """Weather."""
        raise RuntimeError("weather service down")

    def get_time(city: str) -> str:
        """Time."""
        return "noon"

    errors: list[BaseException] = []
    sim.script_replies([two_calls()])
    with make(sim, tools=[get_weather, get_time]) as s:
        s.on_error(errors.append)
        reply = s.ask(audio=synthesize("weather and time", 16000), timeout=15)
        rec = sim.last
    assert any(isinstance(e, RuntimeError) and "service down" in str(e) for e in errors)
    outs = [e["item"]["output"] for e in rec.received_events("conversation.item.create")]
    assert any("weather service down" in o for o in outs) and "noon" in outs
    assert outputs_then_creates(rec.received_types()) == (2, 1)
    assert reply.text


@pytest.mark.timeout(30)
def test_results_after_barge_in_are_dropped(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dashscope_rt.session")
    started = threading.Event()
    release = threading.Event()
    dropped = threading.Event()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "dropped the result" in record.getMessage():
                dropped.set()

    spy = Spy()
    logging.getLogger("dashscope_rt.session").addHandler(spy)

    def slow_lookup(q: str) -> str:
        """Look up."""
        started.set()
        release.wait(10)
        return "late result"

    sim.script_replies([SimReply(tool_calls=(SimCall("slow_lookup", {"q": "x"}),))])
    speech = synthesize("please look this up", 16000)
    try:
        with make(sim, tools=[slow_lookup], config=SessionConfig()) as s:  # server VAD
            barge = threading.Event()
            s.on_speech_started(lambda e: barge.set() if started.is_set() else None)
            s.append_audio(speech + silence(1200))
            assert started.wait(10)
            s.append_audio(speech + silence(1200))  # the user talks again: barge-in
            assert barge.wait(10)
            release.set()
            assert dropped.wait(10)
            rec = sim.last
    finally:
        logging.getLogger("dashscope_rt.session").removeHandler(spy)
        release.set()
    assert "conversation.item.create" not in rec.received_types()
