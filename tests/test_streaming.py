"""``stream_audio`` / ``Session.stream_audio``: paced streaming of a recording as one spoken turn,
against the simulator (VAD and manual mode, tools, no speech, an interrupted turn), and the
effective VAD defaults that ``help(ServerVAD)`` shows."""

from __future__ import annotations

import base64
import pydoc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("websockets")

from dashscope_rt import InvalidInput, NoSpeechHeard, ServerVAD, Session, SessionConfig
from dashscope_rt.audio import write_wav
from dashscope_rt.config import VAD_DEFAULTS
from dashscope_rt.streaming import stream_audio
from dashscope_rt.testing import Simulator, silence, synthesize
from samples import function_calling

QUESTION = "What is the weather like in Hangzhou today?"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def _session(sim: Simulator, model: str = "qwen3-omni-flash-realtime", **kw: Any) -> Session:
    return Session(model, url=sim.url, api_key=sim.api_key, **kw)


def _appended_seconds(sim: Simulator) -> float:
    """Audio the simulator received, counted once it has read everything (the socket closed)."""
    assert sim.last.closed.wait(timeout=5)
    return sum(
        len(base64.b64decode(e["audio"])) / 2 / 16000
        for e in sim.last.received_events("input_audio_buffer.append")
    )


@pytest.mark.timeout(30)
def test_paced_wav_file_gets_its_reply(sim: Simulator, tmp_path: Path) -> None:
    sim.script_transcripts([QUESTION])
    path = tmp_path / "q.wav"
    write_wav(path, synthesize(QUESTION, 44100), 44100)
    levels: list[float] = []
    with _session(sim) as session:
        reply = session.stream_audio(
            path, speed=8, on_chunk=lambda chunk, sent: levels.append(sent)
        )
    assert reply.status == "completed"
    assert reply.transcript == f"You said: {QUESTION}"
    assert reply.user_transcript == QUESTION
    seconds = len(synthesize(QUESTION, 44100)) / 2 / 44100
    assert levels[-1] == pytest.approx(seconds, abs=0.01)
    assert levels == sorted(levels) and len(levels) == int(np.ceil(seconds * 10))
    # The whole question and then live silence until the server's VAD ended the turn.
    assert _appended_seconds(sim) > seconds + 0.25


@pytest.mark.timeout(30)
def test_unpaced_array_and_tuned_vad(sim: Simulator) -> None:
    sim.script_transcripts([QUESTION])
    pcm = np.frombuffer(synthesize(QUESTION, 16000), "<i2").astype(np.float32) / 32768
    config = SessionConfig(turn_detection=ServerVAD(silence_duration_ms=300))
    with _session(sim, config=config) as session:
        reply = stream_audio(session, pcm, sample_rate=16000, speed=0)
    assert reply.transcript == f"You said: {QUESTION}"
    # Unpaced: the question plus silence_duration_ms + 400 ms of silence, sent at once.
    assert _appended_seconds(sim) == pytest.approx(len(pcm) / 16000 + 0.7, abs=0.11)


@pytest.mark.timeout(30)
def test_manual_mode_commits_and_asks(sim: Simulator) -> None:
    sim.script_transcripts([QUESTION])
    with _session(sim, config=SessionConfig(turn_detection=None)) as session:
        reply = session.stream_audio(synthesize(QUESTION, 16000), speed=0)
    assert reply.transcript == f"You said: {QUESTION}"
    types = sim.last.received_types()
    assert types.index("input_audio_buffer.commit") < types.index("response.create")


@pytest.mark.timeout(30)
def test_tool_calls_are_run_and_the_final_reply_returned(sim: Simulator) -> None:
    words = "What's the weather in Paris, and what time is it in Tokyo?"
    sim.script_transcripts([words])
    tools = [function_calling.get_weather, function_calling.get_time]
    with _session(sim, "qwen3.5-omni-flash-realtime", tools=tools) as session:
        reply = session.stream_audio(synthesize(words, 16000), speed=0)
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert reply.text.startswith("Here is what I found: Paris: light rain")


@pytest.mark.timeout(30)
def test_no_speech_is_reported(sim: Simulator) -> None:
    with _session(sim) as session, pytest.raises(NoSpeechHeard, match="heard no speech"):
        session.stream_audio(silence(500, 16000), speed=0, no_speech_timeout=1.0)


@pytest.mark.timeout(40)
def test_interrupted_turn_is_dropped_on_the_server(sim: Simulator) -> None:
    """Ctrl+C in the middle of a turn: the half-sent audio must not join the next turn."""
    long_pcm = synthesize("Let me tell you a long story about a cat. " * 3, 16000)
    short_pcm = synthesize("Hello there", 16000)

    def interrupt(chunk: Any, sent: float) -> None:
        if sent >= 1.5:
            raise KeyboardInterrupt

    with _session(sim) as session:
        with pytest.raises(KeyboardInterrupt):
            session.stream_audio(long_pcm, speed=0, on_chunk=interrupt)
        assert sim.wait_for(lambda: "input_audio_buffer.clear" in sim.last.received_types(), 5)
        reply = session.stream_audio(short_pcm, speed=0)
    heard = re.fullmatch(r"\[([\d.]+) s of speech\]", reply.user_transcript or "")
    assert heard is not None, reply.user_transcript
    # The second turn alone (its speech plus at most the VAD's padding), not 1.5 s more.
    assert float(heard.group(1)) < len(short_pcm) / 2 / 16000 + 1.0


def test_bad_speed_and_audio_are_refused_before_sending(sim: Simulator) -> None:
    with _session(sim) as session:
        for speed in (-1, float("nan"), float("inf")):
            with pytest.raises(InvalidInput, match="speed must be a number >= 0"):
                session.stream_audio(b"\x00\x00" * 160, speed=speed)
        with pytest.raises(InvalidInput, match="audio must be"):
            session.stream_audio(12345)
    assert "input_audio_buffer.append" not in sim.last.received_types()


def test_help_shows_the_effective_vad_defaults() -> None:
    text = pydoc.render_doc(ServerVAD, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    # One line up to Python 3.12, one parameter a line from 3.13 on.
    signature = text[text.index("ServerVAD(") : text.index(") -> None")]
    assert "silence_duration_ms: 'int | UnsetType' = 800" in signature
    assert "threshold: 'float | UnsetType' = 0.5" in signature
    assert "UNSET" not in signature
    assert re.search(r"silence_duration_ms\s+800", text)
    assert ServerVAD().effective("silence_duration_ms") == 800
    assert ServerVAD(silence_duration_ms=500).effective("silence_duration_ms") == 500
    assert ServerVAD().silence_duration_ms is not VAD_DEFAULTS["silence_duration_ms"]  # not sent
    assert ServerVAD().to_wire() == {"type": "server_vad"}
