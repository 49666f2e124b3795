"""Reliability: the public Session against the simulator's fault injection, over real sockets.

For each fault: no hang (a timeout on every test), the right callback with the right payload,
every audio delta the simulator sent before the fault reached ``on_audio_delta`` in order, and
no thread left behind (``no_thread_leak``).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dashscope_rt import events as ev
from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectTimeout,
    ProtocolError,
    ServerError,
    SessionClosed,
)
from dashscope_rt.events import Closed
from dashscope_rt.session import Session
from dashscope_rt.testing import Behaviour, Faults, Simulator

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-reliability-test-key"
REPLY = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
LONG_REASON = (
    "The request was rejected because the free quota of this model has been exhausted; "
    "buy a plan or wait for the quota to reset. request_id=4c7f1e0a-8d1b-4c1e-9f57-2d5b8f0d1a33"
)
assert len(LONG_REASON.encode()) > 125

pytestmark = pytest.mark.usefixtures("no_thread_leak")


class Probe:
    """Records what a session's handlers saw, with events to wait on."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.audio: list[bytes] = []
        self.errors: list[BaseException] = []
        self.events: list[Any] = []
        self.closed: list[Closed] = []
        self.replies = 0
        self.got_audio = threading.Event()
        self.got_error = threading.Event()
        self.got_close = threading.Event()
        self.got_reply = threading.Event()
        self.audio_target = 1
        session.on_audio_delta(self._audio)
        session.on_error(self._error)
        session.on_close(self._close)
        session.on_event(self.events.append)
        session.on("response.done", self._done)

    def _audio(self, e: ev.ResponseAudioDelta) -> None:
        self.audio.append(e.audio)
        if len(self.audio) >= self.audio_target:
            self.got_audio.set()

    def _error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.got_error.set()

    def _close(self, c: Closed) -> None:
        self.closed.append(c)
        self.got_close.set()

    def _done(self, e: Any) -> None:
        self.replies += 1
        self.got_reply.set()


def sim_audio(sim: Simulator) -> list[bytes]:
    """The audio deltas the simulator actually sent on its last connection, in order."""
    return [base64.b64decode(e["delta"]) for e in sim.last.sent_events("response.audio.delta")]


@contextmanager
def session_on(
    sim: Simulator, *, manual: bool = True, **kw: Any
) -> Iterator[tuple[Session, Probe]]:
    kw.setdefault("close_timeout", 2.0)
    config = SessionConfig(turn_detection=None) if manual else SessionConfig()
    s = Session(FLASH, api_key=KEY, url=sim.url, config=config, **kw)
    probe = Probe(s)
    try:
        s.connect()
        yield s, probe
    finally:
        s.close()


def start_turn(s: Session, seconds: float = 0.3) -> None:
    s.append_audio(b"\x10\x00" * int(16000 * seconds), sample_rate=16000)
    s.commit()
    s.create_response()


def wait(flag: threading.Event, what: str, timeout: float = 10.0) -> None:
    assert flag.wait(timeout), f"timed out waiting for {what}"


# -- connection drops and server closes -------------------------------------------------------


@pytest.mark.timeout(20)
def test_drop_mid_response_reports_1006_and_keeps_the_audio_before_it() -> None:
    """The TCP connection is cut after a few audio deltas: on_close(1006), wait() raises."""
    with Simulator(api_key=KEY, faults=Faults(drop_after_events=20)) as sim:
        sim.script_replies([REPLY])
        with session_on(sim) as (s, probe):
            start_turn(s)
            wait(probe.got_close, "on_close")
            closed = probe.closed[0]
            assert closed.code == 1006 and closed.by_server
            assert isinstance(closed.error, ConnectionClosed)
            with pytest.raises(ConnectionClosed) as info:
                s.wait(5)
            assert info.value.code == 1006
            assert s.closed and s.close_info == closed
            sent = sim_audio(sim)
            assert sent, "the fault should come after some audio"
            assert probe.audio == sent
            assert probe.replies == 0


@pytest.mark.timeout(20)
def test_drop_right_after_the_first_delta() -> None:
    with Simulator(api_key=KEY, faults=Faults(drop_mid_response=True)) as sim:
        sim.script_replies([REPLY])
        with session_on(sim) as (s, probe):
            start_turn(s)
            wait(probe.got_close, "on_close")
            assert probe.closed[0].code == 1006
            assert probe.audio == sim_audio(sim)
            assert len(probe.closed) == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("code", [1006, 1007, 1011])
def test_server_close_with_a_reason_over_125_bytes(code: int) -> None:
    """The service sends over-long close reasons (an RFC violation): code and reason intact."""
    with Simulator(api_key=KEY, behaviour=Behaviour(speed=20.0)) as sim:
        sim.script_replies([REPLY])
        with session_on(sim) as (s, probe):
            probe.audio_target = 3
            start_turn(s)
            wait(probe.got_audio, "three audio deltas")
            sim.last.close(code, LONG_REASON)
            wait(probe.got_close, "on_close")
            closed = probe.closed[0]
            assert (closed.code, closed.reason, closed.by_server) == (code, LONG_REASON, True)
            with pytest.raises(ConnectionClosed) as info:
                s.wait(5)
            assert info.value.code == code and info.value.reason == LONG_REASON
            assert LONG_REASON in str(info.value)
            assert probe.audio == sim_audio(sim)
            assert len(probe.audio) >= 3


@pytest.mark.timeout(20)
def test_idle_close_gives_the_error_then_on_close() -> None:
    idle = Behaviour(idle_timeout_s=0.5)
    with Simulator(api_key=KEY, behaviour=idle) as sim, session_on(sim) as (s, probe):
        wait(probe.got_close, "on_close")
        errors = [e for e in probe.errors if isinstance(e, ServerError)]
        assert errors and "no response was generated" in errors[0].message
        closed = probe.closed[0]
        assert closed.by_server and closed.code == idle.idle_close_code
        with pytest.raises(SessionClosed):
            s.commit()


# -- odd frames and error events: the session goes on -----------------------------------------


def _malformed(sim: Simulator) -> None:
    sim.last.send_raw("{not json")


def _unknown(sim: Simulator) -> None:
    sim.last.send_raw('{"type":"response.brand_new_event","event_id":"e1","x":{"y":1}}')


def _error_event(sim: Simulator) -> None:
    sim.last.inject_error("Internal service error: null", code="internal_error")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("inject", "expect"),
    [
        pytest.param(_malformed, ProtocolError, id="malformed-json"),
        pytest.param(_unknown, ev.UnknownEvent, id="unknown-event-type"),
        pytest.param(_error_event, ServerError, id="error-event"),
    ],
)
def test_odd_frames_mid_response_are_reported_and_the_session_goes_on(
    inject: Any, expect: type
) -> None:
    with Simulator(api_key=KEY, behaviour=Behaviour(speed=20.0)) as sim:
        sim.script_replies([REPLY, "second turn"])
        with session_on(sim) as (s, probe):
            probe.audio_target = 2
            start_turn(s)
            wait(probe.got_audio, "audio")
            inject(sim)
            wait(probe.got_reply, "the reply to finish")
            if expect is ev.UnknownEvent:
                unknown = [e for e in probe.events if isinstance(e, ev.UnknownEvent)]
                assert unknown and unknown[0].type == "response.brand_new_event"
                assert unknown[0].raw["x"] == {"y": 1}
                assert not probe.errors
            else:
                wait(probe.got_error, "on_error")
                assert isinstance(probe.errors[0], expect)
                if expect is ServerError:
                    err = probe.errors[0]
                    assert isinstance(err, ServerError)
                    assert err.code == "internal_error" and not err.fatal
                else:
                    assert isinstance(probe.errors[0], ProtocolError)
                    assert probe.errors[0].frame in ("{not json", b"{not json")
            assert s.state == "open"
            assert probe.audio == sim_audio(sim)
            probe.got_reply.clear()
            start_turn(s)  # the session still works
            wait(probe.got_reply, "a second reply")
            assert probe.audio == sim_audio(sim)
        assert not probe.closed[0].by_server and probe.closed[0].error is None


@pytest.mark.timeout(20)
def test_error_event_for_a_request_reaches_on_error_typed() -> None:
    refusal = {
        "type": "invalid_request_error",
        "code": "bad_thing",
        "message": "nope",
        "param": "x",
    }
    faults = Faults(error_on={"response.create": refusal})
    with Simulator(api_key=KEY, faults=faults) as sim, session_on(sim) as (s, probe):
        start_turn(s)
        wait(probe.got_error, "on_error")
        err = probe.errors[0]
        assert isinstance(err, ServerError)
        assert (err.type, err.code, err.message, err.param) == (
            "invalid_request_error",
            "bad_thing",
            "nope",
            "x",
        )
        assert s.state == "open"


# -- slow peers, bad handlers -----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_slow_server_turn_completes_with_every_delta() -> None:
    with Simulator(api_key=KEY, faults=Faults(event_delay_s=0.01)) as sim:
        sim.script_replies(["a short slow answer"])
        with session_on(sim) as (s, probe):
            start_turn(s)
            wait(probe.got_reply, "the reply", 20)
            assert probe.audio and probe.audio == sim_audio(sim)


@pytest.mark.timeout(20)
def test_stalled_server_at_connect_is_a_connect_timeout() -> None:
    with Simulator(api_key=KEY, faults=Faults(stall=True)) as sim:
        s = Session(FLASH, api_key=KEY, url=sim.url, connect_timeout=0.5)
        with pytest.raises(ConnectTimeout):
            s.connect()
        assert s.closed
        with pytest.raises(SessionClosed):
            s.commit()


@pytest.mark.timeout(30)
def test_slow_handler_does_not_stop_the_connection() -> None:
    """A handler blocks for longer than the keepalive timeout: pings are still answered."""
    with Simulator(api_key=KEY) as sim:
        sim.script_replies([REPLY])
        stuck = threading.Event()  # never set: the handler waits out its full timeout
        with session_on(sim, ping_interval=0.1, ping_timeout=0.3) as (s, probe):

            def slow(e: ev.ResponseAudioDelta) -> None:
                if len(probe.audio) == 1:
                    stuck.wait(1.5)

            s.on_audio_delta(slow)
            start_turn(s)
            wait(probe.got_audio, "the first delta")
            # The handler holds the dispatcher for 1.5 s: five keepalive timeouts. Had it
            # blocked the reader, the pongs would go unread and the session would end (1006).
            wait(probe.got_reply, "the reply")
            assert not probe.closed
            assert probe.audio == sim_audio(sim)
            assert s.state == "open"


@pytest.mark.timeout(20)
def test_raising_handler_goes_to_on_error_and_the_session_goes_on() -> None:
    boom = RuntimeError("handler bug")
    with Simulator(api_key=KEY) as sim:
        sim.script_replies([REPLY])
        with session_on(sim) as (s, probe):
            calls: list[int] = []

            def bad(e: ev.ResponseAudioDelta) -> None:
                calls.append(1)
                if len(calls) == 2:
                    raise boom

            s.on_audio_delta(bad)
            start_turn(s)
            wait(probe.got_reply, "the reply")
            assert probe.errors == [boom]
            assert len(calls) == len(probe.audio)
            assert probe.audio == sim_audio(sim)
            assert s.state == "open"


@pytest.mark.timeout(20)
def test_close_from_a_handler_does_not_deadlock() -> None:
    with Simulator(api_key=KEY) as sim:
        sim.script_replies([REPLY])
        with session_on(sim) as (s, probe):
            returned = threading.Event()

            def closer(e: ev.ResponseAudioDelta) -> None:
                s.close()
                returned.set()

            s.on_audio_delta(closer)
            start_turn(s)
            wait(returned, "close() to return inside the handler")
            wait(probe.got_close, "on_close")
            closed = probe.closed[0]
            assert closed.code == 1000 and not closed.by_server and closed.error is None
            s.wait(5)  # a user close is not an error
            assert probe.audio and probe.audio == sim_audio(sim)[: len(probe.audio)]
            assert len(probe.closed) == 1
        rec = sim.last
        sim.wait_for(lambda: rec.closed.is_set())
        assert rec.closed_by == "client" and rec.close_code == 1000


@pytest.mark.timeout(20)
def test_send_after_close_raises_session_closed() -> None:
    with Simulator(api_key=KEY) as sim:
        with session_on(sim) as (s, probe):
            pass
        wait(probe.got_close, "on_close")
        for send in (
            lambda: s.append_audio(b"\x00\x00" * 1600, sample_rate=16000),
            s.commit,
            s.create_response,
            s.cancel_response,
            lambda: s.send_raw({"type": "response.create"}),
        ):
            with pytest.raises(SessionClosed):
                send()
        s.close()  # idempotent
        assert len(probe.closed) == 1


@pytest.mark.timeout(20)
def test_send_after_a_server_drop_raises_session_closed() -> None:
    with Simulator(api_key=KEY) as sim, session_on(sim) as (s, probe):
        sim.last.drop()
        wait(probe.got_close, "on_close")
        with pytest.raises(SessionClosed, match="1006"):
            s.commit()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("key", ["sk-wrong", "  sk-reliability-test-key-but-longer "])
def test_401_is_an_authentication_error_and_leaves_nothing(key: str) -> None:
    with Simulator(api_key=KEY) as sim:
        s = Session(FLASH, api_key=key, url=sim.url)
        with pytest.raises(AuthenticationError) as info:
            s.connect()
        assert info.value.status == 401
        assert "InvalidApiKey" in info.value.body
        assert s.closed
        assert sim.rejected and sim.rejected[-1].status == 401
