"""Function calling: two tools (weather and time) declared from plain Python functions.

Tools work on the qwen3.5 models. The SDK builds each tool's JSON schema from the signature and
docstring, runs the function when the model calls it (off the event thread), sends the result
back and lets the model finish its answer.

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/function_calling.py --url ws://127.0.0.1:8765/api-ws/v1/realtime

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/function_calling.py "What's the weather in Paris, and the time in Tokyo?"
    python samples/function_calling.py --wav samples/assets/weather_and_time.wav
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dashscope_rt import Reply, Session
from dashscope_rt.audio import read_wav

MODEL = "qwen3.5-omni-flash-realtime"
QUESTION = "What's the weather in Paris, and what time is it in Tokyo?"

_FAKE_WEATHER = {"paris": "light rain, 14 °C", "tokyo": "clear, 22 °C", "hangzhou": "sunny, 24 °C"}


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: The city's name in English, for example Paris.
    """
    return f"{city}: {_FAKE_WEATHER.get(city.strip().lower(), 'cloudy, 18 °C')}"


def get_time(timezone: str) -> str:
    """Get the current local time in a time zone.

    Args:
        timezone: An IANA time zone name, for example Asia/Tokyo or Europe/Paris.
    """
    try:
        now = datetime.datetime.now(ZoneInfo(timezone))
    except (KeyError, ValueError):
        return f"unknown time zone {timezone!r}"
    return f"{now:%H:%M} in {timezone}"


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}


def run(session_kwargs: dict[str, Any], question: str = QUESTION, wav: Path | None = None) -> Reply:
    """Ask ``question`` (as text, or the WAV file's speech) and return the final reply."""
    with Session(MODEL, tools=[get_weather, get_time], **session_kwargs) as session:

        @session.on("response.function_call_arguments.done")
        def calling(event: Any) -> None:
            print(f"  → {event.name}({event.arguments.strip()})")

        if wav is not None:
            audio = read_wav(wav)
            reply = session.ask(audio=audio.pcm, sample_rate=audio.sample_rate)
        else:
            print(f"you:       {question}")
            reply = session.ask(text=question)
    for call in reply.tool_calls:
        print(f"  ✓ {call.name} called with {call.parsed_arguments()}")
    print(f"assistant: {reply.text or reply.transcript}")
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--wav", type=Path, help="ask with speech from a WAV file instead")
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    args = parser.parse_args()
    run(connection(args.url, args.region), args.question, args.wav)


if __name__ == "__main__":
    main()
