"""Session against every fault the simulator injects, connect failures, keepalive, reconnect."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from raw_ws import accept_upgrade, text_frame

from dashscope_rt import ReconnectPolicy
from dashscope_rt import events as ev
from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeError,
    ProtocolError,
    SendBacklogFull,
    ServerError,
    SessionClosed,
)
from dashscope_rt.events import Closed, Reconnected, Reconnecting
from dashscope_rt.session import Session
from dashscope_rt.testing import Behaviour, Faults, Simulator, silence, synthesize

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test-faults"
MANUAL = SessionConfig(turn_detection=None, instructions="fault tests")
FAST = ReconnectPolicy(initial_backoff=0.01, max_backoff=0.05, max_attempts=3)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, **kw: Any) -> Session:
    kw.setdefault("api_key", KEY)
    kw.setdefault("close_timeout", 2.0)
    kw.setdefault("config", MANUAL)
    return Session(kw.pop("model", FLASH), url=sim.url, **kw)


def ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("dashscope_rt")}


def turn(s: Session) -> None:
    s.append_audio(synthesize("hello there, how are you", 16000))
    s.commit()
    s.create_response()


def closes(s: Session) -> list[Closed]:
    out: list[Closed] = []
    s.on_close(out.append)
    return out


# -- connect failures leave nothing behind -----------------------------------------------------


@pytest.mark.timeout(20)
def test_connect_401_leaves_no_thread(sim: Simulator) -> None:
    before = ours()
    s = Session(FLASH, api_key="sk-wrong", url=sim.url)
    with pytest.raises(AuthenticationError) as info:
        s.connect()
    assert info.value.status == 401 and "127.0.0.1" in str(info.value)
    assert ours() == before and s.closed
    with pytest.raises(SessionClosed):
        s.append_audio(silence(100))


@pytest.mark.timeout(20)
def test_connect_wrong_port_leaves_no_thread() -> None:
    before = ours()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ConnectionRefused):
        Session(FLASH, api_key=KEY, url=f"ws://127.0.0.1:{port}/api-ws/v1/realtime").connect()
    assert ours() == before


@pytest.mark.timeout(20)
def test_connect_timeout_leaves_no_thread() -> None:
    before = ours()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        with pytest.raises(ConnectTimeout):
            Session(
                FLASH,
                api_key=KEY,
                url=f"ws://127.0.0.1:{sock.getsockname()[1]}/",
                connect_timeout=0.3,
            ).connect()
    finally:
        sock.close()
    assert ours() == before


@pytest.mark.timeout(20)
def test_no_session_created_is_a_connect_timeout(sim: Simulator) -> None:
    sim.faults = Faults(stall=True)
    before = ours()
    with pytest.raises(ConnectTimeout, match=r"session\.created"):
        make(sim, connect_timeout=0.5).connect()
    assert ours() == before


@pytest.mark.timeout(20)
def test_refused_config_raises_the_server_error_at_connect(sim: Simulator) -> None:
    before = ours()
    # extra= skips the local voice check: the server refuses and closes. (The service refuses a
    # voice at the first response: tests/test_voice_refusal.py; here the documented alternative.)
    sim.behaviour.voice_check = "update"
    with pytest.raises(ServerError, match="not supported") as info:
        make(sim, config=SessionConfig(extra={"voice": "Nobody"})).connect()
    assert info.value.fatal
    sim.faults = Faults(
        error_on={"session.update": {"type": "invalid_request_error", "message": "bad field"}}
    )
    with pytest.raises(ServerError, match="bad field"):
        make(sim).connect()
    assert ours() == before


# -- faults while connected ------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_drop_mid_response(sim: Simulator) -> None:
    sim.faults = Faults(drop_mid_response=True)
    before = ours()
    s = make(sim)
    closed = closes(s)
    s.connect()
    with pytest.raises(ConnectionClosed) as info:
        s.ask(audio=synthesize("hi there", 16000), timeout=10)
    assert info.value.code == 1006
    with pytest.raises(ConnectionClosed):
        s.wait(5)
    assert len(closed) == 1 and closed[0].code == 1006 and closed[0].by_server
    assert ours() == before


@pytest.mark.timeout(20)
def test_drop_after_events(sim: Simulator) -> None:
    sim.faults = Faults(drop_after_events=4)
    s = make(sim)
    closed = closes(s)
    s.connect()
    turn(s)
    with pytest.raises(ConnectionClosed):
        s.wait(10)
    assert closed[0].code == 1006 and isinstance(closed[0].error, ConnectionClosed)


@pytest.mark.timeout(30)
def test_slow_server(sim: Simulator) -> None:
    sim.faults = Faults(event_delay_s=0.01)
    with make(sim) as s:
        reply = s.ask(audio=synthesize("hi", 16000), timeout=20)
    assert reply.audio


@pytest.mark.timeout(20)
def test_stalled_server_then_resume(sim: Simulator) -> None:
    with make(sim) as s:
        rec = sim.last
        rec.stall()
        done = threading.Event()
        s.on_response_done(lambda r: done.set())
        turn(s)
        sim.wait_for(lambda: "response.create" in rec.received_types())
        assert not done.wait(0.3)
        rec.resume()
        assert done.wait(10)


@pytest.mark.timeout(20)
def test_long_close_reason_from_server_is_surfaced_and_not_retried(sim: Simulator) -> None:
    reason = "The free tier of the model has been exhausted. " * 4
    sim.faults = Faults(close_on={"response.create": (1007, reason)})
    s = make(sim, reconnect=FAST)
    closed = closes(s)
    seen: list[Any] = []
    s.on(Reconnecting, seen.append)
    s.connect()
    turn(s)
    with pytest.raises(ConnectionClosed) as info:
        s.wait(10)
    assert info.value.code == 1007 and info.value.reason == reason
    assert closed[0].code == 1007 and closed[0].reason == reason and closed[0].by_server
    assert seen == [] and len(sim.connections) == 1


@pytest.mark.timeout(20)
def test_error_on_client_event_is_reported_and_not_fatal(sim: Simulator) -> None:
    sim.faults = Faults(
        error_on={
            "input_audio_buffer.commit": {
                "type": "invalid_request_error",
                "message": "buffer empty",
            }
        }
    )
    errors: list[BaseException] = []
    got = threading.Event()
    with make(sim) as s:

        @s.on_error
        def on_error(e: BaseException) -> None:
            errors.append(e)
            got.set()

        s.append_audio(silence(100))
        s.commit()
        assert got.wait(5)
        assert s.state == "open"
    assert isinstance(errors[0], ServerError) and errors[0].message == "buffer empty"
    assert not errors[0].fatal


@pytest.mark.timeout(20)
def test_malformed_and_binary_frames_are_reported_and_skipped(sim: Simulator) -> None:
    sim.faults = Faults(on_connect_frames=("{not json", b"\x00\x01binary", '{"type":"x.new"}'))
    errors: list[BaseException] = []
    unknown = threading.Event()
    s = make(sim)
    s.on_error(errors.append)
    s.on("x.new", lambda e: unknown.set())
    with s:
        assert unknown.wait(5)
        assert s.ask(audio=synthesize("still alive", 16000), timeout=10).audio
    assert len(errors) == 2 and all(isinstance(e, ProtocolError) for e in errors)


@pytest.mark.timeout(20)
def test_fatal_server_error_then_close(sim: Simulator) -> None:
    s = make(sim)
    errors: list[BaseException] = []
    s.on_error(errors.append)
    s.connect()
    rec = sim.last
    rec.inject_error("Your session was closed", type="server_error", code="boom")
    rec.close(1011, "internal")
    with pytest.raises(ServerError, match="Your session was closed") as info:
        s.wait(10)
    assert info.value.fatal
    assert isinstance(errors[0], ServerError) and errors[0].fatal


@pytest.mark.timeout(20)
def test_idle_timeout_close(sim: Simulator) -> None:
    sim.behaviour = attrs.evolve(sim.behaviour, idle_timeout_s=0.3)
    s = make(sim)
    closed = closes(s)
    s.connect()
    with pytest.raises(ServerError, match="no response was generated") as info:
        s.wait(10)
    assert info.value.fatal and closed[0].by_server


@pytest.mark.timeout(20)
def test_max_duration_close(sim: Simulator) -> None:
    sim.behaviour = attrs.evolve(sim.behaviour, max_duration_s=0.3, idle_timeout_s=None)
    s = make(sim)
    s.connect()
    with pytest.raises(ServerError):
        s.wait(10)
    assert s.close_info is not None and s.close_info.by_server


@pytest.mark.timeout(20)
def test_server_close_1000_is_a_normal_end(sim: Simulator) -> None:
    s = make(sim)
    closed = closes(s)
    s.connect()
    sim.last.close(1000, "bye")
    s.wait(10)  # no error raised
    assert closed[0].code == 1000 and closed[0].reason == "bye" and closed[0].error is None


# -- keepalive ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_slow_handler_does_not_stall_pings_or_reading(sim: Simulator) -> None:
    release = threading.Event()
    entered = threading.Event()
    deltas: list[int] = []
    with make(sim) as s:

        @s.on_audio_delta
        def slow(e: ev.ResponseAudioDelta) -> None:
            deltas.append(len(e.audio))
            entered.set()
            release.wait(10)

        turn(s)
        assert entered.wait(5)
        rec = sim.last
        # the dispatcher is blocked; the reader still answers the server's pings
        for _ in range(3):
            pong = rec.ping()
            assert pong.wait(2)
        sim.wait_for(lambda: "response.done" in rec.sent_types())
        assert len(deltas) == 1
        release.set()
        done = threading.Event()
        s.on_response_done(lambda r: done.set())
        assert done.wait(5) or s.last_reply is not None
    assert len(deltas) > 1


@pytest.mark.timeout(20)
def test_keepalive_pings_are_answered_by_a_live_server(sim: Simulator) -> None:
    with make(sim, ping_interval=0.05, ping_timeout=0.2) as s:
        # a quiet line for many ping intervals: every ping got its pong, so the session lives
        assert not s._engine.closed_event.wait(0.8)
        assert s.state == "open"


def _silent_server(
    hold: threading.Event | None = None,
) -> tuple[socket.socket, threading.Thread, list[int]]:
    """A server that completes the handshake and the session setup, then never answers.

    With ``hold`` it also stops reading (until ``hold`` is set), so the client's sends back up.
    """
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    opcodes: list[int] = []

    def send(conn: socket.socket, obj: dict[str, Any]) -> None:
        conn.sendall(text_frame(obj))

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            accept_upgrade(conn)
            session = {"id": "sess_silent", "turn_detection": None}
            send(conn, {"type": "session.created", "session": session})
            conn.settimeout(5)
            try:
                while True:
                    head = conn.recv(2)
                    if len(head) < 2:
                        return
                    opcodes.append(head[0] & 0x0F)
                    n = head[1] & 0x7F
                    if n == 126:
                        n = int.from_bytes(conn.recv(2), "big")
                    while n + 4 > 0:
                        got = conn.recv(n + 4)
                        if not got:
                            return
                        n -= len(got)
                    if opcodes[-1] == 0x1 and len(opcodes) == 1:
                        send(conn, {"type": "session.updated", "session": session})
                        if hold is not None:
                            hold.wait(15)
                            return
            except OSError:
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv, t, opcodes


@pytest.mark.timeout(20)
def test_unanswered_keepalive_ping_ends_the_session() -> None:
    srv, t, opcodes = _silent_server()
    before = ours()
    s = Session(
        FLASH,
        api_key=KEY,
        url=f"ws://127.0.0.1:{srv.getsockname()[1]}/",
        ping_interval=0.05,
        ping_timeout=0.2,
    )
    try:
        s.connect()
        with pytest.raises(ConnectionClosed, match="keepalive") as info:
            s.wait(10)
        assert info.value.code == 1006
    finally:
        s.close()
        srv.close()
        t.join(5)
    assert 0x9 in opcodes  # the ping went out
    assert ours() == before


# -- reconnect ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_reconnect_replays_config_and_tools(sim: Simulator) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    events: list[Any] = []
    s = make(
        sim,
        model="qwen3.5-omni-plus-realtime",
        tools=[lookup],
        reconnect=FAST,
        config=SessionConfig(turn_detection=None, instructions="replay me"),
    )
    s.on(Reconnecting, events.append)
    s.on(Reconnected, events.append)
    with s:
        first_id = s.session_id
        sim.last.drop()
        sim.wait_for(lambda: len(sim.connections) == 2)
        second = sim.connections[1]
        sim.wait_for(lambda: "session.update" in second.received_types())
        reply = s.ask(audio=synthesize("hello again", 16000), timeout=10)
        assert reply.audio
        assert s.session_id != first_id
    upd = second.received_events("session.update")[0]["session"]
    assert upd["instructions"] == "replay me" and upd["turn_detection"] is None
    assert upd["tools"][0]["function"]["name"] == "lookup"
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Reconnecting" and "Reconnected" in kinds
    assert isinstance(events[0].cause, ConnectionClosed) and events[0].cause.code == 1006


@pytest.mark.timeout(30)
def test_reconnect_gives_up_on_auth_failure(sim: Simulator) -> None:
    s = make(sim, reconnect=FAST)
    s.connect()
    sim.api_key = "sk-rotated"  # the next handshake is refused
    sim.last.drop()
    with pytest.raises(AuthenticationError):
        s.wait(10)
    assert s.closed


@pytest.mark.timeout(30)
def test_reconnect_attempts_are_bounded(sim: Simulator) -> None:
    s = make(sim, reconnect=FAST)
    tries: list[Reconnecting] = []
    s.on(Reconnecting, tries.append)
    s.connect()
    sim.faults = Faults(drop_after_events=1)  # every new connection dies at once
    sim.last.drop()
    with pytest.raises(ConnectionClosed):
        s.wait(15)
    assert 1 <= len(tries) <= FAST.max_attempts * 3


def test_policy_rules() -> None:
    p = ReconnectPolicy(jitter=0.0, initial_backoff=0.5, max_backoff=2.0)
    assert [p.delay(i) for i in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    assert p.recoverable(ConnectionClosed(1006))
    assert p.recoverable(ConnectionClosed(1011))
    assert not p.recoverable(ConnectionClosed(1007))
    assert not p.recoverable(ConnectionClosed(1008))
    assert not p.recoverable(ConnectionClosed(1000))
    assert not p.recoverable(AuthenticationError("x"))
    assert not p.recoverable(HandshakeError("rate", status=429))
    assert p.recoverable(HandshakeError("bad gateway", status=502))
    assert p.recoverable(ConnectionRefused("down"))
    b = Behaviour()
    assert b.idle_timeout_s  # the simulator's default idle close is on


@pytest.mark.timeout(20)
def test_close_from_a_handler_when_the_server_never_answers() -> None:
    srv, t, opcodes = _silent_server()
    before = ours()
    closed: list[Closed] = []
    s = Session(
        FLASH, api_key=KEY, url=f"ws://127.0.0.1:{srv.getsockname()[1]}/", close_timeout=0.3
    )
    s.on_close(closed.append)
    s.on("session.updated", lambda e: s.close())  # runs on the dispatcher
    try:
        s.connect()
        s.wait(10)  # the close frame got no echo: the socket is aborted after close_timeout
    finally:
        srv.close()
        t.join(5)
    assert len(closed) == 1 and closed[0].error is None and not closed[0].by_server
    assert 0x8 in opcodes
    assert ours() == before


@pytest.mark.timeout(30)
def test_ask_fails_fast_when_the_connection_drops_during_it(sim: Simulator) -> None:
    sim.faults = Faults(drop_mid_response=True)
    s = make(sim, reconnect=FAST)
    back = threading.Event()
    s.on(Reconnected, lambda e: back.set())
    with s:
        with pytest.raises(ConnectionClosed) as info:
            s.ask(audio=synthesize("hi there", 16000), timeout=20)
        assert info.value.code == 1006
        assert back.wait(10)
        assert s.state == "open"


@pytest.mark.timeout(30)
def test_sends_never_block_when_the_network_does() -> None:
    """The server stops reading: the sender thread blocks, append_audio calls do not."""
    hold = threading.Event()
    srv, t, _ = _silent_server(hold)
    before = ours()
    s = Session(
        FLASH,
        api_key=KEY,
        url=f"ws://127.0.0.1:{srv.getsockname()[1]}/",
        send_backlog_bytes=8 * 1024 * 1024,
        close_timeout=0.5,
    )
    chunk = b"\x01\x02" * 16000  # 1 s at 16 kHz
    try:
        s.connect()
        with pytest.raises(SendBacklogFull, match="backlog"):
            for _ in range(2000):  # far more than the socket buffers hold
                s.append_audio(chunk)
        assert s.send_backlog > 7 * 1024 * 1024
        s.close()  # bounded although the sender is stuck in a send
    finally:
        hold.set()
        srv.close()
        t.join(5)
    assert ours() == before
