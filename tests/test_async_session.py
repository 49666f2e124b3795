"""AsyncSession against the simulator over real sockets: the sync API's scenarios on asyncio."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dashscope_rt import AsyncSession, Reply, SessionConfig
from dashscope_rt.conversation import ReplyInterrupted
from dashscope_rt.errors import AuthenticationError, InvalidType, ServerError
from dashscope_rt.events import Closed
from dashscope_rt.testing import ScriptedReply as SimReply
from dashscope_rt.testing import ScriptedToolCall as SimCall
from dashscope_rt.testing import Simulator, silence, synthesize

FLASH = "qwen3-omni-flash-realtime"
PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-async"
MANUAL = SessionConfig(turn_detection=None)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, model: str = FLASH, **kw: Any) -> AsyncSession:
    kw.setdefault("api_key", KEY)
    kw.setdefault("close_timeout", 2.0)
    return AsyncSession(model, url=sim.url, **kw)


def speech(text: str = "hello there, how are you today") -> bytes:
    return synthesize(text, 16000)


def sdk_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("dashscope_rt")}


async def no_sdk_threads(timeout: float = 5.0) -> set[str]:
    """Wait (bounded) for the SDK's threads to end; return those still running."""
    deadline = time.monotonic() + timeout
    while sdk_threads() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return sdk_threads()


@pytest.mark.timeout(30)
async def test_vad_turn_with_plain_and_async_handlers_on_the_loop(sim: Simulator) -> None:
    loop_thread = threading.current_thread()
    seen: list[tuple[str, bool]] = []
    audio: list[bytes] = []

    async def on_delta(ev: Any) -> None:
        await asyncio.sleep(0)  # a real await inside a handler
        audio.append(ev.audio)
        seen.append(("audio", threading.current_thread() is loop_thread))

    async with make(sim) as s:
        s.on_speech_started(lambda ev: seen.append(("started", True)))
        s.on_speech_stopped(lambda ev: seen.append(("stopped", True)))
        s.on_audio_delta(on_delta)
        done: list[Reply] = []

        def finished(r: Reply) -> None:
            done.append(r)
            seen.append(("done", threading.current_thread() is loop_thread))

        s.on_response_done(finished)
        reply = await s.ask(audio=speech() + silence(300), timeout=10)
        for _ in range(200):  # the handlers of the last events may still be queued
            if done:
                break
            await asyncio.sleep(0.01)
    assert seen[:2] == [("started", True), ("stopped", True)]
    assert all(on_loop for _, on_loop in seen), seen
    assert [k for k, _ in seen if k != "audio"][-1] == "done"
    assert b"".join(audio) == reply.audio and reply.text and done[0] == reply
    assert [h.role for h in s.history] == ["user", "assistant"]
    assert s.closed and await no_sdk_threads() == set()


@pytest.mark.timeout(30)
async def test_ask_in_manual_mode_with_text(sim: Simulator) -> None:
    async with make(sim, PLUS, config=MANUAL) as s:
        first = await s.ask(text="What is two and two?", timeout=10)
        second = await s.ask(audio=speech("and now something else"), timeout=10)
    assert "two and two" in first.text and second.audio
    assert second.response_id != first.response_id
    assert sim.last.received_types().count("response.create") == 2


@pytest.mark.timeout(30)
async def test_the_loop_runs_while_ask_waits(sim: Simulator) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    with Simulator(api_key=KEY, realtime=4.0) as slow:
        async with make(slow, config=MANUAL) as s:
            beat = asyncio.create_task(heartbeat())
            before = ticks
            reply = await s.ask(audio=speech("tell me a story about the sea"), timeout=20)
            during = ticks - before
            stop.set()
            await beat
    assert reply.status == "completed" and reply.audio
    assert during >= 3  # the loop kept running while the reply streamed in


@pytest.mark.timeout(30)
async def test_events_iterator_sees_the_turn_and_ends_after_close(sim: Simulator) -> None:
    types: list[str] = []
    async with make(sim, config=MANUAL) as s:

        async def consume() -> None:
            async for ev in s.events():
                types.append(ev.type)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # let the iterator register
        await s.ask(audio=speech(), timeout=10)
    await asyncio.wait_for(task, 5)
    assert "response.created" in types and "response.done" in types
    assert types[-1] == Closed.TYPE


@pytest.mark.timeout(40)
async def test_cancelling_ask_sends_response_cancel_and_leaks_nothing() -> None:
    with Simulator(api_key=KEY, realtime=1.0) as sim:
        async with make(sim, config=MANUAL) as s:
            first_audio = asyncio.Event()
            s.on_audio_delta(lambda ev: first_audio.set())
            task = asyncio.create_task(
                s.ask(audio=speech("tell me a very long story about the sea"), timeout=30)
            )
            await asyncio.wait_for(first_audio.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            rec = sim.last
            sim.wait_for(lambda: "response.cancel" in rec.received_types(), 5)
            # the waiting thread ends once the cancelled response is over
            deadline = time.monotonic() + 10
            while any(n.startswith("dashscope_rt-async") for n in sdk_threads()):
                assert time.monotonic() < deadline, sdk_threads()
                await asyncio.sleep(0.02)
            assert s.last_reply is not None and s.last_reply.status != "completed"
            again = await s.ask(audio=speech("a short one"), timeout=20)
            assert again.status == "completed"
        assert await no_sdk_threads() == set()


@pytest.mark.timeout(40)
async def test_ask_cancelled_before_its_request_sends_nothing() -> None:
    with Simulator(api_key=KEY, realtime=1.0) as sim:
        async with make(sim, config=MANUAL) as s:
            started = asyncio.Event()
            replies: list[Reply] = []
            s.on("response.created", lambda ev: started.set())
            s.on_response_done(replies.append)
            s.append_audio(speech("tell me a long story"))
            s.commit()
            s.create_response()
            await asyncio.wait_for(started.wait(), 10)
            task = asyncio.create_task(s.ask(audio=speech("second question"), timeout=30))
            await asyncio.sleep(0.2)  # it waits for the first response to end
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(3000):
                if replies:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            types = sim.last.received_types()
    assert replies and replies[0].status == "completed"  # the first response was not cancelled
    assert "response.cancel" not in types
    assert types.count("response.create") == 1 and types.count("input_audio_buffer.commit") == 1


@pytest.mark.timeout(30)
@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is Python 3.11+")
async def test_a_failing_task_group_closes_the_session(sim: Simulator) -> None:
    holder: list[AsyncSession] = []
    entered = asyncio.Event()

    async def talk() -> None:
        async with make(sim) as s:
            holder.append(s)
            entered.set()
            await s.wait()

    async def fail() -> None:
        await entered.wait()
        raise LookupError("something else failed")

    task_group = vars(asyncio)["TaskGroup"]  # 3.11+; mypy checks for 3.10
    with pytest.raises(Exception) as info:  # an ExceptionGroup
        async with task_group() as group:
            group.create_task(talk())
            group.create_task(fail())
    assert any(isinstance(e, LookupError) for e in getattr(info.value, "exceptions", ()))
    assert holder[0].closed and holder[0].close_info is not None
    assert await no_sdk_threads() == set()
    rec = sim.last
    sim.wait_for(lambda: rec.closed_by, 5)
    assert rec.closed_by == "client"


@pytest.mark.timeout(30)
async def test_async_tools_run_on_the_loop(sim: Simulator) -> None:
    loop_thread = threading.current_thread()
    ran_on: list[bool] = []

    async def get_weather(city: str) -> str:
        """Get the weather of a city.

        Args:
            city: the city
        """
        ran_on.append(threading.current_thread() is loop_thread)
        await asyncio.sleep(0.01)
        return f"sunny in {city}"

    sim.script_replies([SimReply(tool_calls=(SimCall("get_weather", {"city": "Paris"}),))])
    async with make(sim, PLUS, config=MANUAL, tools=[get_weather]) as s:
        reply = await s.ask(text="What is the weather in Paris?", timeout=15)
    assert ran_on == [True]
    assert "sunny in Paris" in reply.text
    assert [c.name for c in reply.tool_calls] == ["get_weather"]


@pytest.mark.timeout(30)
async def test_async_on_tool_call_handler(sim: Simulator) -> None:
    calls: list[str] = []

    async def handle(call: Any) -> dict[str, str]:
        calls.append(call.name)
        return {"time": "noon"}

    sim.script_replies([SimReply(tool_calls=(SimCall("get_time", {}),))])
    tools = [
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    async with make(sim, PLUS, config=MANUAL, tools=tools) as s:
        s.on_tool_call(handle)
        reply = await s.ask(text="What time is it?", timeout=15)
    assert calls == ["get_time"] and "noon" in reply.text


@pytest.mark.timeout(30)
async def test_handler_errors_reach_async_on_error_and_the_session_goes_on(
    sim: Simulator,
) -> None:
    errors: list[BaseException] = []

    async def broken(ev: Any) -> None:
        raise RuntimeError("handler bug")

    async def record(exc: BaseException) -> None:
        errors.append(exc)

    async with make(sim, config=MANUAL) as s:
        s.on("response.created", broken)
        s.on_error(record)
        reply = await s.ask(audio=speech(), timeout=10)
        sim.last.inject_error("scripted problem", type="invalid_request_error", code="bad_thing")
        for _ in range(300):
            if len(errors) >= 2:
                break
            await asyncio.sleep(0.01)
    assert reply.status == "completed"
    assert isinstance(errors[0], RuntimeError)
    assert any(isinstance(e, ServerError) and "scripted problem" in str(e) for e in errors)


@pytest.mark.timeout(20)
async def test_on_close_forms_off_and_wait(sim: Simulator) -> None:
    got: list[Any] = []
    removed: list[Any] = []

    def three(code: int | None, reason: str, by_server: bool) -> None:
        got.append((code, reason, by_server))

    s = make(sim)
    s.on_close(three)
    s.on_close(removed.append)
    assert s.off(removed.append) == 1
    await s.connect()
    sim.last.close(1000, "done here")
    await s.wait(10)
    await s.close()
    assert got == [(1000, "done here", True)] and removed == []


@pytest.mark.timeout(20)
async def test_failed_connect_raises_and_leaves_no_thread(sim: Simulator) -> None:
    s = AsyncSession(FLASH, api_key="sk-wrong", url=sim.url, close_timeout=2.0)
    with pytest.raises(AuthenticationError):
        await s.connect()
    assert s.closed
    assert [t for t in asyncio.all_tasks() if t.get_name() == "dashscope_rt-async-handlers"] == []
    assert await no_sdk_threads() == set()


# --- the methods Session has too ---------------------------------------------------------


class RecordingPlayer:
    """A PlayerLike that keeps what it is given."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.playing_response_id: str | None = None

    def write(self, pcm16: Any, *, response_id: str | None = None) -> None:
        self.written.append(bytes(pcm16))
        self.playing_response_id = response_id

    def flush(self) -> None: ...

    def clear(self) -> float:
        return 0.0

    def played_ms_of(self, response_id: str | None) -> float:
        return 0.0


@pytest.mark.timeout(30)
async def test_attach_player_plays_every_reply(sim: Simulator) -> None:
    player = RecordingPlayer()
    async with make(sim, config=MANUAL) as s:
        s.attach_player(player)
        reply = await s.ask(audio=speech(), timeout=10)
    assert reply.audio and b"".join(player.written) == reply.audio


@pytest.mark.timeout(30)
async def test_report_interruption_marks_the_reply(sim: Simulator) -> None:
    cut = asyncio.Event()
    async with make(sim, config=MANUAL) as s:
        s.on(ReplyInterrupted, lambda notice: cut.set())
        # On the loop, this may run before or after the reply ended: both are recorded.
        s.on_audio_delta(lambda ev: s.report_interruption(200.0))
        await s.ask(audio=speech(), timeout=10)
        await asyncio.wait_for(cut.wait(), 10)
        reply, history = s.last_reply, s.history
    assert reply is not None and reply.interrupted and reply.played_ms == pytest.approx(200.0)
    assert reply.heard_transcript is not None and len(reply.heard_transcript) < len(reply.text)
    assert history[-1].interrupted


@pytest.mark.timeout(30)
async def test_stream_audio_gets_the_reply_of_the_turn(sim: Simulator) -> None:
    chunks: list[float] = []
    async with make(sim) as s:
        reply = await s.stream_audio(
            speech("what a lovely day it is"),
            sample_rate=16000,
            speed=0,
            on_chunk=lambda chunk, sent: chunks.append(sent),
        )
    assert reply.text and reply.audio and chunks and chunks[-1] > 1.0
    assert "input_audio_buffer.clear" not in sim.last.received_types()


@pytest.mark.timeout(30)
async def test_cancelling_stream_audio_drops_the_half_sent_turn(sim: Simulator) -> None:
    async with make(sim) as s:
        task = asyncio.create_task(s.stream_audio(silence(20_000), sample_rate=16000, speed=1.0))
        assert await asyncio.to_thread(
            sim.wait_for, lambda: "input_audio_buffer.append" in sim.last.received_types(), 5
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(
            sim.wait_for, lambda: "input_audio_buffer.clear" in sim.last.received_types(), 5
        )
        appended = sim.last.received_types().count("input_audio_buffer.append")
        await asyncio.sleep(0.4)  # a stream still running would append 100 ms chunks
        assert sim.last.received_types().count("input_audio_buffer.append") == appended
    assert await no_sdk_threads() == set()


async def test_off_removes_every_kind_of_handler(sim: Simulator) -> None:
    s = make(sim)

    def on_call(call: Any) -> str:
        return "done"

    async def on_call_async(call: Any) -> str:
        return "done"

    s.on_tool_call(on_call)
    assert s.off(on_call) == 1  # a plain tool handler was registered but not forgotten before
    s.on_tool_call(on_call_async)
    s.on_error(print)
    s.on_audio_delta(print)
    assert s.off(on_call_async) == 1 and s.off(print) == 2 and s.off() == 0
    with pytest.raises(InvalidType):
        s.off(print, print)
    s.session.close()
