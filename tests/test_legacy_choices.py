"""The legacy ``choices`` reply shape reaches the same handlers as the typed events (#10 item 7).

No captured realtime traffic has this shape (docs/protocol.md §15, point 9): the frames here are
synthetic, in the DashScope (``output.choices[].message``) and OpenAI-style (``choices[].delta``)
forms that the decoder understands.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import events as ev
from dashscope_rt._legacy import LegacyReplies, audio_and_transcript
from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import ProtocolError
from dashscope_rt.reply import Reply
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test-legacy"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def native(text: str = "", audio: bytes = b"", finish: str | None = None) -> dict[str, Any]:
    """DashScope's shape: ``output.choices[0].message`` with content parts and ``audio``."""
    message: dict[str, Any] = {"role": "assistant", "content": [{"text": text}] if text else []}
    if audio:
        message["audio"] = {"data": b64(audio), "id": "audio_1", "expires_at": 0}
    choice = {"finish_reason": finish or "null", "message": message}
    frame: dict[str, Any] = {"request_id": "req-1", "output": {"choices": [choice]}}
    if finish:
        frame["usage"] = {"input_tokens": 7, "output_tokens": 3}
    return frame


def openai(audio: bytes = b"", transcript: str = "", finish: str | None = None) -> dict[str, Any]:
    """An OpenAI-style chunk: ``choices[0].delta.audio`` with ``data`` and ``transcript``."""
    delta: dict[str, Any] = {"audio": {"data": b64(audio), "transcript": transcript}}
    return {"id": "chatcmpl-1", "choices": [{"delta": delta, "finish_reason": finish}]}


def translate(frames: list[dict[str, Any]], *, spoken: bool = True) -> list[Any]:
    replies = LegacyReplies()
    out: list[Any] = []
    for frame in frames:
        legacy = ev.decode(json.dumps(frame))
        assert isinstance(legacy, ev.LegacyChoices)
        out += replies.events(legacy, spoken=spoken)
    return out


# -- the translation ------------------------------------------------------------------------------


def test_native_frames_become_audio_transcript_and_done() -> None:
    out = translate([native("Hel", b"\1\0\2\0"), native("lo", b"\3\0"), native(finish="stop")])
    kinds = [type(e).__name__ for e in out]
    assert kinds == [
        "ResponseAudioDelta",
        "ResponseAudioTranscriptDelta",
        "ResponseAudioDelta",
        "ResponseAudioTranscriptDelta",
        "ResponseDone",
    ]
    assert b"".join(e.audio for e in out if isinstance(e, ev.ResponseAudioDelta)) == b"\1\0\2\0\3\0"
    assert "".join(e.delta for e in out if isinstance(e, ev.ResponseAudioTranscriptDelta)) == (
        "Hello"
    )
    done = out[-1]
    assert done.response.status == "completed"
    assert done.response.usage.input_tokens == 7
    assert len({getattr(e, "response_id", None) or e.response.id for e in out}) == 1


def test_text_without_audio_is_a_text_answer_only_in_a_text_only_session() -> None:
    assert [type(e) for e in translate([native("hi")], spoken=False)] == [ev.ResponseTextDelta]
    assert [type(e) for e in translate([native("hi")], spoken=True)] == [
        ev.ResponseAudioTranscriptDelta
    ]


def test_openai_chunks_carry_audio_and_transcript() -> None:
    out = translate([openai(b"\5\0", "Hi"), openai(b"\6\0", "!", finish="length")])
    assert [e.audio for e in out if isinstance(e, ev.ResponseAudioDelta)] == [b"\5\0", b"\6\0"]
    transcript = [e.delta for e in out if isinstance(e, ev.ResponseAudioTranscriptDelta)]
    assert transcript == ["Hi", "!"]
    assert out[-1].response.status == "incomplete"


def test_every_place_audio_may_be_is_read() -> None:
    part = {"output": {"choices": [{"message": {"content": [{"audio": {"data": b64(b"ab")}}]}}]}}
    assert audio_and_transcript(part) == (b64(b"ab"), "")
    bare = {"output": {"choices": [{"message": {"content": [{"audio": b64(b"cd")}]}}]}}
    assert audio_and_transcript(bare) == (b64(b"cd"), "")
    top = {"output": {"choices": [{"message": {}}], "audio": {"data": b64(b"ef")}}}
    assert audio_and_transcript(top) == (b64(b"ef"), "")
    wrapped = {"header": {"task_id": "t"}, "payload": openai(b"gh", "x")}
    assert audio_and_transcript(wrapped) == (b64(b"gh"), "x")


def test_each_finished_reply_gets_a_new_response_id() -> None:
    out = translate([native("a", finish="stop"), native("b", finish="stop")])
    ids = [e.response.id for e in out if isinstance(e, ev.ResponseDone)]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_bad_base64_is_a_protocol_error_not_a_crash() -> None:
    frame = {"choices": [{"delta": {"audio": {"data": "@@not base64@@"}}}]}
    (err,) = translate([frame])
    assert isinstance(err, ProtocolError)


@given(st.lists(st.binary(min_size=2, max_size=64).map(lambda b: b[: len(b) // 2 * 2]), max_size=8))
def test_audio_survives_any_chunking(chunks: list[bytes]) -> None:
    out = translate([openai(c, "") for c in chunks if c] + [openai(finish="stop")])
    audio = b"".join(e.audio for e in out if isinstance(e, ev.ResponseAudioDelta))
    assert audio == b"".join(chunks)
    assert isinstance(out[-1], ev.ResponseDone)


# -- over a real socket ---------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


@pytest.mark.timeout(20)
@pytest.mark.parametrize("text_only", [False, True])
def test_legacy_replies_reach_the_handlers_and_the_reply(sim: Simulator, text_only: bool) -> None:
    config = SessionConfig(modalities=["text"]) if text_only else SessionConfig()
    audio: list[bytes] = []
    spoken: list[str] = []
    written: list[str] = []
    replies: list[Reply] = []
    done = threading.Event()
    with Session(FLASH, api_key=KEY, url=sim.url, config=config) as s:
        s.on_audio_delta(lambda e: audio.append(e.audio))
        s.on_transcript_delta(lambda e: spoken.append(e.delta))
        s.on_text_delta(lambda e: written.append(e.delta))

        @s.on_response_done
        def finished(reply: Reply) -> None:
            replies.append(reply)
            done.set()

        pcm = b"\x10\x00\x20\x00" * 240
        frames = [native("Hello", b"" if text_only else pcm), native(" there", finish="stop")]
        for frame in frames:
            sim.last.send_raw(json.dumps(frame))
        assert done.wait(10)
    (reply,) = replies
    if text_only:
        assert (audio, spoken, written) == ([], [], ["Hello", " there"])
        assert reply.text == "Hello there"
    else:
        assert (audio, spoken, written) == ([pcm], ["Hello", " there"], [])
        assert reply.audio == pcm and reply.transcript == "Hello there"
    assert reply.status == "completed" and reply.usage is not None
    assert reply.usage.output_tokens == 3
