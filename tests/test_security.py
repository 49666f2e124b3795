"""Security: the API key never leaks, and TLS is verified by default.

The key is a distinctive fake; it is searched for whole and as its secret part in reprs, in
every log record at DEBUG (a full turn and a refused 401 connect), in exception messages,
args and attributes, and in the files ``record_to=`` writes. TLS: a trustme CA signs a
certificate for 127.0.0.1; the simulator serves TLS with it; a session with default settings
is refused (TLSError), one given the CA file connects, one given the CA but the wrong host
name is refused.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    AuthenticationError,
    ConnectError,
    ConnectTimeout,
    RealtimeError,
    TLSError,
)
from dashscope_rt.session import Session
from dashscope_rt.testing import ScriptedReply, Simulator

trustme = pytest.importorskip("trustme")

FLASH = "qwen3-omni-flash-realtime"
SECRET = "7f3a9c1e5b2d4f6a8c0eZQX"
KEY = f"sk-{SECRET}"
WRONG = "sk-WRONGKEY9d8c7b6a5f4e3d2c1b0aZQX"
NEEDLES = (KEY, SECRET, WRONG, WRONG[3:])

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


def exception_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args, attributes, and its causes."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: Any = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur), repr(cur.args), repr(vars(cur))]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def _text_of(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)


# -- the key never appears ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_key_is_not_in_reprs_logs_errors_or_recordings(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    record = tmp_path / "rec"
    with Simulator(api_key=KEY) as sim:
        sim.script_replies(["hello, a short reply"])
        # A refused connect first (another key): the error, its causes and the logs.
        bad = Session(FLASH, api_key=WRONG, url=sim.url)
        with pytest.raises(AuthenticationError) as info:
            bad.connect()
        assert leaks(exception_text(info.value)) == []
        assert leaks(repr(bad)) == []
        # Then a full turn with the right key, recorded.
        s = Session(
            FLASH,
            api_key=KEY,
            url=sim.url,
            config=SessionConfig(turn_detection=None),
            record_to=record,
        )
        reprs = [repr(s), str(s)]
        done = threading.Event()
        s.on("response.done", lambda e: done.set())
        with s:
            reprs += [repr(s), repr(s.requested_config), repr(s.config)]
            s.append_audio(b"\x10\x00" * 8000, sample_rate=16000)
            s.commit()
            s.create_response()
            assert done.wait(10)
        reprs += [repr(s), repr(s.close_info)]
        assert sim.last.headers.get("Authorization", "").startswith("Bearer sk-")
        sim_view = repr(sim.last.headers) + repr([r.headers for r in sim.rejected])
    assert leaks("\n".join(reprs)) == []
    assert leaks(sim_view) == [], "the simulator's own records must be redacted"
    records = caplog.records  # the SDK's, websocket-client's and the simulator's
    assert any(r.name.startswith("dashscope_rt") and r.levelno == logging.DEBUG for r in records)
    assert leaks(_text_of(records)) == []
    files = [p for p in record.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".jsonl") for p in files)
    for p in files:
        data = p.read_bytes()
        assert not [n for n in NEEDLES if n.encode() in data], f"key in {p.name}"


@pytest.mark.timeout(20)
def test_key_is_not_in_connect_errors() -> None:
    """Refused port, a server that never answers, a bad URL: no message holds the key."""
    with Simulator(api_key=KEY) as sim:
        port = sim.port
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers the upgrade
    try:
        errors: list[BaseException] = []
        for url, timeout in (
            (f"ws://127.0.0.1:{port}/api-ws/v1/realtime", 3.0),
            (f"ws://127.0.0.1:{silent.getsockname()[1]}/api-ws/v1/realtime", 0.5),
        ):
            s = Session(FLASH, api_key=KEY, url=url, connect_timeout=timeout)
            with pytest.raises(ConnectError) as info:
                s.connect()
            errors.append(info.value)
    finally:
        silent.close()
    assert isinstance(errors[1], ConnectTimeout)
    with pytest.raises(RealtimeError) as info2:
        Session(FLASH, api_key=KEY, url=f"http://user:{KEY}@127.0.0.1/")
    errors.append(info2.value)
    for exc in errors:
        assert leaks(exception_text(exc)) == [], exc


# -- TLS is verified by default ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def tls_sim(ca: Any) -> Iterator[Simulator]:
    """The simulator serving wss:// with a certificate for 127.0.0.1 signed by ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with Simulator(api_key=KEY, ssl_context=ctx) as sim:
        assert sim.url.startswith("wss://127.0.0.1:")
        yield sim


def wss(sim: Simulator, host: str = "127.0.0.1") -> str:
    return f"wss://{host}:{sim.port}/api-ws/v1/realtime"


@pytest.mark.timeout(20)
def test_tls_is_refused_without_the_ca(tls_sim: Simulator) -> None:
    s = Session(FLASH, api_key=KEY, url=wss(tls_sim), connect_timeout=5)
    with pytest.raises(TLSError) as info:
        s.connect()
    assert "certificate" in str(info.value).lower()
    assert s.closed
    assert not tls_sim.connections  # the handshake never reached the WebSocket layer


@pytest.mark.timeout(20)
def test_tls_with_the_ca_file_connects_and_talks(
    tls_sim: Simulator, ca: Any, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    done = threading.Event()
    replies: list[Any] = []
    tls_sim.script_replies([ScriptedReply(text="over TLS")])
    s = Session(
        FLASH,
        api_key=KEY,
        url=wss(tls_sim),
        ca_file=str(ca_file),
        config=SessionConfig(turn_detection=None),
    )

    @s.on_response_done
    def finished(reply: Any) -> None:
        replies.append(reply)
        done.set()

    with s:
        assert s.session_id
        s.append_audio(b"\x10\x00" * 8000, sample_rate=16000)
        s.commit()
        s.create_response()
        assert done.wait(10)
    assert replies[0].text == "over TLS" and replies[0].audio
    assert tls_sim.last.closed_by in ("client", None) or tls_sim.last.closed.wait(5)


@pytest.mark.timeout(20)
def test_tls_checks_the_host_name_even_with_the_ca(
    tls_sim: Simulator, ca: Any, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    s = Session(FLASH, api_key=KEY, url=wss(tls_sim, "localhost"), ca_file=str(ca_file))
    with pytest.raises(TLSError):
        s.connect()


@pytest.mark.timeout(20)
def test_tls_with_a_caller_ssl_context(tls_sim: Simulator, ca: Any) -> None:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with Session(FLASH, api_key=KEY, url=wss(tls_sim), ssl_context=ctx) as s:
        assert s.session_id
