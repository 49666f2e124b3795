"""Whether a server ``error`` ended the session is decided by what follows it, not by a timer.

The protocol has no fatal flag: an error is reported at once as recoverable, and it becomes the
cause of the session's end only when the server closes the socket right after it. Both orders
of events are driven over a real socket.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from raw_ws import accept_upgrade, close_frame, text_frame

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import ConnectionClosed, ServerError
from dashscope_rt.events import Closed
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test-error-order"
MANUAL = SessionConfig(turn_detection=None)

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def _scripted_server(after_update: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """Handshake and session setup, then ``after_update`` written in one go, then silence."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            accept_upgrade(conn)
            session = {"id": "sess_order", "turn_detection": None}
            conn.sendall(text_frame({"type": "session.created", "session": session}))
            try:
                conn.recv(65536)  # the session.update
                conn.sendall(
                    text_frame({"type": "session.updated", "session": session})
                    + b"".join(after_update)
                )
                while conn.recv(65536):  # until the client goes away
                    pass
            except OSError:
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv, t


@pytest.mark.timeout(20)
def test_error_is_reported_at_once_then_made_fatal_by_the_close(sim: Simulator) -> None:
    s = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
    errors: list[BaseException] = []
    closed: list[Closed] = []
    reported = threading.Event()

    @s.on_error
    def on_error(e: Exception) -> None:
        errors.append(e)
        reported.set()

    s.on_close(closed.append)
    with s:
        sim.last.inject_error("Your session was closed", type="server_error", code="boom")
        assert reported.wait(5)  # reported with no close in sight: nothing waited for one
        (err,) = errors
        assert isinstance(err, ServerError) and not err.fatal
        assert s.state == "open"
        sim.last.close(1011, "internal")
        with pytest.raises(ServerError, match="Your session was closed") as info:
            s.wait(10)
    assert info.value is err and err.fatal
    assert closed[0].error is err and closed[0].code == 1011 and closed[0].by_server
    assert errors == [err]  # reported once


@pytest.mark.timeout(20)
def test_error_then_close_in_one_write_is_fatal() -> None:
    error = {"type": "error", "error": {"type": "server_error", "message": "going away"}}
    srv, t = _scripted_server([text_frame(error), close_frame(1011, "internal")])
    s = Session(FLASH, api_key=KEY, url=f"ws://127.0.0.1:{srv.getsockname()[1]}/", config=MANUAL)
    errors: list[BaseException] = []
    s.on_error(errors.append)
    try:
        s.connect()
        with pytest.raises(ServerError, match="going away") as info:
            s.wait(10)
    finally:
        s.close()
        srv.close()
        t.join(5)
    assert info.value.fatal and errors == [info.value]
    assert s.close_info is not None and s.close_info.error is info.value


@pytest.mark.timeout(20)
def test_close_then_error_ends_with_the_close() -> None:
    error = {"type": "error", "error": {"type": "server_error", "message": "after the close"}}
    srv, t = _scripted_server([close_frame(1011, "internal"), text_frame(error)])
    s = Session(FLASH, api_key=KEY, url=f"ws://127.0.0.1:{srv.getsockname()[1]}/", config=MANUAL)
    errors: list[BaseException] = []
    s.on_error(errors.append)
    try:
        s.connect()
        with pytest.raises(ConnectionClosed) as info:
            s.wait(10)
    finally:
        s.close()
        srv.close()
        t.join(5)
    assert info.value.code == 1011 and info.value.by_server
    assert errors == []  # nothing is read after the close frame


@pytest.mark.timeout(20)
def test_an_event_between_error_and_close_keeps_the_error_recoverable() -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    other = {"type": "input_audio_buffer.cleared"}
    srv, t = _scripted_server([text_frame(error), text_frame(other), close_frame(1011, "internal")])
    s = Session(FLASH, api_key=KEY, url=f"ws://127.0.0.1:{srv.getsockname()[1]}/", config=MANUAL)
    errors: list[BaseException] = []
    s.on_error(errors.append)
    try:
        s.connect()
        with pytest.raises(ConnectionClosed):
            s.wait(10)
    finally:
        s.close()
        srv.close()
        t.join(5)
    (err,) = errors
    assert isinstance(err, ServerError) and not err.fatal
