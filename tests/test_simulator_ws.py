"""The simulator over a real socket, driven by a plain websocket-client connection."""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
import pytest
import websocket

from dashscope_rt.errors import Timeout
from dashscope_rt.testing import Behaviour, Faults, Simulator, silence, synthesize

pytestmark = pytest.mark.timeout(30)

KEY = "sk-test"
FLASH = "qwen3-omni-flash-realtime"
Q35 = "qwen3.5-omni-flash-realtime"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


# Most tests here check the documented error wording, codes and params: the service sends
# them empty (docs/protocol.md §4.1), so they run with the documented alternative.
DOCUMENTED_ERRORS = Behaviour(error_ids="present")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    before = set(threading.enumerate())
    with Simulator(api_key=KEY, behaviour=attrs.evolve(DOCUMENTED_ERRORS)) as s:
        yield s
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left behind: {leaked}"


def connect(
    sim: Simulator, model: str = FLASH, key: str | None = KEY, **kw: Any
) -> websocket.WebSocket:
    headers = [f"Authorization: Bearer {key}"] if key is not None else []
    headers += kw.pop("extra_headers", [])
    return websocket.create_connection(sim.url_for(model), header=headers, timeout=10, **kw)


def send(ws: websocket.WebSocket, etype: str, **fields: Any) -> None:
    ws.send(json.dumps({"event_id": f"event_test{etype}", "type": etype, **fields}))


def recv(ws: websocket.WebSocket) -> dict[str, Any]:
    ev: dict[str, Any] = json.loads(ws.recv())
    return ev


def recv_until(ws: websocket.WebSocket, etype: str) -> list[dict[str, Any]]:
    out = []
    while True:
        ev = recv(ws)
        out.append(ev)
        if ev["type"] == etype:
            return out


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def is_subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def append(ws: websocket.WebSocket, pcm: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(pcm), chunk):
        send(ws, "input_audio_buffer.append", audio=b64(pcm[i : i + chunk]))


def start(sim: Simulator, model: str = FLASH, **session: Any) -> websocket.WebSocket:
    ws = connect(sim, model)
    assert recv(ws)["type"] == "session.created"
    if session:
        send(ws, "session.update", session=session)
        ev = recv(ws)
        assert ev["type"] == "session.updated", ev
    return ws


def manual_turn(ws: websocket.WebSocket, words: str = "hello there") -> list[dict[str, Any]]:
    append(ws, synthesize(words, 16000))
    send(ws, "input_audio_buffer.commit")
    return recv_until(ws, "conversation.item.input_audio_transcription.completed")


def make_jpeg(w: int = 640, h: int = 480, noise: bool = False) -> bytes:
    from PIL import Image

    if noise:
        arr = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(arr)
    else:
        img = Image.new("RGB", (w, h), (10, 120, 200))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


# ------------------------------------------------------------------ 1. handshake


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_bad_or_missing_key_is_401_with_json_body(sim: Simulator, key: str | None) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(sim, key=key)
    assert info.value.status_code == 401
    body = json.loads(info.value.resp_body or b"")
    assert body["code"] == "InvalidApiKey" and body["request_id"]
    assert sim.rejected[-1].status == 401
    assert "sk-wrong" not in json.dumps(sim.rejected[-1].headers)


def test_missing_model_is_400(sim: Simulator) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(sim.url, header=[f"Authorization: Bearer {KEY}"], timeout=5)
    assert info.value.status_code == 400
    assert "model" in json.loads(info.value.resp_body or b"")["message"]


def test_unknown_model_gets_error_then_close(sim: Simulator) -> None:
    ws = connect(sim, model="gpt-4o-realtime")
    ev = recv(ws)
    assert ev["type"] == "error" and ev["error"]["code"] == "model_not_found"
    opcode, frame = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1008
    ws.close()


@pytest.mark.timeout(20)
def test_stop_joins_connection_threads_even_if_the_client_never_answers() -> None:
    before = set(threading.enumerate())
    sim = Simulator(api_key=KEY).start()
    ws = connect(sim, model="gpt-4o-realtime")
    assert recv(ws)["type"] == "error"  # the server closes next; this client never answers
    sim.stop()
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    ws.close()
    assert not leaked, f"threads left behind: {leaked}"


def test_workspace_header_and_headers_recorded(sim: Simulator) -> None:
    ws = connect(sim, extra_headers=["X-DashScope-WorkSpace: ws-123"])
    recv(ws)
    conn = sim.last
    assert conn.workspace == "ws-123"
    assert conn.model == FLASH
    assert KEY not in json.dumps(conn.headers)
    ws.close()


# ------------------------------------------------------------------ 2. session


def test_session_update_returns_complete_config(sim: Simulator) -> None:
    ws = connect(sim)
    created = recv(ws)["session"]
    send(ws, "session.update", session={"voice": "Ethan", "instructions": "Be brief."})
    updated = recv(ws)
    assert updated["type"] == "session.updated"
    sess = updated["session"]
    assert sess["voice"] == "Ethan" and sess["instructions"] == "Be brief."
    assert set(created) <= set(sess)
    assert sess["turn_detection"] == created["turn_detection"]
    assert sess["id"] == created["id"]


def test_invalid_modalities_error_shape(sim: Simulator) -> None:
    ws = start(sim)
    send(ws, "session.update", session={"modalities": ["audio"]})
    ev = recv(ws)
    assert ev["type"] == "error"
    assert ev["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "Invalid modalities: ['audio']. "
        "Supported combinations are: ['text'] and ['audio', 'text'].",
        "param": "session.modalities",
        "event_id": "event_testsession.update",
    }


def test_bad_voice_errors_then_closes_at_update_when_asked(sim: Simulator) -> None:
    sim.behaviour.voice_check = "update"  # the documented-only alternative
    ws = start(sim, Q35)
    send(ws, "session.update", session={"voice": "Cherry"})
    ev = recv(ws)
    assert ev["error"]["message"] == "Voice 'Cherry' is not supported."
    opcode, _ = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE


@pytest.mark.parametrize("close", [True, False])
def test_bad_voice_is_refused_at_the_first_response_by_default(close: bool) -> None:
    with Simulator(behaviour=Behaviour(close_on_bad_voice=close)) as sim:
        ws = start(sim, Q35, turn_detection=None)
        send(ws, "session.update", session={"voice": "Cherry"})
        assert recv(ws)["session"]["voice"] == "Cherry"  # echoed, not checked (captured)
        send(ws, "response.create")
        ev = recv(ws)
        assert ev == {
            "event_id": "",
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "",
                "message": "<400> InternalError.Algo.InvalidParameter: "
                "Voice 'Cherry' is not supported.",
                "param": "",
            },
        }
        if close:
            opcode, _ = ws.recv_data_frame(True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
        else:  # no recovery: a later update gets no answer
            send(ws, "session.update", session={"voice": "Tina"})
            ws.settimeout(0.5)
            with pytest.raises(websocket.WebSocketTimeoutException):
                recv(ws)


@pytest.mark.parametrize(
    ("model", "session", "param"),
    [
        (FLASH, {"turn_detection": {"type": "semantic_vad"}}, "session.turn_detection.type"),
        (FLASH, {"enable_search": True}, "session.enable_search"),
        (FLASH, {"audio": {"input": {"format": {"sample_rate": 48000}}}}, "session.audio"),
        (
            Q35,
            {"audio": {"input": {"format": {"sample_rate": 44100}}}},
            "session.audio.input.format.sample_rate",
        ),
        (Q35, {"tools": [WEATHER_TOOL], "enable_search": True}, "session.enable_search"),
        (
            Q35,
            {"turn_detection": {"idle_timeout_ms": 1000}},
            "session.turn_detection.idle_timeout_ms",
        ),
        (FLASH, {"temperature": 2.0}, "session.temperature"),
        (FLASH, {"top_p": 0}, "session.top_p"),
        (FLASH, {"presence_penalty": 3}, "session.presence_penalty"),
        (FLASH, {"tools": [{"type": "function"}]}, "session.tools[0]"),
    ],
)
def test_session_update_validation(
    sim: Simulator, model: str, session: dict[str, Any], param: str
) -> None:
    ws = start(sim, model)
    send(ws, "session.update", session=session)
    ev = recv(ws)
    assert ev["type"] == "error", ev
    assert ev["error"]["type"] == "invalid_request_error"
    assert ev["error"]["param"].startswith(param.split("[")[0])
    # The session stays usable after a recoverable error.
    send(ws, "session.update", session={"instructions": "ok"})
    assert recv(ws)["type"] == "session.updated"


def test_qwen35_audio_object_and_turbo_fixed_sampling(sim: Simulator) -> None:
    ws = start(sim, Q35, audio={"input": {"format": {"type": "pcm", "sample_rate": 24000}}})
    assert sim.last.session is not None
    assert sim.last.session["audio"]["input"]["format"]["sample_rate"] == 24000
    ws2 = start(sim, "qwen-omni-turbo-realtime")
    send(ws2, "session.update", session={"temperature": 0.1})
    assert recv(ws2)["session"]["temperature"] == 1.0  # turbo ignores sampling changes
    ws.close()
    ws2.close()


# ------------------------------------------------------------------ 3. audio / VAD


def test_vad_turn_from_speech_then_silence(sim: Simulator) -> None:
    sim.script_transcripts(["what time is it"])
    ws = start(
        sim, turn_detection={"type": "server_vad", "threshold": 0.2, "silence_duration_ms": 500}
    )
    append(ws, silence(500) + synthesize("what time is it", 16000) + silence(800))
    events = recv_until(ws, "response.done")
    ts = types(events)
    expected = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.done",
    ]
    assert is_subsequence(expected, ts), ts
    started = events[ts.index("input_audio_buffer.speech_started")]
    stopped = events[ts.index("input_audio_buffer.speech_stopped")]
    assert 500 <= started["audio_start_ms"] < 700
    assert (
        started["item_id"]
        == stopped["item_id"]
        == events[ts.index("input_audio_buffer.committed")]["item_id"]
    )
    assert stopped["audio_end_ms"] > started["audio_start_ms"]
    transcript = events[ts.index("conversation.item.input_audio_transcription.completed")]
    assert transcript["transcript"] == "what time is it"
    assert (
        events[-1]["response"]["output"][0]["content"][0]["transcript"]
        == "You said: what time is it"
    )


def test_no_turn_without_silence_and_none_below_threshold(sim: Simulator) -> None:
    ws = start(sim, turn_detection={"threshold": 1.0, "silence_duration_ms": 300})
    append(ws, synthesize("very quiet speech here", 16000, level=0.03) + silence(500))
    ws2 = start(sim, turn_detection={"threshold": 0.0, "silence_duration_ms": 300})
    append(ws2, synthesize("some loud speech", 16000))  # no trailing silence: never stops
    send(ws2, "response.cancel")  # a marker: its error comes after anything VAD produced
    evs = recv_until(ws2, "error")
    assert "input_audio_buffer.speech_started" in types(evs)
    assert "input_audio_buffer.speech_stopped" not in types(evs)
    send(ws, "response.cancel")
    assert types(recv_until(ws, "error")) == ["error"]


def test_manual_turn_commit_clear_and_response(sim: Simulator) -> None:
    sim.script_transcripts(["manual words"])
    ws = start(sim, turn_detection=None)
    send(ws, "input_audio_buffer.commit")
    err = recv(ws)
    assert err["type"] == "error" and "empty" in err["error"]["message"]
    append(ws, silence(200))
    send(ws, "input_audio_buffer.clear")
    assert recv(ws)["type"] == "input_audio_buffer.cleared"
    send(ws, "input_audio_buffer.commit")
    assert recv(ws)["type"] == "error"
    evs = manual_turn(ws, "manual words")
    assert types(evs)[:2] == ["input_audio_buffer.committed", "conversation.item.created"]
    assert evs[-1]["transcript"] == "manual words"
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    assert evs[-1]["response"]["status"] == "completed"
    assert "You said: manual words" in json.dumps(evs[-1])


def test_append_rejects_bad_base64_and_oversize(sim: Simulator) -> None:
    sim.behaviour.max_append_bytes = 64000
    ws = start(sim, turn_detection=None)
    send(ws, "input_audio_buffer.append", audio="not base64!!")
    assert recv(ws)["error"]["param"] == "audio"
    send(ws, "input_audio_buffer.append", audio=b64(silence(2001, 16000)))
    err = recv(ws)["error"]
    assert err["code"] == "invalid_value" and "MiB" in err["message"]


@pytest.mark.timeout(60)
def test_fifteen_mib_append_is_accepted_and_larger_rejected(sim: Simulator) -> None:
    ws = start(sim, turn_detection=None)
    send(ws, "input_audio_buffer.append", audio=b64(b"\x00" * (15 * 1024 * 1024)))
    send(ws, "input_audio_buffer.append", audio=b64(b"\x00" * (15 * 1024 * 1024 + 2)))
    err = recv(ws)
    assert err["type"] == "error" and "15 MiB" in err["error"]["message"]


# ------------------------------------------------------------------ 4. responses


def test_response_audio_is_real_24khz_speech_in_chunks(sim: Simulator) -> None:
    sim.script_replies(["The quick brown fox jumps over the lazy dog."])
    ws = start(sim, turn_detection=None)
    manual_turn(ws)
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    expected_order = [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
    ]
    assert types(evs)[: len(expected_order)] == expected_order
    tail = [
        "response.audio_transcript.done",
        "response.audio.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    assert types(evs)[-len(tail) :] == tail
    chunks = [base64.b64decode(e["delta"]) for e in evs if e["type"] == "response.audio.delta"]
    # 320 ms at 24 kHz (captured on qwen3.8), the last one shorter.
    assert len(chunks) > 3 and all(len(c) == 15360 for c in chunks[:-1])
    pcm = np.frombuffer(b"".join(chunks), "<i2").astype(float) / 32768
    assert np.sqrt(np.mean(pcm**2)) > 0.05
    transcript = "".join(e["delta"] for e in evs if e["type"] == "response.audio_transcript.delta")
    assert transcript == "The quick brown fox jumps over the lazy dog."
    usage = evs[-1]["response"]["usage"]
    seconds = len(pcm) / 24000
    assert usage["output_tokens_details"]["audio_tokens"] == math.ceil(seconds * 12.5)
    assert usage["output_tokens_details"]["text_tokens"] == math.ceil(len(transcript) / 4)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_text_only_modality_sends_text_deltas(sim: Simulator) -> None:
    sim.script_replies(["Just text."])
    ws = start(sim, turn_detection=None, modalities=["text"])
    manual_turn(ws)
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    ts = types(evs)
    assert "response.audio.delta" not in ts and "response.text.delta" in ts
    assert evs[ts.index("response.text.done")]["text"] == "Just text."
    assert evs[-1]["response"]["output"][0]["content"] == [{"type": "text", "text": "Just text."}]
    assert "audio_tokens" not in evs[-1]["response"]["usage"]["output_tokens_details"]


def test_responder_sees_the_turn(sim: Simulator) -> None:
    seen = []

    def responder(turn: Any) -> str:
        seen.append(turn)
        return f"{len(turn.images)} images, {turn.transcript}"

    sim.responder = responder
    sim.script_transcripts(["look at this"])
    ws = start(sim, turn_detection=None)
    append(ws, silence(200))
    send(ws, "input_image_buffer.append", image=b64(make_jpeg(640, 480)))
    manual_turn(ws)
    send(ws, "response.create")
    done = recv_until(ws, "response.done")[-1]
    assert seen[0].transcript == "look at this" and seen[0].images[0].width == 640
    assert done["response"]["usage"]["input_tokens_details"]["image_tokens"] == 300


# ------------------------------------------------------------------ 5. cancel / barge-in


def test_cancel_and_active_response_errors() -> None:
    with Simulator(realtime=True) as sim:
        sim.script_replies(["This is a long answer " * 10])
        ws = start(sim, turn_detection=None)
        send(ws, "response.cancel")
        assert recv(ws)["error"]["message"] == "Conversation has none active response"
        manual_turn(ws)
        send(ws, "response.create")
        recv_until(ws, "response.audio.delta")
        send(ws, "response.create")
        err = recv_until(ws, "error")[-1]
        assert err["error"]["message"] == "Conversation already has an active response"
        send(ws, "response.cancel")
        evs = recv_until(ws, "response.done")
        assert evs[-1]["response"]["status"] == "cancelled"
        assert "response.audio.done" in types(evs)
        # Nothing of the cancelled response follows; the next request is answered normally.
        send(ws, "response.cancel")
        assert recv(ws)["type"] == "error"


def test_barge_in_cancels_the_response() -> None:
    with Simulator(realtime=True) as sim:
        sim.script_replies(["A long reply that the user will interrupt " * 5])
        sim.script_transcripts(["first", "second"])
        ws = start(sim, turn_detection={"silence_duration_ms": 400})
        append(ws, synthesize("first question", 16000) + silence(600))
        recv_until(ws, "response.audio.delta")
        append(ws, synthesize("stop", 16000))
        evs = recv_until(ws, "input_audio_buffer.speech_started")
        evs += recv_until(ws, "response.done")
        assert evs[-1]["response"]["status"] == "cancelled"
        ts = types(evs)
        assert ts.index("input_audio_buffer.speech_started") < ts.index("response.done")


def test_cancel_without_response_done_when_asked() -> None:
    # The alternative a relay reported on qwen3.5; captured 3.8 traffic has response.done.
    behaviour = Behaviour(speed=1.0, cancel_sends_response_done=False)
    with Simulator(behaviour=behaviour) as sim:
        sim.script_replies(["long " * 50])
        ws = start(sim, Q35, turn_detection=None)
        manual_turn(ws)
        send(ws, "response.create")
        recv_until(ws, "response.audio.delta")
        send(ws, "response.cancel")
        evs = recv_until(ws, "response.output_item.done")
        send(ws, "response.cancel")  # marker
        evs += recv_until(ws, "error")
        assert "response.done" not in types(evs)


# ------------------------------------------------------------------ 6. images


def test_image_rules(sim: Simulator) -> None:
    ws = start(sim, turn_detection=None)
    jpeg = make_jpeg()
    send(ws, "input_image_buffer.append", image=b64(jpeg))
    err = recv(ws)["error"]
    assert err["message"] == "Error append image before append audio."
    assert err["type"] == "invalid_request_error"
    append(ws, silence(100))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    send(ws, "input_image_buffer.append", image=b64(png))
    assert "JPEG" in recv(ws)["error"]["message"]
    big = make_jpeg(1280, 960, noise=True)
    assert len(b64(big)) > 256 * 1024
    send(ws, "input_image_buffer.append", image=b64(big))
    assert "too large" in recv(ws)["error"]["message"]
    send(ws, "input_image_buffer.append", image=b64(jpeg))  # fine: audio came first
    send(ws, "input_audio_buffer.commit")
    assert recv(ws)["type"] == "input_audio_buffer.committed"
    recv_until(ws, "conversation.item.input_audio_transcription.completed")
    send(ws, "input_image_buffer.append", image=b64(jpeg))  # the committed buffer is empty again
    assert recv(ws)["error"]["message"] == "Error append image before append audio."


# ------------------------------------------------------------------ 7. tools


def test_tool_round_trip_on_qwen35(sim: Simulator) -> None:
    sim.script_transcripts(["what's the weather in Hangzhou"])
    ws = start(sim, Q35, turn_detection=None, tools=[WEATHER_TOOL])
    manual_turn(ws)
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    ts = types(evs)
    assert "response.audio.delta" not in ts
    assert ts.index("response.function_call_arguments.delta") < ts.index(
        "response.function_call_arguments.done"
    )
    done = evs[ts.index("response.function_call_arguments.done")]
    assert done["name"] == "get_current_weather"
    assert done["arguments"] == '{"location": "Hangzhou"}'  # no padding (captured)
    delta = evs[ts.index("response.function_call_arguments.delta")]
    assert set(delta) >= {"obfuscation", "call_id", "item_id", "delta"}
    deltas = "".join(
        e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta"
    )
    assert deltas == done["arguments"]
    usage = evs[-1]["response"]["usage"]
    assert set(usage["output_tokens_details"]) == {"text_tokens"}
    assert evs[-1]["response"]["output"][0]["type"] == "function_call"
    send(
        ws,
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": "call_bogus", "output": "x"},
    )
    assert recv(ws)["error"]["param"] == "item.call_id"
    send(
        ws,
        "conversation.item.create",
        item={"type": "function_call_output", "call_id": done["call_id"], "output": "Sunny, 25C"},
    )
    assert recv(ws)["type"] == "conversation.item.created"
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    final = "".join(e["delta"] for e in evs if e["type"] == "response.audio_transcript.delta")
    assert final == "Here is what I found: Sunny, 25C"


def test_flash_accepts_tools_but_never_calls_them(sim: Simulator) -> None:
    sim.script_transcripts(["what's the weather in Hangzhou"])
    ws = start(sim, FLASH, turn_detection=None, tools=[WEATHER_TOOL])
    manual_turn(ws)
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    assert "response.function_call_arguments.done" not in types(evs)
    send(
        ws,
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    )
    assert recv(ws)["error"]["param"] == "item.type"


def test_text_input_on_qwen35(sim: Simulator) -> None:
    ws = start(sim, Q35, turn_detection=None)
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "typed words"}],
    }
    send(ws, "conversation.item.create", item=item)
    assert recv(ws)["type"] == "conversation.item.created"
    send(ws, "response.create")
    evs = recv_until(ws, "response.done")
    assert "You said: typed words" in json.dumps(evs[-1])


# ------------------------------------------------------------------ 8. ending


def test_session_finish_on_flash_and_qwen35(sim: Simulator) -> None:
    ws = start(sim, FLASH)
    send(ws, "session.finish")
    assert recv(ws)["type"] == "session.finished"
    ws.settimeout(0.5)  # the socket stays open (as TTS on the same endpoint did)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv_data_frame(True)
    sim.behaviour.finish = "finished_close"
    ws1 = start(sim, FLASH)
    send(ws1, "session.finish")
    assert recv(ws1)["type"] == "session.finished"
    opcode, frame = ws1.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(frame.data[:2], "big") == 1000
    sim.behaviour.finish = None
    ws2 = start(sim, Q35)
    send(ws2, "session.finish")
    err = recv(ws2)["error"]
    assert err["code"] == "invalid_event_type" and "session.finish" in err["message"]


def test_idle_close_and_max_duration() -> None:
    with Simulator(behaviour=Behaviour(idle_timeout_s=0.3)) as sim:
        ws = start(sim)
        ev = recv(ws)
        assert ev["error"]["message"] == (
            "Your session was closed because no response was generated for 0.3 seconds."
        )
        opcode, _ = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
    with Simulator(behaviour=Behaviour(idle_timeout_s=None, max_duration_s=0.3)) as sim:
        ws = start(sim)
        assert "maximum duration" in recv(ws)["error"]["message"]
        sim.wait_for(lambda: sim.last.closed.is_set())
        assert sim.last.closed_by == "server"


# ------------------------------------------------------------------ 9. faults


def test_drop_after_n_events() -> None:
    with Simulator(faults=Faults(drop_after_events=2)) as sim:
        ws = start(sim)
        send(ws, "session.update", session={})
        assert recv(ws)["type"] == "session.updated"
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            ws.recv()
        sim.wait_for(lambda: sim.last.closed.is_set())
        assert sim.last.closed_by == "drop"


def test_drop_mid_response() -> None:
    with Simulator(faults=Faults(drop_mid_response=True)) as sim:
        ws = start(sim, turn_detection=None)
        manual_turn(ws)
        send(ws, "response.create")
        got = []
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                got.append(recv(ws)["type"])
        assert "response.created" in got and "response.done" not in got


def test_raw_frames_and_injected_error(sim: Simulator) -> None:
    ws = start(sim)
    conn = sim.last
    conn.send_raw("{not json")
    assert ws.recv() == "{not json"
    conn.send_raw(json.dumps({"type": "response.brand_new_event", "x": 1}))
    assert recv(ws)["type"] == "response.brand_new_event"
    conn.send_raw(b"\x00\x01binary")
    opcode, data = ws.recv_data(False)
    assert opcode == websocket.ABNF.OPCODE_BINARY and data == b"\x00\x01binary"
    conn.inject_error("Internal service error: null")
    err = recv(ws)
    assert err["error"] == {
        "type": "server_error",
        "code": "internal_error",
        "message": "Internal service error: null",
        "param": None,
    }


def test_controls_called_from_a_responder_run_on_the_loop(sim: Simulator) -> None:
    """A responder runs on the simulator's event loop: a control called there is queued (waiting
    for it would deadlock the loop) and goes out once the loop is free."""

    def responder(turn: Any) -> str:
        sim.last.send_raw("from the responder")
        return "fine"

    sim.responder = responder
    ws = start(sim, turn_detection=None)
    send(ws, "response.create")
    frames = [ws.recv()]
    while "from the responder" not in frames or not any('"response.done"' in f for f in frames):
        frames.append(ws.recv())
    assert frames.count("from the responder") == 1
    assert "from the responder" in [e for _, e in sim.last.sent]


def test_faults_on_client_events() -> None:
    faults = Faults(
        error_on={
            "response.create": {"type": "invalid_request_error", "code": "x", "message": "nope"}
        },
        on_connect_frames=("garbage",),
    )
    with Simulator(faults=faults) as sim:
        ws = start(sim)
        assert ws.recv() == "garbage"
        send(ws, "response.create")
        assert recv(ws)["error"]["message"] == "nope"


def test_close_with_overlong_reason_is_sent_raw() -> None:
    reason = "The free tier of the model has been exhausted. " * 4
    assert len(reason.encode()) > 125
    with Simulator(faults=Faults(close_on={"response.create": (1007, reason)})) as sim:
        ws = start(sim)
        send(ws, "response.create")
        # websocket-client refuses the illegal frame, so read the raw bytes of it.
        raw = b""
        assert ws.sock is not None
        while len(raw) < 4 + 2 + len(reason.encode()):
            chunk = ws.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        assert raw[0] == 0x88 and raw[1] == 126
        length = int.from_bytes(raw[2:4], "big")
        assert int.from_bytes(raw[4:6], "big") == 1007
        assert raw[6 : 4 + length].decode() == reason
        ws.close(timeout=1)
        sim.wait_for(lambda: sim.last.closed.is_set())
        assert sim.last.close_code == 1007


def test_close_with_code(sim: Simulator) -> None:
    ws = start(sim)
    threading.Thread(target=sim.last.close, args=(4001, "bye")).start()
    opcode, frame = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 4001 and frame.data[2:] == b"bye"


def test_event_delay_and_stall() -> None:
    with Simulator(faults=Faults(event_delay_s=0.05)) as sim:
        ws = start(sim, instructions="x")
        send(ws, "session.update", session={})
        recv(ws)
        stamps = [t for t, _ in sim.last.sent]
        assert all(b - a >= 0.05 for a, b in itertools.pairwise(stamps))
    with Simulator(faults=Faults(stall=True)) as sim:
        ws = connect(sim)
        conn = sim.last
        send(ws, "session.update", session={})
        sim.wait_for(lambda: len(conn.received) == 1)
        assert conn.sent == []
        conn.resume()
        assert recv(ws)["type"] == "session.created"
        assert recv(ws)["type"] == "session.updated"


# ------------------------------------------------------------------ 10. inspection


def test_inspection_records_both_directions_in_order(sim: Simulator) -> None:
    ws = start(sim, voice="Ethan")
    send(ws, "response.cancel")
    recv(ws)
    ws.close()
    conn = sim.wait_for(lambda: sim.last if sim.last.closed.is_set() else None)
    assert conn.received_types() == ["session.update", "response.cancel"]
    assert conn.sent_types() == ["session.created", "session.updated", "error"]
    times = [t for t, _ in conn.received] + [t for t, _ in conn.sent]
    assert all(t >= 0 for t in times)
    assert [t for t, _ in conn.sent] == sorted(t for t, _ in conn.sent)
    assert conn.closed_by == "client" and conn.close_code == 1000
    with pytest.raises(Timeout):
        sim.wait_for(lambda: len(sim.connections) > 5, timeout=0.2)
