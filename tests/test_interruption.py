"""Interruption that knows what was heard: a Player on a fake device, barge-in at a known point."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import Reply, Session
from dashscope_rt._heard import heard_prefix, played_by_clock_ms
from dashscope_rt.audio import Player
from dashscope_rt.conversation import ReplyInterrupted
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


@dataclasses.dataclass
class Call:
    session: Session
    player: Player
    speaker: Speaker
    replies: list[Reply] = dataclasses.field(default_factory=list)
    cuts: list[ReplyInterrupted] = dataclasses.field(default_factory=list)
    cut: threading.Event = dataclasses.field(default_factory=threading.Event)

    def on_cut(self, notice: ReplyInterrupted) -> None:
        self.cuts.append(notice)
        self.cut.set()


@contextlib.contextmanager
def _asked(sim: Simulator, *, player: bool = True) -> Iterator[Call]:
    """A session (with a Player on a fake device) that was just asked for a story."""
    speaker = Speaker()
    with (
        Session(FLASH, url=sim.url, api_key=KEY, close_timeout=2.0) as s,
        Player(24000, stream_factory=speaker) as p,
    ):
        if player:
            s.attach_player(p)
        call = Call(s, p, speaker)
        s.on_response_done(call.replies.append)
        s.on(ReplyInterrupted, call.on_cut)
        s.append_audio(synthesize("tell me a story about the sea") + silence(1000))
        yield call


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return bool(predicate())


@pytest.mark.timeout(30)
def test_barge_in_records_what_the_player_played(sim: Simulator) -> None:
    with _asked(sim) as call:
        player, speaker, cuts = call.player, call.speaker, call.cuts
        assert _wait(lambda: bool(call.replies))
        reply = call.replies[0]
        assert not reply.interrupted and reply.played_ms is None
        assert _wait(lambda: player.written_ms >= reply.duration * 1000 - 1)
        assert speaker.stream is not None
        speaker.stream.play(1000)
        speaker.stream.play(250)  # 1.25 s handed to the device, the rest is queued
        call.session.append_audio(synthesize("stop, wait a moment") + silence(1000))
        assert call.cut.wait(10)
        history = call.session.history
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
    with (
        Simulator(api_key=KEY, realtime=1.0, responder=scripted([ANSWER])) as sim,
        _asked(sim) as call,
    ):
        player, speaker, replies, cuts = call.player, call.speaker, call.replies, call.cuts
        assert _wait(lambda: player.written_ms >= 600)
        assert speaker.stream is not None
        speaker.stream.play(400)
        call.session.append_audio(synthesize("stop, wait a moment"))
        assert call.cut.wait(15)
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
    with _asked(sim, player=False) as call:
        s, replies, cuts = call.session, call.replies, call.cuts
        reported: list[str | None] = []

        def stopped_playing(event: Any) -> None:
            if replies and not reported:
                reported.append(replies[0].response_id)
                s.report_interruption(700.0, replies[0].response_id)

        s.on_speech_started(stopped_playing)
        assert _wait(lambda: bool(replies))
        s.append_audio(synthesize("stop, wait a moment") + silence(1000))
        assert _wait(lambda: any(c.reply.played_ms == 700.0 for c in cuts))
        history = s.history
        with pytest.raises(InvalidInput, match="played_ms"):
            s.report_interruption("700")  # type: ignore[arg-type]
    first = replies[0]
    (reported_cut,) = [c.reply for c in cuts if c.reply.played_ms == 700.0]
    assert reported_cut.response_id == first.response_id and reported_cut.interrupted
    assert reported_cut.heard_transcript == heard_prefix(
        first.transcript, 700.0, first.duration * 1000
    )
    line = next(h for h in history if h.role == "assistant" and h.text == first.transcript)
    assert line.interrupted and line.heard_text == reported_cut.heard_transcript


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
