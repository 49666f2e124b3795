"""record_to=: WAVs both ways and a JSONL event log, which the simulator can replay."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path

import pytest

from dashscope_rt.config import SessionConfig
from dashscope_rt.events import SessionExpiring
from dashscope_rt.recording import LogReader
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator, synthesize

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test-rec-5ecret"


@pytest.mark.timeout(30)
def test_recording_and_replay(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    speech = synthesize("record this turn please", 48000)
    with Simulator(api_key=KEY) as sim:
        s = Session(
            FLASH,
            api_key=KEY,
            url=sim.url,
            config=SessionConfig(turn_detection=None),
            record_to=log_dir,
        )
        with s:
            reply = s.ask(audio=speech, sample_rate=48000, timeout=10)
        sent_audio = b"".join(
            base64.b64decode(e["audio"])
            for e in sim.last.received_events("input_audio_buffer.append")
        )
    lines = (log_dir / "events.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["model"] == FLASH and header["input_rate"] == 16000
    entries = [json.loads(x) for x in lines[1:]]
    assert {e["dir"] for e in entries} == {"send", "recv"}
    assert all(isinstance(e["t"], float) and e["t"] >= 0 for e in entries)
    first_send = next(e for e in entries if e["dir"] == "send")
    assert first_send["event"]["type"] == "session.update"
    appends = [e for e in entries if e["event"]["type"] == "input_audio_buffer.append"]
    assert all("audio_ref" in e["event"]["audio"] for e in appends)
    with wave.open(str(log_dir / "input.wav")) as w:
        assert w.getframerate() == 16000
        assert w.readframes(w.getnframes()) == sent_audio  # after resampling, as sent
    with wave.open(str(log_dir / "output.wav")) as w:
        assert w.getframerate() == 24000 and w.readframes(w.getnframes()) == reply.audio
    text = (log_dir / "events.jsonl").read_text()
    assert "5ecret" not in text
    assert len(LogReader(log_dir).entries()) == len(entries)

    # The simulator replays the log to a new session: the same reply comes back.
    with Simulator(api_key=KEY, replay=log_dir) as sim2:
        s2 = Session(FLASH, api_key=KEY, url=sim2.url, config=SessionConfig(turn_detection=None))
        with s2:
            again = s2.ask(audio=speech, sample_rate=48000, timeout=10)
    assert again.text == reply.text and again.audio == reply.audio


@pytest.mark.timeout(20)
def test_session_expiring_warning() -> None:
    got: list[SessionExpiring] = []
    with Simulator(api_key=KEY) as sim:
        # warn 120 min ahead = at once; the check runs when the line is quiet
        s = Session(FLASH, api_key=KEY, url=sim.url, ping_interval=0.05, expiry_warning=7200)
        s.on(SessionExpiring, got.append)
        with s:
            sim.wait_for(lambda: got, 5)
    assert 7100 < got[0].remaining <= 7200
