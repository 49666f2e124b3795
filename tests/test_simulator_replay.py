"""Replay: record a conversation into a session log, then serve it back to a client."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websocket

from dashscope_rt.recording import LogReader, LogWriter
from dashscope_rt.testing import ReplayEngine, Simulator, silence, synthesize

pytestmark = pytest.mark.timeout(30)


class RecordingClient:
    """A plain websocket-client conversation that logs like the Session's recording option."""

    def __init__(self, url: str, key: str, writer: LogWriter | None) -> None:
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: Bearer {key}"], timeout=10
        )
        self.writer = writer
        self.received: list[dict[str, Any]] = []

    def send(self, etype: str, **fields: Any) -> None:
        ev = {"type": etype, **fields}
        if self.writer is not None:
            audio = base64.b64decode(fields["audio"]) if "audio" in fields else None
            self.writer.record_sent(ev, audio=audio)
        self.ws.send(json.dumps(ev))

    def recv_until(self, etype: str) -> list[dict[str, Any]]:
        out = []
        while True:
            ev = json.loads(self.ws.recv())
            if self.writer is not None:
                audio = (
                    base64.b64decode(ev["delta"]) if ev["type"] == "response.audio.delta" else None
                )
                self.writer.record_received(ev, audio=audio)
            self.received.append(ev)
            out.append(ev)
            if ev["type"] == etype:
                return out


def conversation(client: RecordingClient) -> None:
    client.recv_until("session.created")
    client.send(
        "session.update", session={"voice": "Ethan", "turn_detection": {"silence_duration_ms": 400}}
    )
    client.recv_until("session.updated")
    pcm = silence(300) + synthesize("what is the time", 16000) + silence(600)
    for i in range(0, len(pcm), 3200):
        client.send("input_audio_buffer.append", audio=base64.b64encode(pcm[i : i + 3200]).decode())
    client.recv_until("response.done")
    client.send("response.create")
    client.recv_until("response.done")


def run(
    sim: Simulator, writer: LogWriter | None, script: Callable[[RecordingClient], None]
) -> RecordingClient:
    client = RecordingClient(sim.url_for("qwen3-omni-flash-realtime"), "sk-test", writer)
    try:
        script(client)
    finally:
        client.ws.close()
    return client


def test_record_then_replay(tmp_path: Path) -> None:
    with Simulator() as sim:
        sim.script_transcripts(["what is the time"])
        with LogWriter(tmp_path, "qwen3-omni-flash-realtime") as writer:
            original = run(sim, writer, conversation)
    before = set(threading.enumerate())
    with Simulator(replay=tmp_path) as replay:
        replayed = run(replay, None, conversation)
        conn = replay.wait_for(lambda: replay.last if replay.last.closed.is_set() else None)
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert [e["type"] for e in replayed.received] == [e["type"] for e in original.received]
    assert replayed.received == original.received  # ids, text and audio all restored
    assert conn.received_types().count("input_audio_buffer.append") > 10


def test_replay_waits_for_the_matching_client_event(tmp_path: Path) -> None:
    with Simulator() as sim, LogWriter(tmp_path, "qwen3-omni-flash-realtime") as writer:

        def script(c: RecordingClient) -> None:
            c.recv_until("session.created")
            c.send("session.update", session={"turn_detection": None})
            c.recv_until("session.updated")
            c.send("response.cancel")
            c.recv_until("error")

        run(sim, writer, script)
    engine = ReplayEngine(tmp_path, now=0.0)
    assert [o.event["type"] for o in engine.poll(0.0) if o.event] == ["session.created"]
    engine.receive(json.dumps({"type": "response.cancel"}), 1.0)
    assert engine.poll(1.0) == []  # session.update comes first in the recording
    engine.receive(json.dumps({"type": "session.update", "session": {}}), 2.0)
    assert [o.event["type"] for o in engine.poll(2.0) if o.event] == ["session.updated", "error"]
    assert engine.done
    assert LogReader(tmp_path).header.model == "qwen3-omni-flash-realtime"
