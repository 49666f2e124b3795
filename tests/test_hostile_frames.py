"""Hostile servers after the upgrade (issue #12): huge or broken frames, reflected keys,
odd ``error`` shapes, the quota close.

Frame-level cases drive ``Transport``; the rest drive the public ``Session`` against a server
that plays the service's opening (``session.created``/``session.updated``) and then misbehaves.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hostile_servers import (
    Hostile,
    close_frame,
    event_frame,
    frame,
    open_session,
    wait_closed,
)
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import events as ev
from dashscope_rt.errors import (
    ConnectionClosed,
    FrameTooLarge,
    QuotaExceeded,
    RateLimited,
    ServerError,
)
from dashscope_rt.events import Closed
from dashscope_rt.session import Session
from dashscope_rt.transport import Transport

FLASH = "qwen3-omni-flash-realtime"
SECRET = "4f6a8c0e9c1e5b2dFRAMES"
KEY = f"sk-{SECRET}"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUOTA = "The free tier of the model has been exhausted. " * 3  # over 125 bytes, as observed

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def _transport(script: Callable[[Hostile, socket.socket], None]) -> tuple[Hostile, Transport]:
    def run(conn: socket.socket) -> None:
        server.upgrade(conn)
        script(server, conn)

    server = Hostile(run)
    tr = Transport.connect(server.url, headers=AUTH, timeout=5, max_frame_bytes=1024)
    tr.settimeout(5)
    return server, tr


def _failure(
    script: Callable[[Hostile, socket.socket], None], *before: tuple[int, bytes]
) -> tuple[Hostile, ConnectionClosed]:
    """Receive ``before`` (what must still be delivered), then the ConnectionClosed raised."""
    server, tr = _transport(script)
    with server:
        try:
            for expected in before:
                assert tr.recv() == expected
            with pytest.raises(ConnectionClosed) as info:
                tr.recv()
        finally:
            tr.release()
    return server, info.value


# -- frame size -------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_frame_declaring_a_terabyte_is_refused_before_its_payload() -> None:
    def script(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(frame(0x1, b'{"type":"ok"}'))
        conn.sendall(frame(0x1, b"x" * 10, length=1 << 40))  # declares 1 TB, sends 10 bytes
        server.read_frame(conn)  # the client's close

    server, err = _failure(script, (0x1, b'{"type":"ok"}'))  # what came before is delivered
    assert isinstance(err, FrameTooLarge) and err.code == 1009 and not err.by_server
    assert (err.size, err.limit) == (1 << 40, 1024) and "max_frame_bytes=1024" in str(err)
    assert server.received[0][0] == 0x8
    assert struct.unpack("!H", server.received[0][1][:2])[0] == 1009


@pytest.mark.timeout(20)
def test_a_fragmented_message_over_the_limit_is_refused() -> None:
    def script(server: Hostile, conn: socket.socket) -> None:
        for _ in range(5):  # five 300-byte fragments: each fits, the message does not
            conn.sendall(frame(0x1 if _ == 0 else 0x0, b"y" * 300, fin=False))
        server.read_frame(conn)

    _, err = _failure(script)
    assert isinstance(err, FrameTooLarge) and (err.size, err.limit) == (1200, 1024)


@pytest.mark.timeout(20)
def test_fragments_and_interleaved_pings_reassemble() -> None:
    def script(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(frame(0x1, b'{"a":', fin=False))
        conn.sendall(frame(0x9, b"mid"))
        conn.sendall(frame(0x0, b'"b"}'))
        conn.sendall(frame(0x2, b"\x00\x01binary"))
        server.read_frame(conn)  # the pong
        server.read_frame(conn)  # the close

    server, tr = _transport(script)
    with server:
        try:
            assert tr.recv() == (0x1, b'{"a":"b"}')
            assert tr.recv() == (0x2, b"\x00\x01binary")
            tr.close()
        finally:
            tr.release()
    assert server.received[0] == (0xA, b"mid")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (frame(0x3, b"?"), "reserved opcode"),
        (bytes([0xC1, 0x01]) + b"x", "reserved bits"),
        (frame(0x0, b"stray"), "continuation"),
    ],
)
def test_broken_framing_closes_with_1002(raw: bytes, why: str) -> None:
    def script(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(raw)
        server.read_frame(conn)

    server, err = _failure(script)
    assert err.code == 1002 and why in err.reason
    assert struct.unpack("!H", server.received[0][1][:2])[0] == 1002


# -- the key never comes back -----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_key_reflected_in_frames_and_close_reasons_is_masked() -> None:
    def script(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(frame(0x1, f'{{"type":"error","error":"bad key {KEY}"}}'.encode()))
        conn.sendall(close_frame(1008, f"invalid key {SECRET}"))
        server.read_frame(conn)

    server, tr = _transport(script)
    with server:
        try:
            assert tr.recv() == (0x1, b'{"type":"error","error":"bad key ***"}')
            with pytest.raises(ConnectionClosed) as info:
                tr.recv()
        finally:
            tr.release()
    assert info.value.reason == "invalid key ***"


# -- through a Session -------------------------------------------------------------------------


class Recorder:
    def __init__(self, s: Session) -> None:
        self.errors: list[BaseException] = []
        self.closed: list[Closed] = []
        self.got_close = threading.Event()
        self.got_errors = threading.Event()
        self.want_errors = 1
        s.on_error(self._error)
        s.on_close(self._close)

    def _error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        if len(self.errors) >= self.want_errors:
            self.got_errors.set()

    def _close(self, c: Closed) -> None:
        self.closed.append(c)
        self.got_close.set()


def _session_against(then: Callable[[Hostile, socket.socket], None]) -> Hostile:
    def script(conn: socket.socket) -> None:
        open_session(server, conn)
        then(server, conn)

    server = Hostile(script)
    return server


ERROR_SHAPES: list[tuple[Any, str, str | None]] = [
    ("Allocated quota exceeded", "Allocated quota exceeded", None),
    ({"message": "plain", "code": "c1"}, "plain", "c1"),
    ({"message": "no code at all"}, "no code at all", None),
    ({"code": 429, "message": {"message": "nested text"}}, "nested text", "429"),
    ({"error": {"message": "doubly nested", "code": "Throttling"}}, "doubly nested", "Throttling"),
    ({"code": "COMMON_ERROR", "message": ["a", 1]}, '["a", 1]', "COMMON_ERROR"),
]


@pytest.mark.timeout(20)
def test_error_text_is_kept_whatever_the_shape_of_error() -> None:
    def then(server: Hostile, conn: socket.socket) -> None:
        for error, _, _ in ERROR_SHAPES:
            conn.sendall(event_frame({"type": "error", "error": error}))
        # null error: the text is on the event itself
        conn.sendall(event_frame({"type": "error", "error": None, "message": "top-level text"}))
        wait_closed(conn)

    with _session_against(then) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, close_timeout=1)
        rec = Recorder(s)
        rec.want_errors = len(ERROR_SHAPES) + 1
        with s:
            assert rec.got_errors.wait(10)
    got = [(e.message, e.code) for e in rec.errors if isinstance(e, ServerError)]
    assert got == [(text, code) for _, text, code in ERROR_SHAPES] + [("top-level text", None)]
    assert "Allocated quota exceeded" in str(rec.errors[0])


@given(text=st.text(min_size=1).filter(lambda t: t.strip() != ""))
def test_decoding_keeps_any_string_error_text(text: str) -> None:
    for error in (
        text,
        {"message": text},
        {"error": {"message": text}},
        {"message": {"msg": text}},
    ):
        event = ev.decode(json.dumps({"type": "error", "error": error}))
        assert isinstance(event, ev.ErrorEvent) and event.error.message == text


@pytest.mark.timeout(20)
def test_a_reflected_key_reaches_no_handler_log_or_close_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def then(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(event_frame({"type": "error", "error": {"message": f"bad key {KEY}"}}))
        conn.sendall(close_frame(1008, f"closing: key {SECRET} refused"))
        wait_closed(conn)

    with _session_against(then) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, close_timeout=1)
        rec = Recorder(s)
        events: list[Any] = []
        s.on_event(events.append)
        s.connect()
        assert rec.got_close.wait(10)
        s.close()
    seen = repr(rec.errors) + repr(rec.closed) + repr([getattr(e, "raw", e) for e in events])
    seen += "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "bad key ***" in seen and "key *** refused" in seen
    assert SECRET not in seen


@pytest.mark.timeout(20)
def test_the_quota_close_is_a_typed_rate_limit() -> None:
    def then(server: Hostile, conn: socket.socket) -> None:
        server.read_event(conn)  # response.create
        conn.sendall(close_frame(1007, QUOTA))
        wait_closed(conn)

    with _session_against(then) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, close_timeout=1)
        rec = Recorder(s)
        with s:
            s.create_response()
            assert rec.got_close.wait(10)
            with pytest.raises(QuotaExceeded) as info:
                s.wait(5)
    err = info.value
    assert isinstance(err, RateLimited) and isinstance(err, ConnectionClosed)
    assert err.code == 1007 and err.reason == QUOTA and err.retry_after is None
    assert isinstance(rec.closed[0].error, QuotaExceeded)
