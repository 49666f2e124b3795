"""Unit tests of the sans-IO conversation state (no sockets)."""

from __future__ import annotations

import base64
import io
import json
import logging
import wave
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashscope_rt import events as ev
from dashscope_rt.conversation import (
    AssistantTranscript,
    BargeIn,
    ConfigApplied,
    Conversation,
    CreateFailed,
    Notice,
    ReplyInterrupted,
    ResponseFinished,
    ResponseStarted,
    SessionReady,
    ToolCallsReady,
    UserTranscript,
)
from dashscope_rt.errors import InvalidInput
from dashscope_rt.models import get_model
from dashscope_rt.reply import Reply, ToolCall

FLASH = get_model("qwen3-omni-flash-realtime")
PLUS = get_model("qwen3.5-omni-plus-realtime")
RID = "resp_HaVOPdbmX6vifiV5pAfJY"
MSG = "item_Ls6MtCUWO7LM4E59QziNv"
USER = "item_YbAiGvK2H7YaS34o4R6Ba"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def dec(d: dict[str, Any]) -> Any:
    return ev.decode(json.dumps(d))


def pcm(n_samples: int, value: int = 1000) -> bytes:
    return value.to_bytes(2, "little", signed=True) * n_samples


def ids(rid: str = RID, item: str = MSG) -> dict[str, Any]:
    return {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0}


SESSION: dict[str, Any] = {
    "id": "sess_Ov7GOXoNXhNjlxXtOGKQS",
    "object": "realtime.session",
    "model": "qwen3-omni-flash-realtime",
    "modalities": ["text", "audio"],
    "voice": "Cherry",
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.5,
        "silence_duration_ms": 800,
        "create_response": True,
        "interrupt_response": True,
    },
}


def session_events() -> list[dict[str, Any]]:
    return [
        {"event_id": "e1", "type": "session.created", "session": SESSION},
        {"event_id": "e2", "type": "session.updated", "session": SESSION},
    ]


def response_created(rid: str = RID) -> dict[str, Any]:
    return {
        "type": "response.created",
        "response": {"id": rid, "object": "realtime.response", "status": "in_progress"},
    }


def response_done(rid: str = RID, status: str = "completed", output: Any = None) -> dict[str, Any]:
    return {
        "type": "response.done",
        "response": {
            "id": rid,
            "status": status,
            "output": output or [],
            "usage": {
                "total_tokens": 377,
                "input_tokens": 336,
                "output_tokens": 41,
                "input_tokens_details": {"text_tokens": 228, "audio_tokens": 108},
                "output_tokens_details": {"text_tokens": 9, "audio_tokens": 32},
            },
        },
    }


CHUNKS = [pcm(2400, 100), pcm(2400, 200), pcm(1200, 300)]


def vad_turn(rid: str = RID, user: str = USER) -> list[tuple[float, dict[str, Any]]]:
    """A VAD audio turn as (clock time, event) pairs, in the documented order."""
    msg_item = {"id": MSG, "type": "message", "role": "assistant", "status": "in_progress"}
    done_item = {
        "id": MSG,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "audio", "transcript": "你好呀！有什么"}],
    }
    return [
        (
            0.5,
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 3647, "item_id": user},
        ),
        (1.0, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 4453, "item_id": user}),
        (1.05, {"type": "input_audio_buffer.committed", "item_id": user}),
        (
            1.06,
            {
                "type": "conversation.item.created",
                "item": {
                    "id": user,
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_audio"}],
                },
            },
        ),
        (
            1.1,
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": user,
                "content_index": 0,
                "text": "喂，",
                "stash": "你好",
            },
        ),
        (1.2, response_created(rid)),
        (
            1.21,
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": msg_item,
            },
        ),
        (1.22, {"type": "conversation.item.created", "item": msg_item}),
        (
            1.23,
            {
                "type": "response.content_part.added",
                **ids(rid),
                "part": {"type": "audio", "text": ""},
            },
        ),
        (1.5, {"type": "response.audio_transcript.delta", **ids(rid), "delta": "你好呀！"}),
        (
            1.6,
            {
                "type": "response.audio.delta",
                **ids(rid),
                "delta": base64.b64encode(CHUNKS[0]).decode(),
            },
        ),
        (
            1.7,
            {
                "type": "response.audio.delta",
                **ids(rid),
                "delta": base64.b64encode(CHUNKS[1]).decode(),
            },
        ),
        (1.75, {"type": "response.audio_transcript.delta", **ids(rid), "delta": "有什么"}),
        (
            1.8,
            {
                "type": "response.audio.delta",
                **ids(rid),
                "delta": base64.b64encode(CHUNKS[2]).decode(),
            },
        ),
        (
            1.85,
            {"type": "response.audio_transcript.done", **ids(rid), "transcript": "你好呀！有什么"},
        ),
        (1.86, {"type": "response.audio.done", **ids(rid)}),
        (
            1.87,
            {
                "type": "response.content_part.done",
                **ids(rid),
                "part": {"type": "audio", "text": "你好呀！有什么"},
            },
        ),
        (
            1.88,
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": 0,
                "item": done_item,
            },
        ),
        (
            1.9,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": user,
                "content_index": 0,
                "transcript": "喂，你好。",
            },
        ),
        (2.0, response_done(rid, output=[done_item])),
    ]


def feed(
    conv: Conversation,
    clock: FakeClock,
    seq: list[tuple[float, dict[str, Any]]],
    base: float = 100.0,
) -> list[Notice]:
    out: list[Notice] = []
    for t, d in seq:
        clock.t = base + t
        out.extend(conv.receive(dec(d)))
    return out


def of(notices: list[Notice], kind: type) -> list[Any]:
    return [n for n in notices if isinstance(n, kind)]


@pytest.fixture
def conv_clock() -> tuple[Conversation, FakeClock]:
    clock = FakeClock()
    conv = Conversation(FLASH, clock=clock)
    for d in session_events():
        conv.receive(dec(d))
    return conv, clock


def test_session_events_give_ready_and_config() -> None:
    conv = Conversation(FLASH, clock=FakeClock())
    first = conv.receive(dec(session_events()[0]))
    second = conv.receive(dec(session_events()[1]))
    assert first == [SessionReady("sess_Ov7GOXoNXhNjlxXtOGKQS")]
    assert len(second) == 1 and isinstance(second[0], ConfigApplied)
    assert second[0].session["voice"] == "Cherry"
    assert conv.session_id == "sess_Ov7GOXoNXhNjlxXtOGKQS"
    assert conv.session["turn_detection"]["silence_duration_ms"] == 800
    assert conv.output_rate == 24000


def test_vad_audio_turn_gives_one_reply(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    notices = feed(conv, clock, vad_turn())
    assert of(notices, ResponseStarted) == [ResponseStarted(RID)]
    finished = of(notices, ResponseFinished)
    assert len(finished) == 1
    assert not of(notices, ToolCallsReady)
    assert not of(notices, BargeIn)
    reply: Reply = finished[0].reply
    assert reply is conv.last_reply
    assert reply.response_id == RID
    assert reply.status == "completed"
    assert reply.transcript == "你好呀！有什么"
    assert reply.text == reply.transcript
    assert reply.audio == b"".join(CHUNKS)
    assert reply.sample_rate == 24000
    assert reply.user_transcript == "喂，你好。"
    assert reply.usage is not None and reply.usage.total_tokens == 377
    m = reply.metrics
    assert m is conv.metrics[-1]
    assert m.speech_end_to_first_audio_ms == pytest.approx(600.0)
    assert m.committed_to_first_audio_ms == pytest.approx(550.0)
    assert m.created_to_first_text_ms == pytest.approx(300.0)
    assert m.created_to_first_audio_ms == pytest.approx(400.0)
    assert m.total_ms == pytest.approx(800.0)
    assert m.audio_out_ms == pytest.approx(6000 / 24000 * 1000)
    assert m.usage == reply.usage
    assert reply.duration == pytest.approx(0.25)
    assert conv.active_response_id is None
    assert conv.can_create_response()


def test_vad_turn_transcripts_and_history(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    notices = feed(conv, clock, vad_turn())
    user = of(notices, UserTranscript)
    assert user == [
        UserTranscript(USER, "喂，你好", False),
        UserTranscript(USER, "喂，你好。", True),
    ]
    assistant = of(notices, AssistantTranscript)
    assert [a.delta for a in assistant if not a.final] == ["你好呀！", "有什么"]
    assert assistant[-1].final and assistant[-1].text == "你好呀！有什么"
    assert [(h.role, h.item_id, h.text, h.final) for h in conv.history] == [
        ("user", USER, "喂，你好。", True),
        ("assistant", MSG, "你好呀！有什么", True),
    ]


def test_late_user_transcript_goes_before_the_answer(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    seq = [p for p in vad_turn() if "transcription" not in p[1]["type"]]
    feed(conv, clock, seq[:-1])
    late = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": USER,
        "transcript": "喂，你好。",
    }
    conv.receive(dec(late))
    conv.receive(dec(seq[-1][1]))
    assert [h.role for h in conv.history] == ["user", "assistant"]
    assert conv.last_reply is not None and conv.last_reply.user_transcript == "喂，你好。"


def test_reply_wav_samples_and_html(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    feed(conv, clock, vad_turn())
    reply = conv.last_reply
    assert reply is not None
    with wave.open(io.BytesIO(reply.to_wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.readframes(w.getnframes()) == reply.audio
    samples = reply.samples
    assert samples.dtype.itemsize == 2 and len(samples) == 6000
    assert int(samples[0]) == 100 and int(samples[-1]) == 300
    html_text = reply._repr_html_()
    assert "<audio controls" in html_text and "data:audio/wav;base64," in html_text
    assert "你好呀！有什么" in html_text
    text = repr(reply)
    assert len(text) < 200 and "\\x" not in text and RID in text


def test_reply_html_escapes_text() -> None:
    reply = Reply(response_id="r", status="completed", text="<b>&x</b>")
    assert "<b>&x" not in reply._repr_html_()
    assert "&lt;b&gt;&amp;x" in reply._repr_html_()
    assert "<audio" not in reply._repr_html_()


def test_text_only_manual_turn(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    manual = {**SESSION, "modalities": ["text"], "turn_detection": None}
    conv.receive(dec({"type": "session.updated", "session": manual}))
    clock.t = 200.0
    conv.sent(ev.InputAudioBufferAppend(audio=pcm(1600)))
    conv.sent(ev.InputAudioBufferCommit())
    conv.sent(ev.ResponseCreate(), event_id="ev_create")
    assert conv.audio_bytes_sent == 3200
    assert conv.response_pending and not conv.can_create_response()
    rid = "resp_PrRSvPVpnCExdUOGHHLuP"
    item = "item_L8IRm9kRXFpxoOjDqDC96"
    seq = [
        (0.1, {"type": "input_audio_buffer.committed", "item_id": USER}),
        (0.3, response_created(rid)),
        (0.7, {"type": "response.text.delta", **ids(rid, item), "delta": "How can"}),
        (0.8, {"type": "response.text.delta", **ids(rid, item), "delta": " I help?"}),
        (0.9, {"type": "response.text.done", **ids(rid, item), "text": "How can I help?"}),
        (1.0, response_done(rid)),
    ]
    notices = feed(conv, clock, seq[:2], base=200.0)
    assert not conv.response_pending and conv.active_response_id == rid
    assert not conv.can_create_response()
    notices += feed(conv, clock, seq[2:], base=200.0)
    (finished,) = of(notices, ResponseFinished)
    reply = finished.reply
    assert reply.text == "How can I help?" and reply.transcript == ""
    assert reply.audio == b"" and reply.duration == 0.0
    m = reply.metrics
    assert m.speech_stopped_at is None and m.speech_end_to_first_audio_ms is None
    assert m.first_audio_at is None and m.created_to_first_audio_ms is None
    assert m.created_to_first_text_ms == pytest.approx(400.0)
    assert m.committed_at == pytest.approx(200.1)
    assert m.audio_out_ms == 0.0
    assert conv.can_create_response()


def test_qwen35_nested_output_rate() -> None:
    clock = FakeClock()
    conv = Conversation(PLUS, clock=clock)
    sess = {"id": "s", "audio": {"output": {"format": {"type": "pcm", "sample_rate": 48000}}}}
    conv.receive(dec({"type": "session.updated", "session": sess}))
    assert conv.output_rate == 48000
    rid = "r1"
    seq = [
        (0.0, response_created(rid)),
        (
            0.1,
            {
                "type": "response.audio.delta",
                **ids(rid),
                "delta": base64.b64encode(pcm(4800)).decode(),
            },
        ),
        (0.2, response_done(rid)),
    ]
    notices = feed(conv, clock, seq)
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.sample_rate == 48000
    assert finished.reply.metrics.audio_out_ms == pytest.approx(100.0)


def tool_call_turn(rid: str = "resp_JnTOsWXlFhKcFohZbtfz6") -> list[tuple[float, dict[str, Any]]]:
    calls = [
        ("item_A", "call_2be200f4cafe419b9530dd", "get_current_weather", ' {"location": "北京"}'),
        ("item_B", "call_bc0a7fb7235840f69ecfe4", "get_time", ' {"tz": "Asia/Shanghai"}'),
    ]
    seq: list[tuple[float, dict[str, Any]]] = [(0.0, response_created(rid))]
    t = 0.0
    output = []
    for item_id, call_id, name, args in calls:
        added = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        done = {**added, "status": "completed", "arguments": args}
        output.append(done)
        t += 0.1
        seq += [
            (
                t,
                {
                    "type": "response.output_item.added",
                    "response_id": rid,
                    "output_index": 0,
                    "item": added,
                },
            ),
            (t, {"type": "conversation.item.created", "item": added}),
            (
                t,
                {
                    "type": "response.function_call_arguments.delta",
                    "response_id": rid,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "delta": args[:5],
                },
            ),
            (
                t,
                {
                    "type": "response.function_call_arguments.delta",
                    "response_id": rid,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "delta": args[5:],
                },
            ),
            (
                t,
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": rid,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "name": name,
                    "arguments": args,
                },
            ),
            (
                t,
                {
                    "type": "response.output_item.done",
                    "response_id": rid,
                    "output_index": 0,
                    "item": done,
                },
            ),
        ]
    seq.append((t + 0.1, response_done(rid, output=output)))
    return seq


def test_two_parallel_tool_calls_give_one_ready_notice() -> None:
    clock = FakeClock()
    conv = Conversation(PLUS, clock=clock)
    notices = feed(conv, clock, tool_call_turn())
    ready = of(notices, ToolCallsReady)
    assert len(ready) == 1
    calls = ready[0].calls
    assert [c.name for c in calls] == ["get_current_weather", "get_time"]
    assert [c.call_id for c in calls] == [
        "call_2be200f4cafe419b9530dd",
        "call_bc0a7fb7235840f69ecfe4",
    ]
    assert calls[0].parsed_arguments() == {"location": "北京"}
    assert calls[1].parsed_arguments() == {"tz": "Asia/Shanghai"}
    assert all(c.response_id == "resp_JnTOsWXlFhKcFohZbtfz6" for c in calls)
    assert [c.item_id for c in calls] == ["item_A", "item_B"]
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.tool_calls == calls
    assert notices.index(finished) < notices.index(ready[0])
    assert conv.can_create_response()


def test_tool_calls_from_response_done_only() -> None:
    """Calls that only appear in response.done's output are still collected."""
    clock = FakeClock()
    conv = Conversation(PLUS, clock=clock)
    seq = [p for p in tool_call_turn() if p[1]["type"] in ("response.created", "response.done")]
    notices = feed(conv, clock, seq)
    (ready,) = of(notices, ToolCallsReady)
    assert [c.parsed_arguments() for c in ready.calls] == [
        {"location": "北京"},
        {"tz": "Asia/Shanghai"},
    ]


def test_tool_follow_up_response_keeps_the_user_turn(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    seq = [
        p
        for p in vad_turn()
        if p[1]["type"].startswith(("input_audio_buffer", "conversation.item.input"))
    ]
    feed(conv, clock, seq)
    feed(conv, clock, tool_call_turn("r_tool"), base=102.0)
    conv.sent(ev.ConversationItemCreate.function_call_output("call_2be200f4cafe419b9530dd", "晴"))
    conv.sent(
        ev.ConversationItemCreate.function_call_output("call_bc0a7fb7235840f69ecfe4", "12:00")
    )
    conv.sent(ev.ResponseCreate())
    notices = feed(conv, clock, vad_turn("r_final")[5:], base=103.0)
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.response_id == "r_final"
    assert finished.reply.user_transcript == "喂，你好。"
    # The user-perceived latency spans the tool round trip.
    assert finished.reply.metrics.speech_end_to_first_audio_ms == pytest.approx(
        (104.6 - 101.0) * 1000
    )


def test_bad_tool_arguments_raise_invalid_input() -> None:
    call = ToolCall(call_id="c", name="get_weather", arguments=' {"location": ')
    with pytest.raises(InvalidInput) as info:
        call.parsed_arguments()
    assert "get_weather" in str(info.value) and '{"location": ' in str(info.value)
    assert ToolCall(call_id="c", name="n", arguments="").parsed_arguments() == {}


def start_audio_response(conv: Conversation, clock: FakeClock, rid: str = RID) -> None:
    seq = [
        (0.0, response_created(rid)),
        (0.1, {"type": "response.audio_transcript.delta", **ids(rid), "delta": "Once upon"}),
        (
            0.2,
            {
                "type": "response.audio.delta",
                **ids(rid),
                "delta": base64.b64encode(pcm(2400)).decode(),
            },
        ),
    ]
    feed(conv, clock, seq, base=clock.t)


def test_barge_in_without_response_done_finishes_after_grace(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    start_audio_response(conv, clock)
    assert conv.receiving_audio
    clock.t += 1.0
    notices = conv.receive(
        dec({"type": "input_audio_buffer.speech_started", "item_id": "item_next"})
    )
    assert notices == [BargeIn(RID)]
    assert conv.active_response_id == RID
    notices = feed(conv, clock, [(0.01, {"type": "response.audio.done", **ids()})], base=clock.t)
    assert not of(notices, ResponseFinished)
    deadline = conv.next_deadline()
    assert deadline is not None and deadline == pytest.approx(clock.t + conv.cancel_grace)
    assert conv.poll(clock.t + 0.1) == []
    notices = conv.poll(deadline)
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.status == "cancelled"
    assert finished.reply.transcript == "Once upon"
    assert len(finished.reply.audio) == 4800
    assert conv.can_create_response() and conv.next_deadline() is None
    # A late response.done for it is ignored: no second reply.
    assert conv.receive(dec(response_done(RID, status="cancelled"))) == []


def test_cancel_without_any_end_event_times_out(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    start_audio_response(conv, clock)
    conv.sent(ev.ResponseCancel())
    cancelled_at = clock.t
    assert conv.poll(cancelled_at + 4.9) == []
    assert conv.active_response_id == RID
    notices = conv.poll(cancelled_at + 5.0)
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.status == "cancelled"
    assert finished.reply.metrics.done_at == pytest.approx(cancelled_at + 5.0)
    assert conv.active_response_id is None


def test_cancel_timeout_counts_from_the_last_event(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    clock = FakeClock()
    conv = Conversation(FLASH, clock=clock, cancel_timeout=2.0)
    start_audio_response(conv, clock)
    conv.sent(ev.ResponseCancel())
    clock.t += 1.5
    conv.receive(dec({"type": "response.audio_transcript.delta", **ids(), "delta": " a time"}))
    assert conv.poll(clock.t + 1.9) == []
    assert len(of(conv.poll(clock.t + 2.0), ResponseFinished)) == 1


def test_cancel_with_response_done_uses_its_status(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    start_audio_response(conv, clock)
    conv.sent(ev.ResponseCancel())
    notices = conv.receive(dec({"type": "response.audio.done", **ids()}))
    notices += conv.receive(dec(response_done(RID, status="incomplete")))
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.status == "incomplete"
    assert finished.reply.usage is not None
    assert conv.poll(clock.t + 100) == []


def test_cancel_rejected_as_none_active_ends_the_response(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    start_audio_response(conv, clock)
    conv.sent(ev.ResponseCancel(), event_id="ev_cancel")
    err = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Conversation has none active response",
        },
    }
    (finished,) = of(conv.receive(dec(err)), ResponseFinished)
    assert finished.reply.status == "cancelled"


def test_barge_in_without_interrupt_response_keeps_the_response() -> None:
    clock = FakeClock()
    conv = Conversation(FLASH, clock=clock)
    sess = {**SESSION, "turn_detection": {**SESSION["turn_detection"], "interrupt_response": False}}
    conv.receive(dec({"type": "session.updated", "session": sess}))
    start_audio_response(conv, clock)
    assert conv.receive(dec({"type": "input_audio_buffer.speech_started"})) == []
    assert conv.next_deadline() is None
    assert conv.poll(clock.t + 60) == []
    assert conv.active_response_id == RID


def test_speech_started_when_idle_is_no_barge_in(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, _ = conv_clock
    assert conv.receive(dec({"type": "input_audio_buffer.speech_started", "item_id": USER})) == []


def test_response_done_without_created(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    notices = feed(
        conv,
        clock,
        [
            (
                0.0,
                response_done(
                    "r_orphan",
                    output=[
                        {
                            "type": "message",
                            "role": "assistant",
                            "content": [{"type": "text", "text": "hi"}],
                        }
                    ],
                ),
            )
        ],
    )
    assert of(notices, ResponseStarted) == [ResponseStarted("r_orphan")]
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.text == "hi"
    assert finished.reply.metrics.response_created_at is None
    assert finished.reply.metrics.created_to_first_text_ms is None
    assert conv.can_create_response()


def test_rejected_create_is_no_longer_pending(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, _ = conv_clock
    conv.sent(ev.ResponseCreate(event_id="ev_1"))
    assert not conv.can_create_response()
    err = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": "x",
            "message": "bad",
            "event_id": "ev_1",
        },
    }
    assert conv.receive(dec(err)) == [CreateFailed("ev_1", "bad")]
    assert conv.can_create_response()


def test_unrelated_error_keeps_create_pending_until_timeout(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    conv.sent(ev.ResponseCreate(), event_id="ev_2")
    # an error naming another request (error.event_id) leaves the create pending
    err = {
        "type": "error",
        "error": {"message": "Error append image before append audio.", "event_id": "ev_img"},
    }
    assert conv.receive(dec(err)) == []
    assert conv.response_pending
    assert conv.next_deadline() == pytest.approx(clock.t + conv.create_timeout)
    notices = conv.poll(clock.t + conv.create_timeout)
    assert len(notices) == 1 and isinstance(notices[0], CreateFailed)
    assert conv.can_create_response()


def test_sent_text_message_enters_history(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    conv.sent(ev.ConversationItemCreate.user_text("What is 2+2?"))
    assert [(h.role, h.item_id, h.text, h.final) for h in conv.history] == [
        ("user", None, "What is 2+2?", True)
    ]
    echo = {
        "type": "conversation.item.created",
        "item": {
            "id": "item_u1",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What is 2+2?"}],
        },
    }
    conv.receive(dec(echo))
    assert [(h.item_id, h.text) for h in conv.history] == [("item_u1", "What is 2+2?")]
    conv.sent(ev.ResponseCreate())
    notices = feed(
        conv,
        clock,
        [
            (0.0, response_created("r2")),
            (0.1, {"type": "response.text.delta", **ids("r2"), "delta": "4"}),
            (0.2, response_done("r2")),
        ],
    )
    (finished,) = of(notices, ResponseFinished)
    assert finished.reply.user_transcript == "What is 2+2?"
    assert [h.role for h in conv.history] == ["user", "assistant"]


def test_transcription_delta_openai_style() -> None:
    conv = Conversation(FLASH, clock=FakeClock())
    base = {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u"}
    conv.receive(dec({**base, "delta": "Hel"}))
    notices = conv.receive(dec({**base, "delta": "lo"}))
    assert notices == [UserTranscript("u", "Hello", False)]


def test_unknown_and_stray_events_do_not_raise(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, _ = conv_clock
    assert conv.receive(dec({"type": "rate_limits.updated", "rate_limits": []})) == []
    assert conv.receive(dec({"output": {"choices": [{"message": {"content": "x"}}]}})) == []
    assert conv.receive(object()) == []  # type: ignore[arg-type]
    # A done event without a response id and nothing open is ignored.
    assert conv.receive(dec({"type": "response.audio.done"})) == []
    assert conv.can_create_response()


def test_events_for_an_unknown_response_open_it(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, _ = conv_clock
    notices = conv.receive(dec({"type": "response.text.delta", **ids("r_x"), "delta": "a"}))
    assert notices[0] == ResponseStarted("r_x")
    assert conv.active_response_id == "r_x"
    notices = conv.receive(dec(response_created("r_y")))
    # The server moved on: the stale one is finished first.
    finished = of(notices, ResponseFinished)
    assert [f.reply.response_id for f in finished] == ["r_x"]
    assert finished[0].reply.status == "incomplete"
    assert conv.active_response_id == "r_y"


def test_finished_replies_do_not_accumulate_audio(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    for n in range(3):
        feed(conv, clock, vad_turn(f"r{n}", f"item_u{n}"), base=100.0 + 10 * n)
    assert len(conv.metrics) == 3
    assert conv.last_reply is not None and conv.last_reply.response_id == "r2"
    assert conv.last_reply.audio == b"".join(CHUNKS)
    assert [h.role for h in conv.history] == ["user", "assistant"] * 3


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_ALL_EVENTS = (
    [d for _, d in vad_turn()]
    + [d for _, d in tool_call_turn()]
    + [
        {"type": "error", "error": {"message": "Conversation has none active response"}},
        {"type": "input_audio_buffer.cleared"},
        {"type": "something.new", "x": 1},
        response_done("r_other", status="cancelled"),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(range(len(_ALL_EVENTS))),
    keep=st.lists(st.booleans(), min_size=len(_ALL_EVENTS), max_size=len(_ALL_EVENTS)),
    cancel_at=st.one_of(st.none(), st.integers(0, len(_ALL_EVENTS))),
)
def test_random_orders_never_fail(
    order: list[int], keep: list[bool], cancel_at: int | None
) -> None:
    records = _Records()
    logger = logging.getLogger("dashscope_rt.conversation")
    logger.addHandler(records)
    try:
        clock = FakeClock()
        conv = Conversation(PLUS, clock=clock)
        finished: list[str | None] = []
        for i, idx in enumerate(order):
            if i == cancel_at:
                conv.sent(ev.ResponseCancel())
            if not keep[idx]:
                continue
            clock.t += 0.05
            for n in conv.receive(dec(_ALL_EVENTS[idx])):
                assert isinstance(n, Notice)
                if isinstance(n, ResponseFinished):
                    finished.append(n.reply.response_id)
        for n in conv.poll(clock.t + 1000):
            if isinstance(n, ResponseFinished):
                finished.append(n.reply.response_id)
        assert len(finished) == len(set(finished)), "a response finished twice"
        for reply_id in finished:
            assert reply_id not in [conv.active_response_id]
        assert not records.records, [r.getMessage() for r in records.records]
    finally:
        logger.removeHandler(records)


def test_barge_in_while_finished_audio_is_still_playing(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    two_seconds = base64.b64encode(pcm(48000)).decode()
    seq = [
        (0.0, response_created("r_long")),
        (0.1, {"type": "response.audio.delta", **ids("r_long"), "delta": two_seconds}),
        (0.2, response_done("r_long")),
    ]
    feed(conv, clock, seq, base=300.0)
    assert conv.playing_until == pytest.approx(302.1)
    clock.t = 301.0
    barge, cut = conv.receive(dec({"type": "input_audio_buffer.speech_started"}))
    assert barge == BargeIn("r_long")
    # Without a player reporting, the clock says 0.9 s of the 2 s were played (from 300.1 s).
    assert isinstance(cut, ReplyInterrupted) and cut.reply is conv.last_reply
    assert cut.reply.interrupted and cut.reply.played_ms == pytest.approx(900.0)
    # The player was flushed: the next speech_started interrupts nothing.
    assert conv.receive(dec({"type": "input_audio_buffer.speech_started"})) == []
    feed(conv, clock, [(0.0, response_created("r2"))], base=310.0)
    feed(conv, clock, [(0.1, response_done("r2"))], base=310.0)
    clock.t = 312.0
    assert conv.receive(dec({"type": "input_audio_buffer.speech_started"})) == []


def test_cancel_sent_before_response_created(conv_clock: tuple[Conversation, FakeClock]) -> None:
    conv, clock = conv_clock
    conv.sent(ev.ResponseCreate())
    conv.sent(ev.ResponseCancel())
    cancelled_at = clock.t
    feed(conv, clock, [(0.1, response_created("r_c"))], base=cancelled_at)
    assert conv.active_response_id == "r_c"
    (finished,) = of(conv.poll(cancelled_at + 5.1), ResponseFinished)
    assert finished.reply.status == "cancelled"
    assert conv.can_create_response()


def test_out_of_order_metrics_are_none_not_negative() -> None:
    clock = FakeClock()
    conv = Conversation(FLASH, clock=clock)
    seq = [
        (
            0.1,
            {
                "type": "response.audio.delta",
                **ids("r_o"),
                "delta": base64.b64encode(pcm(10)).decode(),
            },
        ),
        (0.2, response_created("r_o")),
        (0.3, {"type": "input_audio_buffer.speech_stopped"}),
        (0.4, response_done("r_o")),
    ]
    notices = feed(conv, clock, seq)
    (finished,) = of(notices, ResponseFinished)
    m = finished.reply.metrics
    assert m.first_audio_at == pytest.approx(100.1)
    assert m.response_created_at is None
    assert m.created_to_first_audio_ms is None and m.speech_end_to_first_audio_ms is None
    # The late speech_stopped belongs to the next turn.
    feed(
        conv,
        clock,
        [
            (1.0, response_created("r_n")),
            (
                1.1,
                {
                    "type": "response.audio.delta",
                    **ids("r_n"),
                    "delta": base64.b64encode(pcm(10)).decode(),
                },
            ),
            (1.2, response_done("r_n")),
        ],
    )
    assert conv.metrics[-1].speech_end_to_first_audio_ms == pytest.approx(800.0)


def test_error_without_event_id_refuses_the_pending_create(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    """No text matching: an id-less error refuses the oldest request still unanswered."""
    conv, _ = conv_clock
    conv.sent(ev.ResponseCreate(), event_id="ev_c")
    err = {"type": "error", "error": {"type": "invalid_request_error", "message": "anything"}}
    assert conv.receive(dec(err)) == [CreateFailed("ev_c", "anything")]
    assert conv.can_create_response()


def test_error_without_event_id_goes_to_the_older_of_cancel_and_create(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    start_audio_response(conv, clock)
    conv.sent(ev.ResponseCancel(), event_id="ev_cancel", now=clock.t + 1)
    conv.sent(ev.ResponseCreate(), event_id="ev_create", now=clock.t + 2)
    err = {"type": "error", "error": {"message": "whatever the wording"}}
    (finished,) = of(conv.receive(dec(err), now=clock.t + 3), ResponseFinished)
    assert finished.reply.status == "cancelled"
    assert conv.response_pending  # the create is still waiting for its answer
    again = conv.receive(dec(err), now=clock.t + 4)
    assert again == [CreateFailed("ev_create", "whatever the wording")]


def test_mark_interrupted_updates_an_older_reply_and_a_reply_in_progress(
    conv_clock: tuple[Conversation, FakeClock],
) -> None:
    conv, clock = conv_clock
    conv.playback_tracked = True  # a player reports: no guesses from the clock
    one_second = base64.b64encode(pcm(24000)).decode()

    def reply(rid: str, words: str, base: float) -> None:
        feed(
            conv,
            clock,
            [
                (0.0, response_created(rid)),
                (0.1, {"type": "response.audio.delta", **ids(rid), "delta": one_second}),
                (0.1, {"type": "response.audio_transcript.delta", **ids(rid), "delta": words}),
                (0.2, response_done(rid)),
            ],
            base=base,
        )

    reply("r_a", "alpha beta gamma delta", 200.0)
    reply("r_b", "one two three four", 210.0)
    assert conv.receive(dec({"type": "input_audio_buffer.speech_started"})) == [BargeIn("r_b")]
    assert not conv.last_reply.interrupted  # type: ignore[union-attr]
    (cut,) = conv.mark_interrupted("r_a", 500.0)
    assert isinstance(cut, ReplyInterrupted)
    assert cut.reply.response_id == "r_a" and cut.reply.heard_transcript == "alpha beta"
    assert conv.last_reply is not None and conv.last_reply.response_id == "r_b"
    first = next(h for h in conv.history if h.text.startswith("alpha"))
    assert first.interrupted and first.heard_text == "alpha beta"
    assert conv.mark_interrupted("r_unknown", 10.0) == []
    # A response in progress keeps the figure until it finishes.
    feed(conv, clock, [(0.0, response_created("r_c"))], base=220.0)
    assert conv.mark_interrupted(None, 0.0) == []
    (finished, cut_c) = conv.receive(dec(response_done("r_c", status="cancelled")))
    assert isinstance(finished, ResponseFinished) and isinstance(cut_c, ReplyInterrupted)
    assert cut_c.reply.interrupted and cut_c.reply.played_ms == 0.0
