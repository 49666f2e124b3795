"""The SDK against the alternatives, not one guess (#10 item 3).

Every scenario that drives a turn (VAD, manual, text, tools, cancel, a refused request, a bad
voice, finish) runs over the ``Behaviour`` variants that change the SDK's control flow: error
ids present/empty/absent, the voice refused at update or at response (closing or not),
``session.finish`` answered/ignored/refused/closed, ``response.done`` after a cancel or not, one
or more late audio deltas, a partial or full session echo, server or client item ids, padded
arguments. A combination either passes or fails fast with a clear error: each test has a
timeout below the SDK's own, so a hang fails it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import ConnectionClosed, ServerError, VoiceNotSupported
from dashscope_rt.reply import Reply
from dashscope_rt.session import Session
from dashscope_rt.testing import (
    INTERNAL_ERROR_CLOSE,
    Behaviour,
    Faults,
    ScriptedReply,
    ScriptedToolCall,
    Simulator,
    synthesize,
)

FLASH = "qwen3-omni-flash-realtime"
Q35 = "qwen3.5-omni-flash-realtime"
KEY = "sk-test-matrix"
MANUAL = SessionConfig(turn_detection=None)

VARIANTS = {
    # What captured traffic shows (the simulator's defaults).
    "captured": Behaviour(),
    # What the documents say, where traffic disagrees.
    "documented": Behaviour(
        error_ids="present",
        session_echo="full",
        voice_check="update",
        finish="finished_close",
        chunk_ms=100,
        audio_after_cancel=0,
        pad_function_arguments=True,
        keep_client_item_id=True,
    ),
    # Still-unknown points, each set the other way.
    "absent-ids": Behaviour(
        error_ids="absent", finish="ignore", cancel_sends_response_done=False, chunk_ms=40
    ),
    "silent-failures": Behaviour(
        finish="refuse", close_on_bad_voice=False, audio_after_cancel=3, session_echo="full"
    ),
    "closing": Behaviour(finish="close", bad_voice_close_code=1011, error_ids="present"),
}

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.usefixtures("no_thread_leak"),
    pytest.mark.parametrize("variant", list(VARIANTS)),
]


@pytest.fixture
def sim(variant: str) -> Iterator[Simulator]:
    with Simulator(api_key=KEY, behaviour=attrs.evolve(VARIANTS[variant])) as s:
        yield s


def session(sim: Simulator, model: str = FLASH, **kw: Any) -> Session:
    return Session(model, api_key=KEY, url=sim.url, close_timeout=2.0, **kw)


def speech(text: str = "hello there how are you") -> bytes:
    return synthesize(text, 16000)


def _spoken(reply: Reply) -> None:
    assert reply.status == "completed", reply
    assert reply.audio and reply.transcript


def test_vad_turn(sim: Simulator) -> None:
    sim.script_transcripts(["hello there how are you"])
    with session(sim) as s:
        reply = s.ask(audio=speech(), sample_rate=16000, timeout=20)
    _spoken(reply)
    assert reply.user_transcript == "hello there how are you"


def test_manual_turns_and_the_config_the_sdk_keeps(sim: Simulator) -> None:
    with session(sim, config=MANUAL) as s:
        # Whatever the echo holds, the session knows it is in manual mode from what it sent.
        assert s.requested_config.turn_detection is None
        for _ in range(2):
            _spoken(s.ask(audio=speech(), sample_rate=16000, timeout=20))


def test_text_turns_match_items_whatever_their_ids(sim: Simulator) -> None:
    with session(sim, Q35, config=MANUAL) as s:
        first = s.ask(text="Remember the word amber.", timeout=20)
        second = s.ask(text="Which word?", timeout=20)
        history = s.history
    _spoken(first)
    _spoken(second)
    users = [h.text for h in history if h.role == "user"]
    assert users == ["Remember the word amber.", "Which word?"]


def test_parallel_tool_calls(sim: Simulator) -> None:
    calls = (ScriptedToolCall("tint", {"x": 1}), ScriptedToolCall("form", {}))
    sim.script_replies([ScriptedReply(tool_calls=calls), "Amber and square."])

    def tint(x: int) -> str:
        """The tint.

        Args:
            x: any number
        """
        return "amber"

    def form() -> str:
        """The form."""
        return "square"

    with session(sim, Q35, config=MANUAL, tools=[tint, form]) as s:
        reply = s.ask(text="tint and form?", timeout=20)
    assert [c.name for c in reply.tool_calls] == ["tint", "form"]
    assert [c.parsed_arguments() for c in reply.tool_calls] == [{"x": 1}, {}]
    assert reply.transcript == "Amber and square."


def test_cancel_ends_the_turn_and_the_next_one_works(sim: Simulator) -> None:
    sim.behaviour.speed = 4.0
    sim.script_replies(["and then " * 40, "Short."])
    first_audio = threading.Event()
    ended: list[Reply] = []
    done = threading.Event()
    with session(sim, config=MANUAL) as s:
        s.on_audio_delta(lambda _: first_audio.set())

        @s.on_response_done
        def finished(reply: Reply) -> None:
            ended.append(reply)
            done.set()

        s.append_audio(speech())
        s.commit()
        s.create_response()
        assert first_audio.wait(10)
        s.cancel_response()
        assert done.wait(10)  # response.done, or the SDK's own end of a cancelled reply
        assert ended[0].status == "cancelled"
        late = len(ended[0].audio)
        _spoken(s.ask(audio=speech(), sample_rate=16000, timeout=20))
    assert 0 < late < 2 * 24000 * 40  # audio stopped well before the whole long answer


def test_a_refused_request_raises_and_the_session_goes_on(sim: Simulator) -> None:
    with session(sim, config=MANUAL) as s:
        _spoken(s.ask(audio=speech(), sample_rate=16000, timeout=20))
        # The service keeps the voice once it has spoken: the change is refused.
        with pytest.raises(ServerError, match="voice") as info:
            s.update(SessionConfig(voice="Ethan"), timeout=10)
        assert not info.value.fatal and s.requested_config.voice != "Ethan"
        _spoken(s.ask(audio=speech(), sample_rate=16000, timeout=20))


def test_a_bad_voice_is_a_clear_error_wherever_it_is_refused(sim: Simulator) -> None:
    config = SessionConfig(turn_detection=None, extra={"voice": "Nobody"})
    s = session(sim, config=config)
    with pytest.raises(VoiceNotSupported) as info:
        s.connect()
        s.ask(audio=speech(), sample_rate=16000, timeout=20)
    s.close()
    err = info.value
    assert err.voice == "Nobody" and "Cherry" in err.voices and s.closed
    assert isinstance(s.close_info.error if s.close_info else err, VoiceNotSupported)


def test_end_returns_whatever_answers_the_finish(sim: Simulator) -> None:
    with session(sim, config=MANUAL) as s:
        _spoken(s.ask(audio=speech(), sample_rate=16000, timeout=20))
        s.end(timeout=3.0)  # bounded by its timeout even when nothing answers
        assert s.closed
    rec = sim.last
    sim.wait_for(lambda: rec.closed.is_set())
    assert "session.finish" in rec.received_types()


def test_an_internal_error_close_is_a_connection_closed_1011(sim: Simulator) -> None:
    sim.faults = Faults(close_on={"response.create": INTERNAL_ERROR_CLOSE})
    with session(sim, config=MANUAL) as s:
        with pytest.raises(ConnectionClosed) as info:
            s.ask(audio=speech(), sample_rate=16000, timeout=20)
        assert (info.value.code, info.value.reason) == INTERNAL_ERROR_CLOSE
    sim.faults = Faults(close_after_created=INTERNAL_ERROR_CLOSE)
    with pytest.raises(ConnectionClosed) as at_start:
        session(sim).connect()
    assert at_start.value.code == 1011
