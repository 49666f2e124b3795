"""Headless Chromium driving the voice-chat page of the web samples (Flask, FastAPI).

Chromium records from a fake microphone (a WAV file) and is driven through its DevTools
protocol over a WebSocket (websocket-client); no Selenium. ``CHROMIUM`` is None when it is not
installed (CI installs Debian's ``chromium``): the tests then skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket

from dashscope_rt.audio import write_wav
from dashscope_rt.testing import Simulator, silence, synthesize

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)"
)

QUESTION = "What is the weather like in Hangzhou today?"
ANSWER = "It is sunny in Hangzhou."


def scripted_simulator() -> Simulator:
    """A simulator that hears ``QUESTION`` and answers ``ANSWER`` (start it with ``with``)."""
    sim = Simulator()
    sim.script_transcripts([QUESTION])
    sim.script_replies([ANSWER])
    return sim


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                result: dict[str, Any] = msg["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


def _start_chromium(tmp_path: Path, url: str, wav: Path) -> tuple[subprocess.Popen[bytes], int]:
    profile = tmp_path / "profile"
    assert CHROMIUM is not None
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--mute-audio",
            f"--user-data-dir={profile}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "chromium.log", "wb"),  # noqa: SIM115
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        time.sleep(0.1)
    proc.kill()
    log = (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
    pytest.fail(f"Chromium did not open its DevTools port:\n{log}")


def _page_ws_url(port: int) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page" and "webSocketDebuggerUrl" in t]
        if pages:
            return str(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.1)
    pytest.fail("no page target in Chromium")


def talk_through_the_page(tmp_path: Path, base_url: str) -> tuple[dict[str, Any], str]:
    """Open the page, speak ``QUESTION`` into the fake microphone and wait for the reply to be
    played; return the page's ``appState`` and the transcript text it shows."""
    wav = tmp_path / "mic.wav"  # speech, then silence so the server VAD ends the turn
    write_wav(wav, synthesize(QUESTION, 48000) + silence(4000, 48000), 48000)
    proc, port = _start_chromium(tmp_path, f"{base_url}/?autostart=1", wav)
    devtools = None
    state: dict[str, Any] = {}
    try:
        devtools = DevTools(_page_ws_url(port))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = devtools.evaluate("JSON.stringify(window.appState || null)")
            state = (json.loads(raw) if raw else None) or {}
            played = state.get("chunksPlayed", 0)
            if state and state["turns"] >= 1 and played >= max(1, state["chunksReceived"]):
                break
            time.sleep(0.25)
        page_text = str(devtools.evaluate("document.getElementById('transcript').innerText"))
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return state, page_text


def relay_one_turn(ws_url: str, *, read_after_stop: bool = False) -> tuple[list[Any], bytes, Any]:
    """Speak the page's wire format without a browser: start, ``QUESTION`` as 48 kHz PCM in
    100 ms frames, read until ``done``, then stop. Returns the JSON messages, the reply audio
    and (with ``read_after_stop``) the next message after the stop."""
    ws = websocket.create_connection(ws_url, timeout=10)
    events: list[Any] = []
    audio = bytearray()
    after = None
    try:
        ws.send(json.dumps({"type": "start", "sampleRate": 48000}))
        assert json.loads(ws.recv()) == {"type": "ready", "inputRate": 16000, "outputRate": 24000}
        pcm = synthesize(QUESTION, 48000) + silence(1500, 48000)
        for i in range(0, len(pcm), 9600):  # 100 ms at 48 kHz, as the page sends
            ws.send_binary(pcm[i : i + 9600])
        while not events or events[-1]["type"] != "done":
            msg = ws.recv()
            if isinstance(msg, bytes):
                audio += msg
            else:
                events.append(json.loads(msg))
        ws.send(json.dumps({"type": "stop"}))
        if read_after_stop:
            after = json.loads(ws.recv())
    finally:
        ws.close()
    return events, bytes(audio), after


def assert_the_reply_was_heard(state: dict[str, Any], page_text: str) -> None:
    """What the page must show after one spoken turn."""
    assert not state.get("errors"), state
    assert state.get("turns", 0) >= 1, state
    assert QUESTION in state["user"], state
    assert ANSWER in state["assistant"], state
    assert ANSWER in page_text
    # Every chunk of the reply was played through WebAudio (none flushed by a barge-in).
    assert state["chunksPlayed"] == state["chunksReceived"] >= 1, state
    assert state["samplesPlayed"] > 0, state
