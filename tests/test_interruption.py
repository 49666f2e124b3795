"""Interruption that knows what was heard: a Player on a fake device, barge-in at a known point."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import ReplyInterrupted, Session
from dashscope_rt._heard import heard_prefix, played_by_clock_ms
from dashscope_rt.audio import Player
from dashscope_rt.conversation import Reply
from dashscope_rt.errors import InvalidInput
from dashscope_rt.testing import Simulator, scripted, silence, synthesize

FLASH = "qwen3-omni-flash-realtime"
KEY = "sk-test"
ANSWER = (
    "The sea was calm that morning, and the old fisherman rowed out past the harbour wall, "
    "humming a song his mother used to sing while the gulls circled overhead."
)


class FakeOutput:
    """A sounddevice-like output stream whose callback the test pulls by hand."""

    def __init__(self, **kwargs: Any) -> None:
        self.callback = kwargs["callback"]
        self.samplerate = kwargs["samplerate"]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...

    def play(self, ms: float) -> None:
        frames = int(self.samplerate * ms / 1000)
        self.callback(bytearray(frames * 2), frames, None, None)


class Speaker:
    def __init__(self) -> None:
        self.stream: FakeOutput | None = None

    def __call__(self, **kwargs: Any) -> FakeOutput:
        self.stream = FakeOutput(**kwargs)
        return self.stream


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY, responder=scripted([ANSWER])) as s:
        yield s


def _collect(session: Session) -> tuple[list[Reply], list[ReplyInterrupted], threading.Event]:
    replies: list[Reply] = []
    cuts: list[ReplyInterrupted] = []
    cut = threading.Event()
    session.on_response_done(replies.append)

    def on_cut(notice: ReplyInterrupted) -> None:
        cuts.append(notice)
        cut.set()

    session.on(ReplyInterrupted, on_cut)
    return replies, cuts, cut


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return bool(predicate())


@pytest.mark.timeout(30)
def test_barge_in_records_what_the_player_played(sim: Simulator) -> None:
    speaker = Speaker()
    player = Player(24000, stream_factory=speaker)
    with Session(FLASH, url=sim.url, api_key=KEY, close_timeout=2.0) as s, player:
        s.attach_player(player)
        replies, cuts, cut = _collect(s)
        s.append_audio(synthesize("tell me a story about the sea") + silence(1000))
        assert _wait(lambda: bool(replies))
        reply = replies[0]
        assert not reply.interrupted and reply.played_ms is None
        assert _wait(lambda: player.written_ms >= reply.duration * 1000 - 1)
        assert speaker.stream is not None
        speaker.stream.play(1000)
        speaker.stream.play(250)  # 1.25 s handed to the device, the rest is queued
        s.append_audio(synthesize("stop, wait a moment") + silence(1000))
        assert cut.wait(10)
        history = s.history
    notice = cuts[0]
    heard = notice.reply
    assert heard.response_id == reply.response_id and heard.interrupted
    assert heard.played_ms == pytest.approx(1250.0)
    assert player.queued_ms == 0  # the rest was dropped at the barge-in
    expected = heard_prefix(reply.transcript, 1250.0, reply.duration * 1000)
    assert heard.heard_transcript == expected and reply.transcript.startswith(expected)
    assert 0 < len(expected) < len(reply.transcript) / 2
    line = next(h for h in history if h.role == "assistant")
    assert line.interrupted and line.heard_text == expected and line.text == reply.transcript
    assert len(cuts) == 1  # the player's figure, not a clock estimate first


@pytest.mark.timeout(30)
def test_a_reply_still_streaming_is_cut_and_its_late_audio_is_not_played() -> None:
    with Simulator(api_key=KEY, realtime=1.0, responder=scripted([ANSWER])) as sim:
        speaker = Speaker()
        player = Player(24000, stream_factory=speaker)
        with Session(FLASH, url=sim.url, api_key=KEY, close_timeout=2.0) as s, player:
            s.attach_player(player)
            replies, cuts, cut = _collect(s)
            s.append_audio(synthesize("tell me a story about the sea") + silence(1000))
            assert _wait(lambda: player.written_ms >= 600)
            assert speaker.stream is not None
            speaker.stream.play(400)
            s.append_audio(synthesize("stop, wait a moment"))
            assert cut.wait(15)
            written_at_cut = player.written_ms
            assert _wait(lambda: len(replies) >= 1)
    reply = replies[0]
    assert reply.interrupted and reply.status != "completed"
    assert reply.played_ms == pytest.approx(400.0)
    assert cuts[0].reply == reply
    # Audio of the cut response that arrived after the barge-in never reached the player.
    assert player.written_ms == written_at_cut


@pytest.mark.timeout(30)
def test_app_that_plays_audio_itself_reports_the_cut(sim: Simulator) -> None:
    with Session(FLASH, url=sim.url, api_key=KEY, close_timeout=2.0) as s:
        replies, cuts, _ = _collect(s)
        s.on_speech_started(lambda e: s.report_interruption(700.0) if replies else None)
        s.append_audio(synthesize("tell me a story about the sea") + silence(1000))
        assert _wait(lambda: bool(replies))
        s.append_audio(synthesize("stop, wait a moment") + silence(1000))
        assert _wait(lambda: any(c.reply.played_ms == 700.0 for c in cuts))
        last = s.last_reply
        with pytest.raises(InvalidInput, match="played_ms"):
            s.report_interruption("700")  # type: ignore[arg-type]
    assert last is not None and last.interrupted and last.played_ms == 700.0
    # First the clock's estimate (the reply arrived in no time, so "all played"), then the figure.
    assert cuts[-1].reply.heard_transcript == heard_prefix(
        replies[0].transcript, 700.0, replies[0].duration * 1000
    )


# -- the estimates -----------------------------------------------------------------------------


@given(st.text(max_size=200), st.floats(0, 5000), st.floats(1, 5000))
def test_heard_prefix_is_a_prefix_that_grows_with_time(
    text: str, played: float, total: float
) -> None:
    heard = heard_prefix(text, played, total)
    assert text.startswith(heard)
    assert len(heard_prefix(text, played + 500, total)) >= len(heard)
    assert heard_prefix(text, total, total) == text


def test_heard_prefix_cuts_at_words_and_characters() -> None:
    assert heard_prefix("hello wonderful world", 500, 1000) == "hello"  # "wo|nderful" dropped
    assert heard_prefix("今天天气很好", 500, 1000) == "今天天"
    assert heard_prefix("abc", 0, 1000) == ""


def test_played_by_clock() -> None:
    assert played_by_clock_ms(2000.0, playback_end=10.0, now=9.0) == 1000.0
    assert played_by_clock_ms(2000.0, playback_end=10.0, now=11.0) == 2000.0
    assert played_by_clock_ms(2000.0, playback_end=13.0, now=9.0) == 0.0
