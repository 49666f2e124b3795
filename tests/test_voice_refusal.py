"""A voice the service refuses at the first response (docs/protocol.md §9.2), in every shape.

The real service accepts any voice in ``session.update`` and refuses it when it should first
speak: an ``error`` event (empty or ``COMMON_ERROR`` code, no event id), with or without a
close, or only a close reason. ``ask()``, ``update()``, ``wait()`` and the CLI must report it as
:class:`VoiceNotSupported` naming the voice and the voices known to work, and never hang.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    ConnectionClosed,
    ServerError,
    SessionClosed,
    UnsupportedByModel,
    VoiceNotSupported,
)
from dashscope_rt.models import get_model
from dashscope_rt.session import Session
from dashscope_rt.testing import synthesize

websockets_sync = pytest.importorskip("websockets.sync.server")

Q38 = "qwen3.8-omni-flash-realtime"
KEY = "sk-test-voice"
REFUSAL = "<400> InternalError.Algo.InvalidParameter: Voice '{}' is not supported."
MANUAL = SessionConfig(turn_detection=None)

pytestmark = pytest.mark.usefixtures("no_thread_leak")


class RefusingServer:
    """A 3.8-like server that accepts any voice and refuses it at the first response.

    ``shape``: ``error_close`` (error event, then close), ``error_open`` (error event, then
    nothing: later frames get no answer), ``common_error`` (as error_close, code COMMON_ERROR),
    ``close_only`` (a close frame whose reason is the refusal) or ``update`` (the error answers
    ``session.update``, with its event id, then close). VAD turns "respond" after 10 appends.
    """

    def __init__(self, shape: str, close_code: int = 1000) -> None:
        self.shape = shape
        self.close_code = close_code
        self.received: list[dict[str, Any]] = []
        self._server = websockets_sync.serve(self._handle, "127.0.0.1", 0, close_timeout=1)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/api-ws/v1/realtime"

    def __enter__(self) -> RefusingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def sent_voice(self) -> str | None:
        updates = [e for e in self.received if e.get("type") == "session.update"]
        return updates[-1]["session"].get("voice") if updates else None

    def _handle(self, conn: Any) -> None:
        session: dict[str, Any] = {"object": "realtime.session", "model": Q38, "voice": "Chelsie"}
        created = {"event_id": "event_1", "type": "session.created", "session": session}
        conn.send(json.dumps(created))
        voice, appends, refused = "Chelsie", 0, False
        try:
            for text in conn:
                event = json.loads(text)
                self.received.append(event)
                kind = event.get("type")
                if refused:
                    continue  # the connection does not recover: nothing is answered any more
                if kind == "session.update":
                    voice = event["session"].get("voice", voice)
                    if self.shape == "update":
                        self._refuse(conn, voice, event_id=event.get("event_id"))
                        return
                    echo = {**session, **event["session"], "voice": voice, "id": "sess_1"}
                    conn.send(json.dumps({"type": "session.updated", "session": echo}))
                elif kind == "input_audio_buffer.append":
                    appends += 1
                vad_turn = kind == "input_audio_buffer.append" and appends == 10
                if kind == "response.create" or vad_turn:
                    refused = True
                    if self._refuse(conn, voice):
                        return
        except Exception:  # the client went away
            return

    def _refuse(self, conn: Any, voice: str, event_id: str | None = None) -> bool:
        """Send the refusal in this server's shape; True when the connection was closed."""
        message = REFUSAL.format(voice)
        if self.shape == "close_only":
            conn.close(self.close_code, message)
            return True
        error = {"type": "invalid_request_error", "code": "", "message": message, "param": ""}
        if self.shape == "common_error":
            error["code"] = "COMMON_ERROR"
        if event_id is not None:
            error["event_id"] = event_id
        conn.send(json.dumps({"event_id": "", "type": "error", "error": error}))
        if self.shape == "error_open":
            return False
        conn.close(self.close_code)
        return True


@pytest.fixture(params=["error_close", "error_open", "common_error", "close_only"])
def server(request: pytest.FixtureRequest) -> Iterator[RefusingServer]:
    with RefusingServer(request.param) as srv:
        yield srv


def _session(srv: RefusingServer, voice: str | None = "Zephyr", **kw: Any) -> Session:
    """A 3.8 session on ``srv`` with ``voice`` (a name the SDK's table does not know)."""
    cfg = SessionConfig(voice=voice) if voice else SessionConfig()
    cfg = cfg.merge(kw.pop("config", SessionConfig()))
    return Session(Q38, api_key=KEY, url=srv.url, config=cfg, close_timeout=2.0, **kw)


def _check(err: VoiceNotSupported, voice: str = "Zephyr") -> None:
    assert err.voice == voice and err.model == Q38 and err.fatal
    assert "Tina" in err.voices and "Serena" in err.voices
    text = str(err)
    assert f"voice '{voice}' is not supported by {Q38}" in text
    assert "Tina" in text and "new session" in text


@pytest.mark.timeout(20)
def test_ask_reports_the_refused_voice_whatever_its_shape(server: RefusingServer) -> None:
    s = _session(server, config=MANUAL)
    reported: list[Exception] = []
    s.on_error(reported.append)
    with s:
        assert server.sent_voice() == "Zephyr"  # accepted and echoed at update time
        with pytest.raises(VoiceNotSupported) as info:
            s.ask(text="hello", timeout=60)  # a hang would fail the test's own timeout
        _check(info.value)
        with pytest.raises(VoiceNotSupported):
            s.wait(timeout=10)
        assert s.closed and s.close_info is not None and s.close_info.error is info.value
        with pytest.raises(SessionClosed, match="Zephyr") as after:
            s.update(SessionConfig(voice="Tina"))
        assert after.value.__cause__ is info.value
    if server.shape != "close_only":
        assert any(isinstance(e, VoiceNotSupported) for e in reported)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("close_code", [1000, 1011])
def test_ask_in_vad_mode_reports_the_refused_voice(close_code: int) -> None:
    with RefusingServer("error_close", close_code) as srv, _session(srv) as s:
        with pytest.raises(VoiceNotSupported) as info:
            s.ask(audio=synthesize("hello there", 16000), sample_rate=16000, timeout=60)
        _check(info.value)


@pytest.mark.timeout(20)
def test_a_close_with_the_refusal_is_not_redialled() -> None:
    from dashscope_rt import ReconnectPolicy

    policy = ReconnectPolicy(max_attempts=3)
    with RefusingServer("close_only", 1011) as srv:
        with _session(srv, config=MANUAL, reconnect=policy) as s, pytest.raises(VoiceNotSupported):
            s.ask(text="hello", timeout=60)
        assert len([e for e in srv.received if e.get("type") == "session.update"]) == 1


@pytest.mark.timeout(20)
def test_refusal_at_connect_and_at_update_time() -> None:
    with RefusingServer("update") as srv:
        with pytest.raises(VoiceNotSupported) as info:
            _session(srv).connect()
        _check(info.value)
        assert info.value.event_id is not None  # the refused update's id is kept


@pytest.mark.timeout(20)
def test_update_after_the_refusal_does_not_wait_for_an_echo_that_never_comes() -> None:
    # A VAD turn is refused and the server answers nothing after it; update() follows at once.
    with RefusingServer("error_open") as srv, _session(srv) as s:
        s.append_audio(b"\0\0" * 1600 * 10)  # ten 100 ms appends: the server's "turn"
        with pytest.raises((VoiceNotSupported, SessionClosed)) as info:
            s.update(SessionConfig(instructions="x"), timeout=60)
        err = info.value
        assert isinstance(err, VoiceNotSupported) or isinstance(err.__cause__, VoiceNotSupported)


def test_a_voice_known_to_be_refused_never_reaches_the_server() -> None:
    with pytest.raises(UnsupportedByModel, match="Chelsie"):
        Session(Q38, api_key=KEY, url="ws://127.0.0.1:9", config=SessionConfig(voice="Chelsie"))


@pytest.mark.timeout(20)
def test_a_model_that_needs_a_voice_always_sends_one() -> None:
    with RefusingServer("error_close") as srv, _session(srv, voice=None, config=MANUAL):
        assert srv.sent_voice() == get_model(Q38).default_voice == "Tina"


def test_other_errors_and_closes_are_not_voice_refusals() -> None:
    from dashscope_rt._voice_refusal import refused_voice, voice_refusal

    info = get_model(Q38)
    assert voice_refusal(ServerError("Conversation has none active response"), info) is None
    assert voice_refusal(ConnectionClosed(1011, "Internal service error: null"), info) is None
    assert voice_refusal(None, info) is None
    assert refused_voice('Voice "Theo Calm" is not supported') == "Theo Calm"
    assert refused_voice(REFUSAL.format("Cherry")) == "Cherry"
    flash_info = get_model("qwen3-omni-flash-realtime")
    flash = voice_refusal(ServerError(REFUSAL.format("Tina")), flash_info)
    assert flash is not None and flash.voices == flash_info.voices
    assert "choose one of: Cherry" in str(flash)


@pytest.mark.timeout(60)
def test_cli_chat_reports_the_refused_voice(tmp_path: Path) -> None:
    env = {"DASHSCOPE_API_KEY": KEY, "DASHSCOPE_RT_CONFIG_DIR": str(tmp_path)}
    with RefusingServer("error_close") as srv:
        args = ["chat", "--url", srv.url, "--model", Q38, "--voice", "Zephyr", "--text", "hi"]
        proc = subprocess.run(
            [sys.executable, "-m", "dashscope_rt", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=50,
            env={"PATH": "", "PYTHONIOENCODING": "utf-8", **env},
        )
    assert proc.returncode != 0
    assert "voice 'Zephyr' is not supported" in proc.stderr
    assert "Tina" in proc.stderr and "--voice" in proc.stderr
