"""The simulated model's tool calls: every tool the question names, arguments per parameter from
the JSON schema (places, time zones, enums, units, numbers), and an answer from the results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("websockets")

from dashscope_rt import Session
from dashscope_rt.testing import ScriptedToolCall, Simulator, Turn, default_responder
from dashscope_rt.tools import as_tools
from samples import function_calling


def _wire(*fns: Any) -> tuple[dict[str, Any], ...]:
    return tuple(t.to_wire() for t in as_tools(list(fns)))


def _calls(text: str, tools: tuple[dict[str, Any], ...]) -> tuple[ScriptedToolCall, ...]:
    return default_responder(Turn(transcript=text, tools=tools)).tool_calls


SAMPLE_TOOLS = _wire(function_calling.get_weather, function_calling.get_time)

FORECAST = {
    "type": "function",
    "function": {
        "name": "get_forecast",
        "description": "Weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 10},
                "detailed": {"type": "boolean", "default": True},
            },
            "required": ["city", "unit", "days"],
        },
    },
}


def test_every_named_tool_is_called_with_its_own_place() -> None:
    calls = _calls("What's the weather in Paris, and what time is it in Tokyo?", SAMPLE_TOOLS)
    assert calls == (
        ScriptedToolCall("get_weather", {"city": "Paris"}),
        ScriptedToolCall("get_time", {"timezone": "Asia/Tokyo"}),
    )
    # In the order named, each from its own clause.
    calls = _calls("What time is it in New York and the weather in London?", SAMPLE_TOOLS)
    assert calls == (
        ScriptedToolCall("get_time", {"timezone": "America/New_York"}),
        ScriptedToolCall("get_weather", {"city": "London"}),
    )


def test_lower_case_speech_and_cities_without_their_own_zone() -> None:
    calls = _calls("what time is it in hangzhou right now", SAMPLE_TOOLS)
    assert calls == (ScriptedToolCall("get_time", {"timezone": "Asia/Shanghai"}),)
    calls = _calls("what's the weather in san francisco today", SAMPLE_TOOLS)
    assert calls == (ScriptedToolCall("get_weather", {"city": "San Francisco"}),)


def test_arguments_follow_the_schema_enum_unit_number() -> None:
    (call,) = _calls("Forecast for Berlin in Fahrenheit, 3 days please", (FORECAST,))
    assert call.arguments == {"city": "Berlin", "unit": "fahrenheit", "days": 3}
    (call,) = _calls("Forecast for Berlin for 40 days", (FORECAST,))
    # Out of range: the first allowed value; no unit named: the enum's first option.
    assert call.arguments == {"city": "Berlin", "unit": "celsius", "days": 1}
    assert all(isinstance(v, str) for k, v in call.arguments.items() if k != "days")
    assert call.arguments["city"] != call.arguments["unit"]


def test_no_tool_named_means_no_call() -> None:
    assert _calls("Tell me a joke", SAMPLE_TOOLS) == ()
    assert default_responder(Turn(transcript="Tell me a joke", tools=SAMPLE_TOOLS)).text == (
        "You said: Tell me a joke"
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.mark.timeout(30)
def test_function_calling_sample_unscripted_answers_both(sim: Simulator) -> None:
    """The sample's question against the simulator as it is, nothing scripted."""
    reply = function_calling.run({"url": sim.url, "api_key": sim.api_key})
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert [c.parsed_arguments() for c in reply.tool_calls] == [
        {"city": "Paris"},
        {"timezone": "Asia/Tokyo"},
    ]
    assert "Paris: light rain, 14 °C" in reply.text and "in Asia/Tokyo" in reply.text


@pytest.mark.timeout(30)
def test_readme_tool_answers_from_its_result(sim: Simulator) -> None:
    with Session(
        "qwen3.5-omni-flash-realtime",
        url=sim.url,
        api_key=sim.api_key,
        tools=[function_calling.get_weather],
    ) as session:
        reply = session.ask(text="How's the weather in Tokyo?")
    assert reply.tool_calls[0].parsed_arguments() == {"city": "Tokyo"}
    assert reply.text == "Here is what I found: Tokyo: clear, 22 °C"
