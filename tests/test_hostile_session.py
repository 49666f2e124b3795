"""Hostile servers and hostile usage against the public Session (issue #12).

Slow setup frames, binary frames, a flood against a slow handler, tools that never return,
blocking calls from handlers, and sequences of calls that must leave no thread behind.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from hostile_servers import (
    SESSION,
    Hostile,
    close_frame,
    drip,
    event_frame,
    frame,
    open_session,
    wait_closed,
)

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    BlockingCallInHandler,
    ConnectionClosed,
    ConnectTimeout,
    FrameTooLarge,
    InvalidInput,
    ProtocolError,
    ReceiveBacklogFull,
    Timeout,
)
from dashscope_rt.events import Closed, ResponseAudioDelta
from dashscope_rt.session import Session
from dashscope_rt.testing import ScriptedReply as SimReply
from dashscope_rt.testing import ScriptedToolCall as SimCall
from dashscope_rt.testing import Simulator, synthesize
from dashscope_rt.tools import tool

FLASH = "qwen3-omni-flash-realtime"
PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-hostile-session-key"
MANUAL = SessionConfig(turn_detection=None)
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def _against(then: Any) -> Hostile:
    def script(conn: socket.socket) -> None:
        open_session(server, conn)
        then(server, conn)

    server = Hostile(script)
    return server


# -- the connect deadline covers the session setup --------------------------------------------


@pytest.mark.timeout(30)
def test_slow_drip_session_created_is_cut_at_the_connect_timeout() -> None:
    """``session.created`` arrives a byte every 50 ms (several seconds in all)."""

    def script(conn: socket.socket) -> None:
        server.upgrade(conn)
        created = {"type": "session.created", "event_id": "e0", "session": SESSION}
        drip(conn, event_frame(created), 0.05)

    with Hostile(script) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, connect_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(ConnectTimeout, match=r"session\.created"):
            s.connect()
        assert time.monotonic() - start < 5
        assert s.closed


# -- frames the protocol does not use ----------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_binary_frame_is_a_protocol_error_and_the_session_goes_on() -> None:
    binary = b'{"type":"response.done"}'  # valid JSON: it must still not be parsed

    def then(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(frame(0x2, binary))
        conn.sendall(event_frame({"type": "response.created", "response": {"id": "r1"}}))
        wait_closed(conn)

    with _against(then) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, close_timeout=1)
        errors: list[BaseException] = []
        created = threading.Event()
        done: list[Any] = []
        s.on_error(errors.append)
        s.on("response.created", lambda e: created.set())
        s.on("response.done", done.append)
        with s:
            assert created.wait(10)
            assert s.state == "open"
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    assert "binary frame of 24 bytes" in str(errors[0]) and errors[0].frame == binary
    assert done == []


@pytest.mark.timeout(20)
def test_max_frame_bytes_is_a_session_option() -> None:
    def then(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(event_frame({"type": "response.created", "response": {"id": "r1"}}))
        conn.sendall(frame(0x1, b"x" * 10, length=1 << 30))
        wait_closed(conn)

    with _against(then) as server:
        s = Session(FLASH, api_key=KEY, url=server.url, max_frame_bytes=64 * 1024)
        seen: list[str] = []
        s.on("response.created", lambda e: seen.append(e.type))
        s.connect()
        with pytest.raises(FrameTooLarge) as info:
            s.wait(10)
    assert seen == ["response.created"]
    assert info.value.size == 1 << 30 and info.value.limit == 64 * 1024
    assert s.close_info is not None and s.close_info.code == 1009


@pytest.mark.parametrize(
    "kw",
    [
        {"max_frame_bytes": 10},
        {"receive_backlog_bytes": 4096, "max_frame_bytes": 8192},
        {"tool_timeout": 0},
        {"proxy": "socks5://127.0.0.1:1080"},
    ],
)
def test_bad_limits_and_proxies_are_refused_at_construction(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Session(FLASH, api_key=KEY, url="ws://127.0.0.1:9/", **kw)


# -- a flood against a slow handler -------------------------------------------------------------


def _delta(i: int) -> bytes:
    audio = "A" * 8000  # 6 KB of PCM as Base64
    return event_frame(
        {"type": "response.audio.delta", "event_id": f"ev{i}", "response_id": "r", "delta": audio}
    )


@pytest.mark.timeout(60)
def test_a_flood_against_a_slow_handler_is_bounded_and_loses_nothing_delivered() -> None:
    sent = 3000
    limit = 256 * 1024

    def then(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(b"".join(_delta(i) for i in range(sent)))  # ~24 MB as fast as it goes
        wait_closed(conn, 30)

    with _against(then) as server:
        s = Session(
            FLASH,
            api_key=KEY,
            url=server.url,
            receive_backlog_bytes=limit,
            max_frame_bytes=64 * 1024,
        )
        seen: list[str] = []
        closed: list[Closed] = []

        def slow(e: ResponseAudioDelta) -> None:
            seen.append(e.event_id or "")
            time.sleep(0.002)

        s.on_audio_delta(slow)
        s.on_close(closed.append)
        s.connect()
        with pytest.raises(ReceiveBacklogFull) as info:
            s.wait(40)
    err = info.value
    assert err.code == 1008 and err.limit == limit and err.backlog > limit
    assert "receive_backlog_bytes" in str(err)
    # Every event queued before the overflow reached the handler, in order, before on_close.
    size = len(_delta(0)) - 4  # the payload, without the frame header
    assert seen == [f"ev{i}" for i in range(len(seen))]
    assert limit // size <= len(seen) < sent
    assert len(closed) == 1 and closed[0].error is err


# -- blocking calls from handlers; no thread left behind ----------------------------------------


@pytest.mark.timeout(20)
def test_events_iterated_in_a_handler_raises_at_once() -> None:
    with Simulator(api_key=KEY) as sim:
        sim.script_replies(["hello there"])
        s = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL, close_timeout=2)
        errors: list[BaseException] = []
        done = threading.Event()

        def greedy(e: ResponseAudioDelta) -> None:
            for _ in s.events():  # would deadlock: this thread delivers the events
                pass

        s.on_audio_delta(greedy)
        s.on_error(errors.append)
        s.on("response.done", lambda e: done.set())
        with s:
            s.ask(audio=synthesize("hi", 16000), timeout=15)
            assert done.wait(10)
    assert errors and all(isinstance(e, BlockingCallInHandler) for e in errors)
    assert "events()" in str(errors[0])


@pytest.mark.timeout(30)
def test_no_sequence_of_calls_leaves_a_thread_behind() -> None:
    """Each sequence runs under ``no_thread_leak`` (the module's fixture)."""
    with Simulator(api_key=KEY) as sim:
        sim.script_replies(["one", "two", "three"])
        # connect, close twice
        s = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
        s.connect()
        s.close()
        s.close()
        # close from a handler, then wait()
        closing = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
        closing.on_audio_delta(lambda e: closing.close())
        closing.connect()
        closing.create_response()
        closing.wait(10)
        # an events() iterator open in another thread when the session closes
        pulled = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
        pulled.connect()
        got: list[Any] = []
        some = threading.Event()

        def consume() -> None:
            for item in pulled.events():
                got.append(item)
                some.set()

        reading = threading.Thread(target=consume, name="consumer")
        reading.start()
        pulled.create_response()
        assert some.wait(10)
        pulled.close()
        reading.join(5)
        assert not reading.is_alive() and isinstance(got[-1], Closed)
        # close() from another thread while connect() is under way
        s = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
        closer = threading.Timer(0.0, s.close)
        closer.start()
        with contextlib.suppress(Exception):
            s.connect()
        closer.join(5)
        s.close()
        # the finaliser of a session nobody references
        s = Session(FLASH, api_key=KEY, url=sim.url, config=MANUAL)
        s.connect()
        del s


# -- tools: timeouts, and exit never delayed -----------------------------------------------------


@pytest.mark.timeout(40)
@pytest.mark.parametrize("where", ["tool", "session"])
def test_a_tool_over_its_timeout_sends_an_error_result(where: str) -> None:
    release = threading.Event()

    def lookup(q: str) -> str:
        """Look something up."""
        release.wait(20)
        return "too late"

    declared = tool(timeout=0.3)(lookup) if where == "tool" else tool(lookup)
    kw: dict[str, Any] = {"tool_timeout": 0.3} if where == "session" else {}
    errors: list[BaseException] = []
    try:
        with Simulator(api_key=KEY) as sim:
            sim.script_replies([SimReply(tool_calls=(SimCall("lookup", {"q": "x"}),)), "ok"])
            s = Session(PLUS, api_key=KEY, url=sim.url, config=MANUAL, tools=[declared], **kw)
            s.on_error(errors.append)
            with s:
                reply = s.ask(audio=synthesize("look it up", 16000), timeout=20)
                rec = sim.last
    finally:
        release.set()
    outputs = [e["item"]["output"] for e in rec.received_events("conversation.item.create")]
    assert len(outputs) == 1 and "did not return within 0.3 s" in json.loads(outputs[0])["error"]
    assert "response.create" in rec.received_types()[-1:]
    assert reply.tool_calls and reply.tool_calls[0].name == "lookup"
    assert any(isinstance(e, Timeout) and "lookup" in str(e) for e in errors)


@pytest.mark.timeout(60)
def test_a_tool_that_never_returns_does_not_delay_exit(tmp_path: Path) -> None:
    script = tmp_path / "stuck_tool.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import threading, time
            from dashscope_rt.config import SessionConfig
            from dashscope_rt.session import Session
            from dashscope_rt.testing import ScriptedReply, ScriptedToolCall, Simulator, synthesize

            started = threading.Event()

            def forever(q: str) -> str:
                \"\"\"Never returns.\"\"\"
                started.set()
                threading.Event().wait()
                return "never"

            sim = Simulator(api_key="{KEY}").start()
            call = ScriptedToolCall("forever", {{"q": "x"}})
            sim.script_replies([ScriptedReply(tool_calls=(call,))])
            s = Session("{PLUS}", api_key="{KEY}", url=sim.url, tools=[forever],
                        config=SessionConfig(turn_detection=None), close_timeout=1)
            s.connect()
            s.append_audio(synthesize("go", 16000))
            s.commit()
            s.create_response()
            assert started.wait(20)
            s.close()
            sim.stop()
            print("closed", flush=True)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=45, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "closed" in out.stdout
    assert time.monotonic() - start < 40


@pytest.mark.timeout(20)
def test_a_session_ended_by_an_error_is_freed_once_dropped() -> None:
    """``wait()`` re-raises the error that ended the session; that error's traceback holds the
    session, which must not keep it (and everything it received) alive for ever."""

    def then(server: Hostile, conn: socket.socket) -> None:
        conn.sendall(close_frame(1011, "internal error"))
        wait_closed(conn)

    with _against(then) as server:
        engines = []
        for _ in range(2):
            s = Session(FLASH, api_key=KEY, url=server.url)
            s.connect()
            with pytest.raises(ConnectionClosed):
                s.wait(10)
            engines.append(weakref.ref(s._engine))
            del s
        gc.collect()
    assert [ref() for ref in engines] == [None, None]
