"""Phone calls: Twilio messages, G.711 into a Session, the pacer, and the bridge end to end.

The end-to-end tests run the sample's Flask app (``samples/twilio_bridge.py``) on a real port
against the simulator, and call it with a fake Twilio: a websocket-client that speaks the Media
Streams protocol, plays what it receives in real time (20 ms a frame) and echoes each mark once
the audio before it has "played", as Twilio does, or at once when a ``clear`` drops it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import runpy
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import ServerVAD, Session, SessionConfig
from dashscope_rt.audio import (
    alaw_encode,
    g711_silence,
    resample_pcm16,
    ulaw_decode,
    ulaw_encode,
)
from dashscope_rt.errors import AuthenticationError, InvalidInput, ProtocolError
from dashscope_rt.telephony import (
    CallReport,
    Connected,
    Dtmf,
    Mark,
    Media,
    OtherMessage,
    Pacer,
    Start,
    Stop,
    TwilioBridge,
    clear_message,
    mark_message,
    media_message,
    parse_message,
    phone_config,
)
from dashscope_rt.testing import Simulator, silence, synthesize, tone

pytest.importorskip("flask_sock")

import websocket
from werkzeug.serving import make_server

from samples.twilio_bridge import create_app, create_bridge

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-phone"
QWEN35 = "qwen3.5-omni-flash-realtime"
FLASH = "qwen3-omni-flash-realtime"
VAD_MS = 400
"""silence_duration_ms of the calls' VAD: "one VAD window" in the barge-in test."""
FRAME = 160  # 20 ms of 8 kHz G.711


# -- Twilio messages ------------------------------------------------------------------------------


def _start(sid: str = "MZ1", encoding: str = "audio/x-mulaw", **fmt: Any) -> str:
    media_format = {"encoding": encoding, "sampleRate": 8000, "channels": 1, **fmt}
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {
                "accountSid": "AC1",
                "streamSid": sid,
                "callSid": "CA1",
                "tracks": ["inbound"],
                "customParameters": {"who": "test"},
                "mediaFormat": media_format,
            },
        }
    )


def test_parse_every_message_twilio_sends() -> None:
    assert parse_message('{"event":"connected","protocol":"Call","version":"1.0.0"}') == Connected(
        protocol="Call", version="1.0.0"
    )
    start = parse_message(_start())
    assert start == Start(
        stream_sid="MZ1",
        call_sid="CA1",
        account_sid="AC1",
        tracks=("inbound",),
        custom_parameters={"who": "test"},
        encoding="ulaw",
        sample_rate=8000,
        channels=1,
    )
    assert isinstance(parse_message(_start(encoding="audio/x-alaw")), Start)
    media = parse_message(
        json.dumps(
            {
                "event": "media",
                "streamSid": "MZ1",
                "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": "/38="},
            }
        )
    )
    assert media == Media(stream_sid="MZ1", payload=b"\xff\x7f", chunk=2, timestamp=40)
    assert parse_message('{"event":"mark","streamSid":"MZ1","mark":{"name":"a#1"}}') == Mark(
        stream_sid="MZ1", name="a#1"
    )
    assert parse_message(
        '{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"7"}}'
    ) == Dtmf(stream_sid="MZ1", digit="7")
    assert parse_message('{"event":"stop","streamSid":"MZ1","stop":{"callSid":"CA1"}}') == Stop(
        stream_sid="MZ1", call_sid="CA1"
    )
    other = parse_message('{"event":"future","x":1}')
    assert isinstance(other, OtherMessage) and other.event == "future"


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        ("not json", "not JSON"),
        ("[1]", "without an 'event'"),
        ('{"event":"media","streamSid":"MZ1","media":{"payload":"@@"}}', "not base64"),
        ('{"event":"media","streamSid":"MZ1"}', "without a 'media' object"),
        ('{"event":"media","media":{"payload":""}}', "without a streamSid"),
        (_start(encoding="audio/l16"), "'audio/l16' is not G.711"),
        (_start(channels=2), "unsupported mediaFormat"),
    ],
)
def test_malformed_messages_are_protocol_errors(frame: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_message(frame)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_any_frame_parses_or_is_a_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(frame)


@given(st.text(min_size=1, max_size=40), st.binary(max_size=400), st.text(max_size=40))
def test_outbound_messages_round_trip(sid: str, payload: bytes, name: str) -> None:
    media = json.loads(media_message(sid, payload))
    assert media["event"] == "media" and media["streamSid"] == sid
    assert base64.b64decode(media["media"]["payload"]) == payload
    assert parse_message(mark_message(sid, name)) == Mark(stream_sid=sid, name=name)
    assert json.loads(clear_message(sid)) == {"event": "clear", "streamSid": sid}


# -- G.711 into a Session, and the 8 kHz native path ----------------------------------------------


def test_phone_config_uses_8k_natively_only_where_the_model_takes_it() -> None:
    cfg = phone_config(QWEN35, SessionConfig(voice="Tina"))
    assert (cfg.input_rate(QWEN35), cfg.output_rate(QWEN35), cfg.voice) == (8000, 8000, "Tina")
    assert phone_config(FLASH) == SessionConfig()
    mine = SessionConfig(output_sample_rate=24000)
    assert phone_config(QWEN35, mine).output_rate(QWEN35) == 24000  # the caller's choice wins


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def _appended(sim: Simulator) -> bytes:
    events = sim.last.received_events("input_audio_buffer.append")
    return b"".join(base64.b64decode(e["audio"]) for e in events)


@pytest.mark.timeout(20)
def test_mu_law_goes_in_without_resampling_on_qwen35_at_8k(sim: Simulator) -> None:
    pcm = synthesize("hello from the phone", 8000)
    mulaw = ulaw_encode(pcm)
    cfg = phone_config(QWEN35, SessionConfig(turn_detection=None))
    with Session(QWEN35, api_key=KEY, url=sim.url, config=cfg) as s:
        for i in range(0, len(mulaw), FRAME):
            s.append_audio(mulaw[i : i + FRAME], encoding="ulaw")  # 8 kHz by default
        s.commit()
        sim.wait_for(lambda: "input_audio_buffer.commit" in sim.last.received_types())
    assert sim.last.session is not None
    assert sim.last.session["audio"]["input"]["format"]["sample_rate"] == 8000
    assert _appended(sim) == ulaw_decode(mulaw)


@pytest.mark.timeout(20)
def test_a_law_is_resampled_to_16k_on_other_models(sim: Simulator) -> None:
    pcm = tone(1000, 8000, freq=300.0)
    with Session(FLASH, api_key=KEY, url=sim.url, config=SessionConfig(turn_detection=None)) as s:
        s.append_audio(alaw_encode(pcm), 8000, encoding="alaw")
        s.commit()
        sim.wait_for(lambda: "input_audio_buffer.commit" in sim.last.received_types())
        with pytest.raises(InvalidInput, match="'gsm' is not one of 'pcm16', 'ulaw', 'alaw'"):
            s.append_audio(b"\x00", encoding="gsm")
    sent = np.frombuffer(_appended(sim), "<i2").astype(np.float64)
    assert abs(len(sent) - 16000) <= 2
    ref = np.frombuffer(resample_pcm16(pcm, 8000, 16000), "<i2").astype(np.float64)
    n = min(len(sent), len(ref)) - 400
    assert np.corrcoef(sent[400:n], ref[400:n])[0, 1] > 0.99


# -- the pacer -------------------------------------------------------------------------------------


def test_pacer_sends_frames_then_marks_in_order_and_nothing_queued_after_a_clear() -> None:
    sent: list[dict[str, Any]] = []
    done = threading.Event()

    def send(text: str) -> None:
        sent.append(json.loads(text))
        if sent[-1]["event"] == "mark" and sent[-1]["mark"]["name"] == "first":
            done.set()

    pacer = Pacer(send, "MZ9", frame_bytes=4, frame_ms=20, lead_ms=0)
    pacer.start()
    try:
        pacer.put_audio(b"\x01" * 8)
        pacer.put_mark("first")
        assert done.wait(5)
        pacer.put_audio(b"\x02" * 400)  # 2 s at real-time pace: mostly still queued
        pacer.put_mark("second")
        assert pacer.pending
        dropped = pacer.clear()
    finally:
        pacer.stop()
    kinds = [m["event"] for m in sent]
    assert kinds[:3] == ["media", "media", "mark"]
    assert dropped == ["second"]
    assert kinds[-1] == "clear" and kinds.count("clear") == 1
    assert kinds.count("media") < 2 + 100
    assert all(m["streamSid"] == "MZ9" for m in sent)
    assert not pacer.pending


# -- the bridge, end to end ------------------------------------------------------------------------


def tone_transcriber(pcm: bytes, rate: int) -> str:
    """Names the caller by the pitch of the tone they "said" (to the nearest 50 Hz)."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    hz = float(np.argmax(spectrum)) * rate / len(x)
    return f"caller at {int(round(hz / 50.0) * 50)} hertz"


def expected_mu_law(text: str) -> bytes:
    """What a call hears for ``text`` on a qwen3.5 model at 8 kHz: the simulator's speech, μ-law,
    with the last frame filled with silence."""
    mulaw = ulaw_encode(synthesize(text, 8000))
    return mulaw + g711_silence("ulaw", -len(mulaw) % FRAME)


class FakeTwilio:
    """A Twilio Media Streams client over a real socket (see the module docstring)."""

    def __init__(self, url: str, sid: str = "MZtest") -> None:
        self.sid = sid
        self.ws = websocket.create_connection(url, timeout=10)
        self.ws.settimeout(0.01)
        self.cond = threading.Condition()
        self.messages: list[dict[str, Any]] = []
        self.frames_sent = 0
        self._send_lock = threading.Lock()
        self._play_end = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self._closed = False
        self.gone = threading.Event()
        """Set when the bridge closed the socket."""
        self._reader = threading.Thread(target=self._read, name="fake-twilio", daemon=True)
        self._reader.start()
        self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.ws.send(_start(sid))

    def _send(self, message: dict[str, Any] | str) -> None:
        with self._send_lock:
            self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def _read(self) -> None:
        while not self._closed:
            try:
                text = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                text = None
            except Exception:
                self.gone.set()
                return
            now = time.monotonic()
            if text:
                self._receive(json.loads(text), now)
            due = [name for at, name in self._pending_marks if at <= now]
            self._pending_marks = [(at, n) for at, n in self._pending_marks if at > now]
            for name in due:
                self._echo(name)

    def _receive(self, msg: dict[str, Any], now: float) -> None:
        assert msg.get("streamSid") == self.sid, msg
        if msg["event"] == "media":
            self._play_end = max(self._play_end, now) + 0.02
        elif msg["event"] == "mark":
            self._pending_marks.append((self._play_end, msg["mark"]["name"]))
        elif msg["event"] == "clear":
            for _, name in self._pending_marks:
                self._echo(name)
            self._pending_marks, self._play_end = [], now
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def _echo(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self._send({"event": "mark", "streamSid": self.sid, "mark": {"name": name}})

    def say(
        self, pcm16: bytes, *, pace: bool = False, until: Callable[[], bool] | None = None
    ) -> int:
        """Send 8 kHz audio as 20 ms μ-law media messages; return the frames sent.

        ``pace``: one frame per 20 ms, as a phone does. ``until``: stop early once it is true.
        """
        mulaw = ulaw_encode(pcm16)
        start = time.monotonic()
        sent = 0
        for i in range(0, len(mulaw), FRAME):
            if until is not None and until():
                break
            if pace:
                time.sleep(max(0.0, start + sent * 0.02 - time.monotonic()))
            payload = base64.b64encode(mulaw[i : i + FRAME]).decode()
            self.frames_sent += 1
            media = {"track": "inbound", "chunk": str(self.frames_sent), "payload": payload}
            self._send({"event": "media", "streamSid": self.sid, "media": media})
            sent += 1
        return sent

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; received {self.kinds()[-5:]}"
                self.cond.wait(min(left, 0.05))

    def kinds(self) -> list[str]:
        with self.cond:
            return [m["event"] for m in self.messages]

    def audio(self, between_clears: int | None = None) -> bytes:
        """The μ-law received; with ``between_clears=k``, only what came between the k-th and
        the (k+1)-th clear (0: before the first)."""
        with self.cond:
            msgs = list(self.messages)
        segments: list[list[bytes]] = [[]]
        for m in msgs:
            if m["event"] == "clear":
                segments.append([])
            elif m["event"] == "media":
                segments[-1].append(base64.b64decode(m["media"]["payload"]))
        if between_clears is None:
            return b"".join(b"".join(seg) for seg in segments)
        return b"".join(segments[between_clears]) if between_clears < len(segments) else b""

    def idle(self) -> bool:
        """True once the last message was a mark and every mark has been echoed."""
        with self.cond:
            last = self.messages[-1]["event"] if self.messages else None
        return last == "mark" and not self._pending_marks

    def stop(self) -> None:
        self._send({"event": "stop", "streamSid": self.sid, "stop": {"callSid": "CA1"}})
        self.close()

    def vanish(self) -> None:
        """Drop the TCP connection without a closing handshake (a network failure)."""
        self._closed = True
        sock = self.ws.sock
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self._reader.join(5)

    def close(self) -> None:
        self._closed = True
        self._reader.join(5)
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)
        # close() leaves the socket open when the server closed first.
        self.ws.shutdown()  # type: ignore[no-untyped-call]


class Bridge:
    """The sample's app on a real port, with the reports of finished calls."""

    def __init__(self, sim: Simulator, model: str, api_key: str = KEY, **vad: Any) -> None:
        self.reports: list[CallReport] = []
        self.done = threading.Condition()
        config = SessionConfig(turn_detection=ServerVAD(silence_duration_ms=VAD_MS, **vad))
        self.bridge: TwilioBridge = create_bridge(
            model, url=sim.url, api_key=api_key, config=config, on_call_end=self._ended
        )
        self.server = make_server("127.0.0.1", 0, create_app(self.bridge), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="bridge-http")
        self.thread.start()
        self.url = f"ws://127.0.0.1:{self.server.server_port}/media"

    def _ended(self, report: CallReport) -> None:
        with self.done:
            self.reports.append(report)
            self.done.notify_all()

    def wait_reports(self, n: int, timeout: float = 15.0) -> list[CallReport]:
        with self.done:
            assert self.done.wait_for(lambda: len(self.reports) >= n, timeout), self.reports
            return list(self.reports)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def phone_sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY, transcriber=tone_transcriber) as s:
        yield s


@pytest.fixture
def bridge(phone_sim: Simulator, request: pytest.FixtureRequest) -> Iterator[Bridge]:
    b = Bridge(phone_sim, getattr(request, "param", QWEN35))
    yield b
    b.shutdown()


def question(hz: float) -> bytes:
    return tone(600, 8000, freq=hz) + silence(VAD_MS + 400, 8000)


@pytest.mark.timeout(40)
def test_a_spoken_question_gets_a_spoken_mu_law_answer_at_8k(
    phone_sim: Simulator, bridge: Bridge
) -> None:
    call = FakeTwilio(bridge.url)
    answer = expected_mu_law("You said: caller at 450 hertz")
    call.say(question(450))
    call.wait_for(lambda: len(call.audio()) >= len(answer))
    call.wait_for(call.idle)
    # A second turn after the whole answer was heard: nothing to interrupt, so no clear.
    second = expected_mu_law("You said: caller at 700 hertz")
    call.say(question(700))
    call.wait_for(lambda: len(call.audio()) >= len(answer) + len(second))
    call.wait_for(call.idle)
    call.stop()
    [report] = bridge.wait_reports(1)
    assert call.audio() == answer + second  # bit-exact: no resampling anywhere at 8 kHz
    kinds = call.kinds()
    assert "clear" not in kinds and report.clears == 0
    assert kinds[0] == "media" and kinds[-1] == "mark"
    deltas = phone_sim.last.sent_events("response.audio.delta")
    assert len(deltas) <= kinds.count("mark") <= len(deltas) + 2  # one per chunk (+ each tail)
    session = phone_sim.last.session
    assert session is not None and session["audio"]["output"]["format"]["sample_rate"] == 8000
    assert report.end == "stop" and report.stream_sid == "MZtest" and report.call_sid == "CA1"
    assert report.frames_out == (len(answer) + len(second)) // FRAME
    assert sorted(report.heard_ms.values()) == sorted(
        [len(answer) // FRAME * 20, len(second) // FRAME * 20]
    )
    assert phone_sim.last.closed.wait(5) and bridge.bridge.active_calls == 0


@pytest.mark.timeout(40)
@pytest.mark.parametrize("bridge", [FLASH], indirect=True)
def test_other_models_are_resampled_both_ways(phone_sim: Simulator, bridge: Bridge) -> None:
    call = FakeTwilio(bridge.url)
    text = "You said: caller at 450 hertz"
    reference = resample_pcm16(synthesize(text, 24000), 24000, 8000)
    call.say(question(450))
    call.wait_for(lambda: len(call.audio()) >= len(reference) // 2 - FRAME)
    call.wait_for(call.idle)
    call.stop()
    bridge.wait_reports(1)
    got = np.frombuffer(ulaw_decode(call.audio()), "<i2").astype(np.float64)
    want = np.frombuffer(reference, "<i2").astype(np.float64)
    assert abs(len(got) - len(want)) <= FRAME
    n = min(len(got), len(want))
    assert np.corrcoef(got[:n], want[:n])[0, 1] > 0.99
    # The transcriber heard the right pitch through μ-law and 8 -> 16 kHz resampling.
    assert phone_sim.last.sent_events("response.audio_transcript.done")[0]["transcript"] == text


def _barge_in(call: FakeTwilio, first_reply: str) -> bytes:
    """Talk over the first reply once half a second of it came; return what came before the
    clear, after checking the clear came within one VAD window of speech."""
    call.say(question(450))
    call.wait_for(lambda: call.kinds().count("media") >= 25)
    barge = tone(3000, 8000, freq=600.0)
    frames = call.say(barge, pace=True, until=lambda: "clear" in call.kinds())
    assert "clear" in call.kinds()
    assert frames <= VAD_MS // 20  # the clear came within one VAD window of speech
    before = call.audio(between_clears=0)
    full = expected_mu_law(first_reply)
    assert full.startswith(before) and len(before) < len(full)
    call.say(silence(VAD_MS + 400, 8000))
    return before


def _check_barge_in_report(call: FakeTwilio, report: CallReport, before: bytes) -> None:
    assert call.kinds().count("clear") == report.clears == 1
    [cut] = report.interrupted
    heard = report.heard_ms.get(cut, 0)
    assert 0 < heard <= len(before) // FRAME * 20  # what the marks said the caller heard


LONG_REPLY = "Let me tell you a long story about the weather. "


@pytest.mark.timeout(40)
def test_barge_in_clears_within_one_vad_window_and_drops_the_buffered_reply(
    phone_sim: Simulator, bridge: Bridge
) -> None:
    """The simulator sent the whole reply at once: the bridge holds most of it, and drops it."""
    phone_sim.script_replies([LONG_REPLY * 6, "Sure, go ahead."])
    call = FakeTwilio(bridge.url)
    before = _barge_in(call, LONG_REPLY * 6)
    after = expected_mu_law("Sure, go ahead.")
    call.wait_for(lambda: len(call.audio(between_clears=1)) >= len(after))
    call.wait_for(call.idle)
    call.stop()
    [report] = bridge.wait_reports(1)
    assert call.audio(between_clears=1) == after  # only the new reply after the clear
    _check_barge_in_report(call, report, before)


@pytest.mark.timeout(60)
def test_barge_in_drops_the_rest_of_a_reply_the_server_keeps_streaming() -> None:
    """A server that does not stop the reply (interrupt_response=False) and streams it in real
    time: its later deltas reach the bridge after the barge-in and must not reach the caller."""
    with Simulator(api_key=KEY, transcriber=tone_transcriber, realtime=True) as sim:
        b = Bridge(sim, QWEN35, interrupt_response=False)
        try:
            sim.script_replies([LONG_REPLY * 2, "Sure, go ahead."])
            call = FakeTwilio(b.url)
            before = _barge_in(call, LONG_REPLY * 2)
            sim.wait_for(lambda: "response.done" in sim.last.sent_types(), timeout=20)
            call.say(question(700))  # the old reply is over: now the next turn gets an answer
            after = expected_mu_law("Sure, go ahead.")
            call.wait_for(lambda: len(call.audio(between_clears=1)) >= len(after), timeout=20)
            call.wait_for(call.idle)
            call.stop()
            [report] = b.wait_reports(1)
        finally:
            b.shutdown()
    assert call.audio(between_clears=1) == after
    _check_barge_in_report(call, report, before)


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _wait_threads_back(baseline: set[threading.Thread], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _threads() - baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _threads() - baseline, sorted(t.name for t in _threads() - baseline)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("how", ["stop", "vanish"])
def test_hanging_up_mid_reply_closes_the_session_and_leaves_no_thread(
    phone_sim: Simulator, bridge: Bridge, how: str
) -> None:
    phone_sim.script_replies(["A long answer that the caller will not wait for. " * 5])
    baseline = _threads()
    call = FakeTwilio(bridge.url)
    call.say(question(450))
    call.wait_for(lambda: call.kinds().count("media") >= 10)
    conn = phone_sim.last
    getattr(call, how)()
    [report] = bridge.wait_reports(1)
    assert report.end == ("stop" if how == "stop" else "hangup")
    assert conn.closed.wait(5) and conn.closed_by == "client"
    _wait_threads_back(baseline)
    assert bridge.bridge.active_calls == 0
    # ...and the bridge takes the next call.
    again = FakeTwilio(bridge.url, sid="MZnext")
    again.say(question(300))
    again.wait_for(
        lambda: len(again.audio()) >= len(expected_mu_law("You said: caller at 300 hertz"))
    )
    again.stop()
    assert bridge.wait_reports(2)[1].end == "stop"


@pytest.mark.timeout(90)
def test_twenty_concurrent_calls_each_get_their_own_answer(
    phone_sim: Simulator, bridge: Bridge
) -> None:
    n = 20
    pitches = [400 + 50 * i for i in range(n)]
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            call = FakeTwilio(bridge.url, sid=f"MZ{i:02d}")
            answer = expected_mu_law(f"You said: caller at {pitches[i]} hertz")
            call.say(question(pitches[i]))
            call.wait_for(lambda: len(call.audio()) >= len(answer), timeout=60)
            call.stop()
            results[i] = call.audio()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(80)
    assert not errors, errors[0]
    for i in range(n):
        assert results[i] == expected_mu_law(f"You said: caller at {pitches[i]} hertz"), i
    reports = bridge.wait_reports(n)
    assert sorted(r.stream_sid for r in reports) == sorted(f"MZ{i:02d}" for i in range(n))
    assert all(r.end == "stop" and r.clears == 0 for r in reports)
    assert bridge.bridge.active_calls == 0


def test_twiml_points_twilio_at_the_media_socket(bridge: Bridge) -> None:
    client = create_app(bridge.bridge).test_client()
    body = client.post("/twiml", headers={"Host": "bot.example.com"}).get_data(as_text=True)
    assert '<Connect><Stream url="wss://bot.example.com/media" /></Connect>' in body


@pytest.mark.timeout(60)
def test_the_sample_runs_from_the_command_line(phone_sim: Simulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--port", str(port), "--url", phone_sim.url, "--api-key", KEY, "--model", QWEN35]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "samples" / "twilio_bridge.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    ended = threading.Event()

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if "call CA1 ended (stop)" in line:
                ended.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "".join(log)
                time.sleep(0.1)
        call = FakeTwilio(f"ws://127.0.0.1:{port}/media")
        answer = expected_mu_law("You said: caller at 450 hertz")
        call.say(question(450))
        call.wait_for(lambda: len(call.audio()) >= len(answer))
        call.stop()
        assert call.audio() == answer
        assert ended.wait(10), "".join(log)  # the sample logs each call's end
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)


@pytest.mark.timeout(40)
def test_malformed_and_unknown_messages_do_not_end_the_call(
    phone_sim: Simulator, bridge: Bridge
) -> None:
    call = FakeTwilio(bridge.url)
    call._send("not json at all")
    call._send({"event": "media", "streamSid": call.sid, "media": {"payload": "@@@"}})
    call._send({"event": "dtmf", "streamSid": call.sid, "dtmf": {"digit": "5"}})
    call._send({"event": "something-new", "streamSid": call.sid})
    answer = expected_mu_law("You said: caller at 450 hertz")
    call.say(question(450))
    call.wait_for(lambda: len(call.audio()) >= len(answer))
    call.stop()
    assert call.audio() == answer
    assert bridge.wait_reports(1)[0].end == "stop"


@pytest.mark.timeout(40)
def test_the_service_ending_the_session_ends_the_call(phone_sim: Simulator, bridge: Bridge) -> None:
    call = FakeTwilio(bridge.url)
    call.say(silence(200, 8000))
    conn = phone_sim.last
    # Audio reaching the service means the session is open.
    phone_sim.wait_for(lambda: "input_audio_buffer.append" in conn.received_types())
    conn.close(1011, "internal error")
    assert call.gone.wait(10)  # the bridge hung up the stream
    [report] = bridge.wait_reports(1)
    assert report.end == "session"
    call.close()
    assert bridge.bridge.active_calls == 0


@pytest.mark.timeout(40)
def test_a_refused_key_ends_the_call_with_the_error(phone_sim: Simulator) -> None:
    b = Bridge(phone_sim, QWEN35, api_key="sk-wrong")
    try:
        call = FakeTwilio(b.url)
        assert call.gone.wait(10)
        [report] = b.wait_reports(1)
    finally:
        b.shutdown()
    call.close()
    assert report.end == "error" and isinstance(report.error, AuthenticationError)


@pytest.mark.timeout(40)
def test_the_readme_phone_snippet_serves_a_call(phone_sim: Simulator, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Phone calls", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    target = f'url="{phone_sim.url}", api_key="{KEY}", '
    code = code.replace("config=Sess", target + "config=Sess")
    assert target in code
    module = tmp_path / "readme_phone.py"
    module.write_text(code)
    namespace = runpy.run_path(str(module), run_name="readme_phone")
    server = make_server("127.0.0.1", 0, namespace["app"], threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="readme-http")
    thread.start()
    try:
        call = FakeTwilio(f"ws://127.0.0.1:{server.server_port}/media")
        answer = expected_mu_law("You said: caller at 450 hertz")
        call.say(question(450))
        call.say(silence(500, 8000))  # the README's VAD waits for the default 800 ms
        call.wait_for(lambda: len(call.audio()) >= len(answer))
        call.stop()
        assert call.audio() == answer
    finally:
        server.shutdown()
        thread.join(10)
