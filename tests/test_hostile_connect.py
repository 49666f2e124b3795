"""Hostile servers at connect time: slow drips, rate limits, reflected keys (issue #12).

Each server is a real socket on 127.0.0.1 that misbehaves one way; the client is the public
``Session`` or the ``Transport`` under it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from hostile_servers import Hostile, drip, upgrade_response

from dashscope_rt.errors import (
    AuthenticationError,
    ConnectTimeout,
    HandshakeError,
    RateLimited,
    TLSError,
    TooManyRequests,
)
from dashscope_rt.session import Session
from dashscope_rt.transport import Transport

FLASH = "qwen3-omni-flash-realtime"
SECRET = "9c1e5b2d4f6a8c0eHOSTILE"
KEY = f"sk-{SECRET}"
AUTH = {"Authorization": f"Bearer {KEY}"}

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def _texts(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, attributes, and its whole chain of causes."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur), repr(cur.args), repr(vars(cur))]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


# -- one deadline however slowly bytes arrive -------------------------------------------------


@pytest.mark.timeout(30)
def test_slow_drip_101_is_cut_at_the_connect_timeout() -> None:
    """The upgrade answer arrives a byte every 50 ms (10 s in all): the 0.5 s deadline holds."""

    def script(conn: socket.socket) -> None:
        drip(conn, upgrade_response(server.read_request(conn)) + b"\r\n" * 40, 0.05)

    with Hostile(script) as server:
        start = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            Transport.connect(server.url, headers=AUTH, timeout=0.5)
        took = time.monotonic() - start
    assert took < 5, f"connect() took {took:.1f} s with timeout=0.5"
    assert "0.5 s" in str(info.value)


@pytest.mark.timeout(30)
def test_a_slow_name_lookup_is_cut_at_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system resolver hangs (a dead DNS server): the 0.5 s deadline covers the lookup too."""
    release, returned = threading.Event(), threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.example":
            release.wait(20)  # the test ends it, so the lookup thread does not outlive the test
            returned.set()
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(ConnectTimeout) as info:
            Transport.connect(
                "ws://slow-dns.example:9/api-ws/v1/realtime", headers=AUTH, timeout=0.5
            )
        assert not returned.is_set(), "connect() waited for the hanging lookup to give up"
    finally:
        release.set()
    assert "0.5 s" in str(info.value)


@pytest.mark.timeout(30)
def test_slow_drip_101_through_session_connect() -> None:
    def script(conn: socket.socket) -> None:
        drip(conn, upgrade_response(server.read_request(conn)) + b"\r\n" * 40, 0.05)

    with Hostile(script) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, connect_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(ConnectTimeout):
            s.connect()
        assert time.monotonic() - start < 5
        assert s.closed


@pytest.mark.timeout(30)
def test_slow_drip_tls_handshake_is_cut_at_the_connect_timeout() -> None:
    """A 'TLS server' announces a 16 KB handshake record, then drips it a byte per 50 ms."""

    def script(conn: socket.socket) -> None:
        conn.recv(4096)  # the ClientHello
        drip(conn, b"\x16\x03\x03\x40\x00" + b"\x00" * 400, 0.05)

    with Hostile(script) as server:
        url = f"wss://127.0.0.1:{server.port}/"
        start = time.monotonic()
        with pytest.raises(ConnectTimeout):
            ctx = ssl.create_default_context()
            Transport.connect(url, headers=AUTH, timeout=0.5, ssl_context=ctx)
        assert time.monotonic() - start < 5


# -- rate limits ----------------------------------------------------------------------------


def _answer(status: str, headers: str = "", body: bytes = b"") -> Hostile:
    def script(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(
            f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body
        )

    server = Hostile(script)
    return server


@pytest.mark.timeout(20)
def test_429_with_an_empty_body_is_a_typed_rate_limit_with_retry_after() -> None:
    with _answer("429 Too Many Requests", "Retry-After: 7\r\n") as server:
        s = Session(FLASH, api_key=KEY, url=server.url)
        with pytest.raises(TooManyRequests) as info:
            s.connect()
    err = info.value
    assert isinstance(err, RateLimited) and isinstance(err, HandshakeError)
    assert err.status == 429 and err.retry_after == 7.0
    assert "rate limited" in str(err) and "retry after 7 s" in str(err)
    assert s.closed


@pytest.mark.timeout(20)
def test_429_retry_after_as_an_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    header = f"Retry-After: {format_datetime(when, usegmt=True)}\r\n"
    server = _answer("429 Too Many Requests", header, b'{"code":"Throttling"}')
    with server, pytest.raises(TooManyRequests) as info:
        Transport.connect(server.url, headers=AUTH, timeout=5)
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120
    assert "Throttling" in str(info.value)


@pytest.mark.timeout(20)
def test_429_without_retry_after_says_so() -> None:
    with _answer("429 Too Many Requests") as server, pytest.raises(TooManyRequests) as info:
        Transport.connect(server.url, headers=AUTH, timeout=5)
    assert info.value.retry_after is None
    assert "did not say when" in str(info.value)


# -- the key never comes back ---------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", ["400 Bad Request", "401 Unauthorized"])
def test_a_reflected_key_is_masked_in_errors_and_logs(
    status: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server echoes the key in its body and a header: no message or log line holds it."""
    caplog.set_level(logging.DEBUG)
    body = f'{{"message":"bad header Authorization: Bearer {KEY}","key":"{SECRET}"}}'.encode()
    with _answer(status, f"X-Echo: {KEY}\r\n", body) as server:
        s = Session(FLASH, api_key=KEY, url=server.url)
        with pytest.raises(HandshakeError) as info:
            s.connect()
    err = info.value
    text = _texts(err)
    assert KEY not in text and SECRET not in text
    assert "bad header Authorization: Bearer ***" in err.body
    assert err.headers["x-echo"] == "***"  # websocket-client lower-cases names
    assert isinstance(err, AuthenticationError) == status.startswith("401")
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert SECRET not in logs


@pytest.mark.timeout(20)
def test_tls_failure_still_maps_to_tls_error() -> None:
    def script(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # not TLS at all

    with Hostile(script) as server, pytest.raises(TLSError):
        Transport.connect(f"wss://127.0.0.1:{server.port}/", headers=AUTH, timeout=5)
