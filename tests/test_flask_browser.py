"""The Flask sample in a real browser: headless Chromium records from a fake microphone (a WAV
file), streams through Flask to the simulator, and the page shows and plays the reply.

Chromium is driven through its DevTools protocol over a WebSocket (websocket-client); no
Selenium. Skipped when Chromium is not installed (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask_sock")
pytest.importorskip("websockets")

import websocket
from werkzeug.serving import make_server

from dashscope_rt.audio import write_wav
from dashscope_rt.testing import Simulator, silence, synthesize
from samples.flask_app.app import create_app

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)"
)

QUESTION = "What is the weather like in Hangzhou today?"


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator() as sim:
        sim.script_transcripts([QUESTION])
        sim.script_replies(["It is sunny in Hangzhou."])
        yield sim


@pytest.fixture
def flask_server(simulator: Simulator) -> Iterator[str]:
    app = create_app(url=simulator.url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="flask-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


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


@pytest.mark.timeout(90)
def test_browser_microphone_to_reply(tmp_path: Path, flask_server: str) -> None:
    # The fake microphone: speech, then silence so the server VAD ends the turn.
    wav = tmp_path / "mic.wav"
    write_wav(wav, synthesize(QUESTION, 48000) + silence(4000, 48000), 48000)
    proc, port = _start_chromium(tmp_path, f"{flask_server}/?autostart=1", wav)
    devtools = None
    try:
        devtools = DevTools(_page_ws_url(port))
        state: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = devtools.evaluate("JSON.stringify(window.appState || null)")
            state = (json.loads(raw) if raw else None) or {}
            played = state.get("chunksPlayed", 0)
            if state and state["turns"] >= 1 and played >= max(1, state["chunksReceived"]):
                break
            time.sleep(0.25)
        page_text = devtools.evaluate("document.getElementById('transcript').innerText")
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert not state.get("errors"), state
    assert state.get("turns", 0) >= 1, state
    assert QUESTION in state["user"], state
    assert "It is sunny in Hangzhou." in state["assistant"], state
    assert "It is sunny in Hangzhou." in page_text
    # Every chunk of the reply was played through WebAudio (none flushed by a barge-in).
    assert state["chunksPlayed"] == state["chunksReceived"] >= 1, state
    assert state["samplesPlayed"] > 0, state
