"""The Flask sample in a real browser: headless Chromium records from a fake microphone (a WAV
file), streams through Flask to the simulator, and the page shows and plays the reply.

Skipped when Chromium is not installed (CI installs Debian's ``chromium``); see ``browser.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("flask_sock")
pytest.importorskip("websockets")

from browser import (
    assert_the_reply_was_heard,
    needs_chromium,
    scripted_simulator,
    talk_through_the_page,
)
from werkzeug.serving import make_server

from dashscope_rt.testing import Simulator
from samples.flask_app.app import create_app

pytestmark = needs_chromium


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with scripted_simulator() as sim:
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


@pytest.mark.timeout(90)
def test_browser_microphone_to_reply(tmp_path: Path, flask_server: str) -> None:
    state, page_text = talk_through_the_page(tmp_path, flask_server)
    assert_the_reply_was_heard(state, page_text)
