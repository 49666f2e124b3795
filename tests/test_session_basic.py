"""Session against the simulator over real sockets: turns, ask(), handlers, sending, closing."""

from __future__ import annotations

import base64
import gc
import io
import logging
import threading
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from dashscope_rt import events as ev
from dashscope_rt.config import ServerVAD, SessionConfig
from dashscope_rt.errors import (
    AuthenticationError,
    InvalidInput,
    ServerError,
    SessionClosed,
    UnsupportedByModel,
)
from dashscope_rt.events import Closed
from dashscope_rt.reply import Reply
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator, silence, synthesize

FLASH = "qwen3-omni-flash-realtime"
PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-5ecret-k3y-do-not-leak"
MANUAL = SessionConfig(turn_detection=None)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, model: str = FLASH, **kw: Any) -> Session:
    kw.setdefault("api_key", KEY)
    kw.setdefault("close_timeout", 2.0)
    return Session(model, url=sim.url, **kw)


def speech(text: str = "hello there, how are you today", rate: int = 16000) -> bytes:
    return synthesize(text, rate)


def baseline() -> set[threading.Thread]:
    """The SDK's threads now (the simulator's own threads are not counted)."""
    return {t for t in threading.enumerate() if t.name.startswith("dashscope_rt")}


# -- construction and connecting --------------------------------------------------------------


def test_missing_key_is_a_clear_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(InvalidInput, match="DASHSCOPE_API_KEY"):
        Session(FLASH)


def test_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    with Session(FLASH, url=sim.url) as s:
        assert s.session_id
    assert sim.last.headers.get("Authorization", "").startswith("Bearer")


def test_unsupported_config_is_refused_at_construction() -> None:
    with pytest.raises(UnsupportedByModel):
        Session("qwen-omni-turbo-realtime", api_key=KEY, tools=[len])


@pytest.mark.timeout(20)
def test_connect_applies_the_config_and_close_leaves_no_thread(sim: Simulator) -> None:
    before = baseline()
    cfg = SessionConfig(instructions="Be brief.", turn_detection=ServerVAD(silence_duration_ms=500))
    s = make(sim, config=cfg, workspace="ws-123")
    assert s.state == "new"
    s.connect()
    assert s.state == "open"
    assert s.session_id and s.session_id.startswith("sess")
    assert s.config is not None and s.config.instructions == "Be brief."
    names = {t.name for t in baseline() - before}
    assert {n.rsplit("-", 1)[0] for n in names} >= {
        "dashscope_rt-reader",
        "dashscope_rt-dispatch",
        "dashscope_rt-sender",
    }
    sent = sim.last.received_events("session.update")[0]["session"]
    assert sent["instructions"] == "Be brief."
    assert sent["turn_detection"]["silence_duration_ms"] == 500
    assert sim.last.workspace == "ws-123"
    s.close()
    s.close()  # idempotent
    assert s.closed and s.state == "closed"
    assert baseline() - before == set()
    rec = sim.last
    sim.wait_for(lambda: rec.closed_by)
    assert rec.closed_by == "client" and rec.close_code == 1000


# -- voice turns ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_vad_voice_turn_end_to_end(sim: Simulator) -> None:
    """Mic-like 48 kHz stereo float32 in 20 ms blocks; the server VAD ends the turn."""
    audio: list[bytes] = []
    seen: list[str] = []
    done = threading.Event()
    replies: list[Reply] = []
    with make(sim) as s:
        s.on_audio_delta(lambda e: audio.append(e.audio))
        s.on_speech_started(lambda e: seen.append("started"))
        s.on_speech_stopped(lambda e: seen.append("stopped"))
        s.on_transcript_delta(lambda e: seen.append("transcript"))
        s.on_input_transcript(lambda e: seen.append("input:" + (e.transcript or "")))

        @s.on_response_done
        def finished(reply: Reply) -> None:
            replies.append(reply)
            done.set()

        pcm = speech() + silence(1500)
        mono = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        up = np.interp(np.arange(len(mono) * 3) / 3.0, np.arange(len(mono)), mono)
        stereo = np.stack([up, up], axis=1).astype(np.float32)
        for i in range(0, len(stereo), 960):  # 20 ms at 48 kHz
            s.append_audio(stereo[i : i + 960], sample_rate=48000, channels=2)
        assert done.wait(15)
        reply = replies[0]
    assert seen[:2] == ["started", "stopped"]
    assert any(x.startswith("input:") for x in seen) and "transcript" in seen
    assert audio and b"".join(audio) == reply.audio
    assert reply.sample_rate == 24000 and reply.text
    assert reply.metrics.speech_end_to_first_audio_ms is not None
    assert reply.metrics.created_to_first_audio_ms is not None
    assert reply.usage is not None and reply.usage.total_tokens
    appends = sim.last.received_events("input_audio_buffer.append")
    sizes = {len(base64.b64decode(a["audio"])) for a in appends[:-1]}
    assert sizes == {3200}  # 100 ms at 16 kHz
    assert [h.role for h in s.history] == ["user", "assistant"]
    assert s.metrics and s.metrics[-1].response_id == reply.response_id


@pytest.mark.timeout(30)
def test_manual_turn(sim: Simulator) -> None:
    done = threading.Event()
    got: list[Reply] = []
    with make(sim, config=MANUAL) as s:

        @s.on_response_done
        def finished(r: Reply) -> None:
            got.append(r)
            done.set()

        s.append_audio(speech())
        s.commit()
        s.create_response()
        assert done.wait(10)
        assert s.active_response is None
    types = sim.last.received_types()
    assert types.index("input_audio_buffer.commit") < types.index("response.create")
    assert got[0].audio and got[0].status == "completed"
    assert got[0].metrics.committed_to_first_audio_ms is not None


@pytest.mark.timeout(30)
def test_ask_in_manual_mode(sim: Simulator) -> None:
    with make(sim, config=MANUAL) as s:
        reply = s.ask(audio=speech(), timeout=10)
        second = s.ask(audio=speech("and now something else"), timeout=10)
    assert reply.audio and reply.text and reply.usage is not None
    assert second.response_id != reply.response_id
    with wave.open(io.BytesIO(reply.to_wav())) as w:
        assert w.getframerate() == 24000 and w.getnframes() == len(reply.audio) // 2
    assert "<audio" in reply._repr_html_()
    assert sim.last.received_types().count("response.create") == 2


@pytest.mark.timeout(30)
def test_ask_in_vad_mode_lets_the_server_end_the_turn(sim: Simulator) -> None:
    with make(sim) as s:
        reply = s.ask(audio=speech(), timeout=10)
    types = sim.last.received_types()
    assert "input_audio_buffer.commit" not in types and "response.create" not in types
    assert reply.audio and reply.metrics.speech_stopped_at is not None


@pytest.mark.timeout(30)
def test_ask_with_text_and_image(sim: Simulator) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buf, "JPEG")
    with make(sim, PLUS, config=MANUAL) as s:
        reply = s.ask(text="What is this?", image=buf.getvalue(), timeout=10)
    assert "64x48" in reply.text
    types = sim.last.received_types()
    # an image needs audio before it: silence was appended first
    assert types.index("input_audio_buffer.append") < types.index("input_image_buffer.append")


def test_text_input_is_refused_where_the_model_has_none(sim: Simulator) -> None:
    with make(sim) as s:
        with pytest.raises(UnsupportedByModel):
            s.send_text("hi")
        with pytest.raises(UnsupportedByModel):
            s.ask(text="hi")


@pytest.mark.timeout(30)
def test_send_text_on_qwen35(sim: Simulator) -> None:
    done = threading.Event()
    with make(sim, PLUS) as s:
        s.on_response_done(lambda r: done.set())
        s.send_text("hello in text")
        assert done.wait(10)
        assert s.last_reply is not None and "hello in text" in s.last_reply.text
        assert s.history[0].role == "user" and s.history[0].text == "hello in text"


def test_append_image_checks(sim: Simulator) -> None:
    with make(sim) as s:
        with pytest.raises(InvalidInput, match="JPEG"):
            s.append_image(b"\x89PNG\r\n\x1a\n" + b"0" * 10)
        with pytest.raises(InvalidInput, match="too large"):
            s.append_image(b"\xff\xd8\xff" + b"0" * 200_000)


# -- handlers ---------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_raising_handler_goes_to_on_error_and_the_session_goes_on(sim: Simulator) -> None:
    errors: list[BaseException] = []
    with make(sim, config=MANUAL) as s:

        @s.on(ev.ResponseAudioDelta)
        def boom(e: ev.ResponseAudioDelta) -> None:
            raise ValueError("handler bug")

        s.on_error(errors.append)
        first = s.ask(audio=speech(), timeout=10)
        s.off(boom)
        count = len(errors)
        second = s.ask(audio=speech(), timeout=10)
    assert first.audio and second.audio
    assert count > 0 and all(isinstance(e, ValueError) for e in errors)
    assert len(errors) == count  # off() removed it


@pytest.mark.timeout(30)
def test_a_handler_added_between_turns_gets_the_next_turns_events(sim: Simulator) -> None:
    """Handlers are routed per event class once seen; a later registration still counts."""
    late: list[ev.ResponseAudioDelta] = []
    with make(sim, config=MANUAL) as s:
        s.on_audio_delta(lambda e: None)
        s.ask(audio=speech(), timeout=10)  # the route for audio deltas is made here
        s.on_audio_delta(late.append)
        second = s.ask(audio=speech(), timeout=10)
    assert late and b"".join(e.audio for e in late) == second.audio


@pytest.mark.timeout(30)
def test_raising_handler_is_logged_with_traceback_by_default(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    with make(sim, config=MANUAL) as s:
        s.on("response.done", lambda e: 1 / 0)
        s.ask(audio=speech(), timeout=10)
    assert "ZeroDivisionError" in caplog.text and "Traceback" in caplog.text


@pytest.mark.timeout(30)
def test_handler_errors_raise_ends_the_session(sim: Simulator) -> None:
    closed: list[Closed] = []
    s = make(sim, config=MANUAL, handler_errors="raise")
    s.on_close(closed.append)
    s.on_response_done(lambda r: (_ for _ in ()).throw(KeyError("fatal handler")))
    s.connect()
    s.append_audio(speech())
    s.commit()
    s.create_response()
    with pytest.raises(KeyError, match="fatal handler"):
        s.wait(10)
    assert len(closed) == 1 and isinstance(closed[0].error, KeyError)


@pytest.mark.timeout(30)
def test_close_from_inside_a_handler(sim: Simulator) -> None:
    before = baseline()
    closed: list[Closed] = []
    s = make(sim, config=MANUAL)
    s.on_close(closed.append)
    s.on_audio_delta(lambda e: s.close())
    s.connect()
    s.append_audio(speech())
    s.commit()
    s.create_response()
    s.wait(10)
    s.close()
    assert len(closed) == 1
    assert closed[0].code == 1000 and not closed[0].by_server and closed[0].error is None
    assert baseline() - before == set()
    with pytest.raises(SessionClosed):
        s.commit()


@pytest.mark.timeout(20)
def test_sending_before_connect_or_after_close_raises(sim: Simulator) -> None:
    s = make(sim)
    with pytest.raises(SessionClosed, match="not connected"):
        s.append_audio(silence(100))
    s.connect()
    s.close()
    for call in (
        lambda: s.append_audio(silence(100)),
        s.commit,
        s.create_response,
        lambda: s.send_raw({"type": "response.cancel"}),
    ):
        with pytest.raises(SessionClosed, match="closed"):
            call()
    with pytest.raises(SessionClosed):
        s.connect()


@pytest.mark.timeout(30)
def test_events_iterator_and_on_event(sim: Simulator) -> None:
    every: list[str] = []
    with make(sim, config=MANUAL) as s:
        s.on_event(lambda e: every.append(e.type))
        s.append_audio(speech())
        s.commit()
        s.create_response()
        types = []
        for e in s.events(timeout=5):
            types.append(e.type)
            if e.type == "response.done":
                break
    assert "response.audio.delta" in types and types[-1] == "response.done"
    assert every[-1] == "sdk.closed" and "response.done" in every


@pytest.mark.timeout(30)
def test_update_merges_and_waits(sim: Simulator) -> None:
    with make(sim, config=SessionConfig(instructions="one", voice="Cherry")) as s:
        s.update(SessionConfig(instructions="two"))
        assert s.config is not None and s.config.instructions == "two"
        last = sim.last.received_events("session.update")[-1]["session"]
        assert last["instructions"] == "two" and last["voice"] == "Cherry"
        sim.last.faults.error_on = {
            "session.update": {"type": "invalid_request_error", "message": "nope"}
        }
        with pytest.raises(ServerError, match="nope"):
            s.update(SessionConfig(instructions="three"), timeout=5)
        assert s.requested_config.instructions == "two"
        assert s.state == "open"


@pytest.mark.timeout(30)
def test_sends_from_8_threads_arrive_intact(sim: Simulator) -> None:
    per_thread = 40
    with make(sim, config=MANUAL) as s:
        start = threading.Barrier(8)

        def worker(k: int) -> None:
            start.wait(5)
            for j in range(per_thread):
                pcm = np.full(160, k * 1000 + j, dtype="<i2").tobytes()
                s.send_raw(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(pcm).decode(),
                    }
                )

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        rec = sim.last
        sim.wait_for(
            lambda: len(rec.received_events("input_audio_buffer.append")) >= 8 * per_thread, 10
        )
    values = [
        np.frombuffer(base64.b64decode(e["audio"]), dtype="<i2")
        for e in rec.received_events("input_audio_buffer.append")
    ]
    assert all(len(v) == 160 and (v == v[0]).all() for v in values)
    by_thread: dict[int, list[int]] = {}
    for v in values:
        by_thread.setdefault(int(v[0]) // 1000, []).append(int(v[0]) % 1000)
    assert by_thread == {k: list(range(per_thread)) for k in range(8)}


@pytest.mark.timeout(30)
def test_server_error_event_reaches_on_error_and_is_not_fatal(sim: Simulator) -> None:
    errors: list[BaseException] = []
    got = threading.Event()
    with make(sim, config=MANUAL) as s:

        @s.on_error
        def on_error(e: BaseException) -> None:
            errors.append(e)
            got.set()

        sim.last.inject_error("Conversation has none active response", type="invalid_request_error")
        assert got.wait(5)
        assert s.state == "open"
        assert s.ask(audio=speech(), timeout=10).audio
    err = errors[0]
    assert isinstance(err, ServerError) and not err.fatal
    assert err.type == "invalid_request_error" and "none active" in err.message


@pytest.mark.timeout(30)
def test_rejected_request_in_ask_raises_the_server_error(sim: Simulator) -> None:
    with make(sim, config=MANUAL) as s:
        sim.last.faults.error_on = {
            "response.create": {"type": "invalid_request_error", "message": "refused here"}
        }
        with pytest.raises(ServerError, match="refused here"):
            s.ask(audio=speech(), timeout=10)
        assert s.state == "open"


@pytest.mark.timeout(20)
def test_end_sends_session_finish(sim: Simulator) -> None:
    closed = threading.Event()
    s = make(sim)
    s.on_close(lambda c: closed.set())
    s.connect()
    s.end(timeout=5)
    assert closed.is_set() and s.closed
    assert "session.finish" in sim.last.received_types()


@pytest.mark.timeout(20)
def test_end_just_closes_where_session_finish_is_refused(sim: Simulator) -> None:
    s = make(sim, PLUS)
    s.connect()
    s.end(timeout=5)
    assert s.closed and "session.finish" not in sim.last.received_types()


# -- secrets and cleanup ----------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_key_is_absent_from_reprs_logs_and_errors(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    s = make(sim, config=MANUAL)
    texts += [repr(s), str(vars(s)), repr(s._engine.__dict__)]
    with s:
        texts.append(repr(s))
        reply = s.ask(audio=speech(), timeout=10)
        texts += [repr(reply), repr(s.config), repr(s.requested_config)]
    with pytest.raises(AuthenticationError) as info:
        Session(FLASH, api_key="sk-wrong-" + KEY, url=sim.url).connect()
    # the client side only: the simulator's server library logs request headers at DEBUG
    client_logs = "\n".join(
        r.getMessage() + str(r.exc_info or "")
        for r in caplog.records
        if not r.name.startswith("websockets")
    )
    assert any(r.name.startswith("dashscope_rt") for r in caplog.records)
    texts += [str(info.value), repr(info.value), repr(info.value.__dict__), client_logs]
    joined = "\n".join(texts)
    assert "5ecret" not in joined and KEY not in joined
    assert "Bearer" not in client_logs


@pytest.mark.timeout(20)
def test_unreferenced_session_is_finalised(sim: Simulator) -> None:
    before = baseline()
    s = make(sim)
    s.connect()
    engine = s._engine
    del s
    gc.collect()
    assert engine.closed_event.wait(5)
    for t in baseline() - before:
        t.join(5)
    assert baseline() - before == set()


@pytest.mark.timeout(30)
def test_barge_in_during_a_reply() -> None:
    from dashscope_rt.conversation import BargeIn

    replies: list[Reply] = []
    barge: list[BargeIn] = []
    first_audio = threading.Event()
    two_done = threading.Event()
    with Simulator(api_key=KEY, realtime=2.0) as sim:
        s = make(sim)  # server VAD
        s.on_audio_delta(lambda e: first_audio.set())
        s.on(BargeIn, barge.append)

        @s.on_response_done
        def finished(r: Reply) -> None:
            replies.append(r)
            if len(replies) == 2:
                two_done.set()

        with s:
            s.append_audio(speech("tell me a long story about the sea") + silence(1000))
            assert first_audio.wait(10)
            assert s.active_response is not None
            s.append_audio(speech("stop, wait a moment") + silence(1000))
            assert two_done.wait(20)
    assert len(barge) == 1 and barge[0].response_id == replies[0].response_id
    assert replies[0].status != "completed" and replies[1].status == "completed"
    assert len(replies[0].audio) < len(replies[1].audio) or replies[0].audio


@pytest.mark.timeout(20)
def test_on_close_with_three_arguments_and_off(sim: Simulator) -> None:
    got: list[tuple[Any, ...]] = []
    removed: list[Any] = []

    def closed(code: int | None, reason: str, by_server: bool) -> None:
        got.append((code, reason, by_server))

    s = make(sim)
    s.on_close(closed)
    s.on_close(removed.append)
    assert s.off(removed.append) == 1
    s.connect()
    sim.last.close(1000, "done here")
    s.wait(10)
    assert got == [(1000, "done here", True)] and removed == []


@pytest.mark.timeout(30)
def test_cancel_response_and_clear_audio() -> None:
    replies: list[Reply] = []
    audio = threading.Event()
    cleared = threading.Event()
    with Simulator(api_key=KEY, realtime=2.0) as sim:
        s = make(sim, config=MANUAL)
        s.on_audio_delta(lambda e: audio.set())
        s.on("input_audio_buffer.cleared", lambda e: cleared.set())
        s.on_response_done(replies.append)
        with s:
            s.append_audio(speech("this will be thrown away"))
            s.clear_audio()
            assert cleared.wait(5)
            s.append_audio(speech("tell me a long story"))
            s.commit()
            s.create_response()
            assert audio.wait(10)
            s.cancel_response()
            sim.wait_for(lambda: replies, 10)
            rec = sim.last
    assert replies[0].status != "completed"
    types = rec.received_types()
    assert "input_audio_buffer.clear" in types and "response.cancel" in types


# -- usage errors ------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_blocking_calls_from_a_handler_raise_the_usage_error(sim: Simulator) -> None:
    from dashscope_rt.errors import BlockingCallInHandler, UsageError

    raised: list[BaseException] = []
    done = threading.Event()
    with make(sim, config=MANUAL) as s:

        @s.on_response_done
        def inside(reply: Reply) -> None:
            for call in (lambda: s.ask(text="x"), lambda: s.wait(1)):
                try:
                    call()
                except Exception as exc:
                    raised.append(exc)
            done.set()

        s.ask(audio=speech(), timeout=10)
        assert done.wait(5)
    assert len(raised) == 2
    assert all(isinstance(e, BlockingCallInHandler) for e in raised)
    assert all(isinstance(e, UsageError) and isinstance(e, RuntimeError) for e in raised)


@pytest.mark.timeout(20)
def test_ask_checks_its_argument_types(sim: Simulator) -> None:
    from dashscope_rt.errors import InvalidType

    with make(sim, model=PLUS, config=MANUAL) as s:
        with pytest.raises(InvalidType, match="text must be a str") as info:
            s.ask(text=b"\x00\x01pcm")  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError) and isinstance(info.value, InvalidInput)
        with pytest.raises(InvalidType, match="audio must be"):
            s.ask(audio="not audio")
        with pytest.raises(InvalidType, match="image must be"):
            s.ask(image="x.jpg")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="needs text"):
            s.ask()
        assert s.state == "open" and sim.last.received_types().count("response.create") == 0
