"""The FastAPI sample in a real browser, like the Flask one: headless Chromium's fake microphone
streams through FastAPI (one ``AsyncSession`` per WebSocket, under uvicorn) to the simulator,
and the page shows and plays the reply. Skipped when Chromium is not installed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

import uvicorn
from browser import (
    assert_the_reply_was_heard,
    needs_chromium,
    scripted_simulator,
    talk_through_the_page,
)

from dashscope_rt.testing import Simulator
from samples.fastapi_app.app import create_app


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with scripted_simulator() as sim:
        yield sim


@pytest.fixture
def fastapi_server(simulator: Simulator) -> Iterator[str]:
    config = uvicorn.Config(
        create_app(url=simulator.url), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@needs_chromium
@pytest.mark.timeout(90)
def test_browser_microphone_to_reply(tmp_path: Path, fastapi_server: str) -> None:
    state, page_text = talk_through_the_page(tmp_path, fastapi_server)
    assert_the_reply_was_heard(state, page_text)


def test_page_and_assets(fastapi_server: str) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{fastapi_server}/", timeout=10) as r:
        page = r.read()
    assert b"Talk to Qwen-Omni" in page and b'src="/static/app.js"' in page
    for asset in ("app.js", "capture-worklet.js"):
        with urllib.request.urlopen(f"{fastapi_server}/static/{asset}", timeout=10) as r:
            assert r.status == 200 and r.read()


@pytest.mark.timeout(30)
def test_relay_over_a_real_websocket(
    no_thread_leak: None, simulator: Simulator, fastapi_server: str
) -> None:
    """Without a browser: the page's wire format, spoken by websocket-client."""
    from browser import ANSWER, QUESTION, relay_one_turn

    url = fastapi_server.replace("http", "ws") + "/ws"
    events, audio, closed = relay_one_turn(url, read_after_stop=True)
    assert events[0]["type"] == "speech_started"
    assert {"type": "user", "text": QUESTION} in events
    deltas = "".join(str(e["text"]) for e in events if e["type"] == "delta")
    assert deltas == ANSWER == events[-1]["text"]
    assert abs(len(audio) / 2 / 24000 - float(str(events[-1]["audioSeconds"]))) < 0.01
    assert closed == {"type": "closed", "code": 1000}  # on_close ran before the relay ended
    rec = simulator.last
    simulator.wait_for(lambda: rec.closed_by, 5)
    assert rec.closed_by == "client"
