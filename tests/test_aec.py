"""EchoCanceller in the synthetic room: ERLE, false barge-ins, double talk, formats, alignment."""

from __future__ import annotations

import importlib
import threading
from typing import Any

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt.audio import (
    AEC_EXTRA_HINT,
    EchoCanceller,
    Microphone,
    Player,
    aec_available,
    float32_to_pcm16,
    to_float32,
)
from dashscope_rt.audio._sinc import SincResampler
from dashscope_rt.errors import InvalidInput, MissingExtra
from dashscope_rt.testing import (
    EchoRoom,
    EnergyVAD,
    erle_db,
    power_db,
    replies_with_pauses,
    run_lockstep,
    synthesize,
)

pytestmark = pytest.mark.skipif(
    not aec_available(), reason=f"needs the aec extra: {AEC_EXTRA_HINT}"
)

RATE = 16000
REPLIES = [
    "Hello there, this is the first reply of the assistant, it talks for a while.",
    "Here is a second answer after a pause, it is a bit shorter.",
    "And a third one, to check that nothing moves after each silence between replies.",
]


@pytest.fixture(scope="module")
def three_replies() -> tuple[bytes, list[tuple[float, float]]]:
    return replies_with_pauses(REPLIES, pause_ms=1500)


def _span(y: np.ndarray, t0: float, t1: float) -> slice:
    return slice(int(t0 * RATE), min(int(t1 * RATE), len(y)))


def _starts(pcm_f32: np.ndarray) -> list[int]:
    """Where the simulator's server VAD (default threshold) hears speech start, in ms."""
    vad = EnergyVAD(rate=RATE)
    return [e.ms for e in vad.feed(float32_to_pcm16(pcm_f32)) if e.kind == "start"]


# -- the resampler the reference goes through ---------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    rates=st.sampled_from([(24000, 16000), (48000, 16000), (44100, 16000), (16000, 48000)]),
    sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=40),
)
def test_sinc_resampler_output_does_not_depend_on_chunking(
    rates: tuple[int, int], sizes: list[int]
) -> None:
    src, dst = rates
    x = np.random.default_rng(7).standard_normal(sum(sizes)).astype(np.float32)
    whole = SincResampler(src, dst).push(x)
    chunked_rs = SincResampler(src, dst)
    pieces, i = [], 0
    for n in sizes:
        pieces.append(chunked_rs.push(x[i : i + n]))
        i += n
    chunked = np.concatenate(pieces)
    # Same samples, and as many as the input determines: never a variable hold-back.
    assert len(chunked) == len(whole)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    assert len(whole) >= len(x) * dst // src - chunked_rs.lookahead - 1


@pytest.mark.parametrize(("src", "dst"), [(24000, 16000), (48000, 16000), (8000, 16000)])
def test_sinc_resampler_has_no_delay_and_little_error(src: int, dst: int) -> None:
    t = np.arange(src) / src
    y = SincResampler(src, dst).push((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    ideal = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / dst)
    edge = dst // 100
    err = y[edge:-edge] - ideal[edge:-edge]
    assert 10 * np.log10(np.sum(ideal[edge:-edge] ** 2) / np.sum(err**2)) > 60


# -- the contract ------------------------------------------------------------------------------


def test_process_returns_whole_10ms_frames_and_keeps_the_rest() -> None:
    aec = EchoCanceller(sample_rate=RATE)
    assert aec.process(b"\x01\x00" * 100) == b""  # less than one frame
    assert aec.pending_ms == pytest.approx(100 / 16)
    out = aec.process(np.zeros(250, dtype=np.int16))  # 350 samples in all
    assert len(out) == 2 * 320 and aec.pending_ms == pytest.approx(30 / 16)
    out = aec.process(np.zeros((130, 2), dtype=np.float32), sample_rate=RATE)  # stereo averaged
    assert len(out) == 2 * 160 and aec.frames == 3
    aec.feed_playback(b"\x00\x01\x02", sample_rate=24000)  # an odd byte waits for its pair
    aec.feed_playback(b"\x03", sample_rate=24000)


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="10 ms"):
        EchoCanceller(sample_rate=22050)
    with pytest.raises(InvalidInput, match="noise_suppression"):
        EchoCanceller(noise_suppression=7)
    with pytest.raises(InvalidInput, match="jitter_ms"):
        EchoCanceller(jitter_ms=-1)
    aec = EchoCanceller()
    with pytest.raises(InvalidInput, match="sample_rate"):
        aec.feed_playback(b"\x00\x00", sample_rate=100)
    with pytest.raises(InvalidInput, match="not str"):
        aec.process("hello")
    with pytest.raises(InvalidInput, match="3-D"):
        aec.process(np.zeros((2, 2, 2), dtype=np.float32))


def test_without_the_extra_it_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_webrtc(name: str, *args: Any) -> Any:
        if name == "pywebrtc_audio":
            raise ImportError("No module named 'pywebrtc_audio'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_webrtc)
    with pytest.raises(MissingExtra, match=r"pip install 'dashscope-rt\[aec\]'") as info:
        EchoCanceller()
    assert info.value.extra == "aec"
    assert not aec_available()


# -- the synthetic room ------------------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [30, 120])
@pytest.mark.parametrize(
    "feed_silence", [True, False], ids=["speaker-feeds-silence", "replies-only"]
)
def test_erle_over_several_replies_separated_by_silences(
    three_replies: tuple[bytes, list[tuple[float, float]]], delay_ms: int, feed_silence: bool
) -> None:
    playback, spans = three_replies
    room = EchoRoom(delay_ms=delay_ms, seed=delay_ms)
    rec = room.record(playback)
    aec = EchoCanceller(RATE)

    def during_replies(t0: float, t1: float) -> bool:
        return any(a < t1 and t0 < b for a, b in spans)

    y = run_lockstep(aec, playback, rec, chunk_ms=20, feed=None if feed_silence else during_replies)
    assert len(y) >= len(rec.mic) - RATE // 50
    # The reference is placed once when the speaker's output is fed continuously, once per
    # reply when only the replies are; either way each reply starts where it should.
    assert aec.placements == (1 if feed_silence else len(spans))
    first, *later = spans
    converged = _span(y, first[0] + 1.0, first[1])
    assert erle_db(rec.mic[converged], y[converged]) >= 25.0
    for t0, t1 in later:
        start = _span(y, t0, t0 + 0.5)  # no leak while re-converging at a reply's start
        whole = _span(y, t0, t1)
        assert erle_db(rec.mic[start], y[start]) >= 25.0
        assert erle_db(rec.mic[whole], y[whole]) >= 30.0


def test_echo_makes_false_barge_ins_and_cancellation_removes_them(
    three_replies: tuple[bytes, list[tuple[float, float]]],
) -> None:
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=60).record(playback)
    raw_starts = _starts(rec.mic)
    assert raw_starts, "the echo alone should trigger the simulator's VAD"
    assert any(a * 1000 <= ms <= b * 1000 + 200 for ms in raw_starts for a, b in spans)
    y = run_lockstep(EchoCanceller(RATE), playback, rec, chunk_ms=20)
    assert _starts(y) == []


def test_double_talk_near_end_speech_is_heard_and_keeps_its_level() -> None:
    playback, _ = replies_with_pauses(
        [
            "This is a long answer from the assistant that goes on and on for quite a few "
            "seconds, so the user may well want to say something."
        ],
        pause_ms=500,
    )
    near = to_float32(synthesize("wait, stop please, I have a question", RATE, pitch_hz=120))
    onset = 4 * RATE
    near_track = np.concatenate([np.zeros(onset, dtype=np.float32), near])
    rec = EchoRoom(delay_ms=60).record(playback, near=near_track)
    talk = slice(onset, onset + len(near))
    y = run_lockstep(EchoCanceller(RATE), playback, rec, chunk_ms=20)

    starts = _starts(y)
    assert len(starts) >= 1 and 4000 <= starts[0] <= 4000 + 300  # heard within 300 ms
    assert abs(power_db(y[talk]) - power_db(rec.near[talk])) <= 6.0
    # A half-duplex gate (mute while the speaker plays) fails the same checks.
    playing = np.abs(room_echo := rec.echo) > 10 ** (-50 / 20)
    hold = np.convolve(playing, np.ones(RATE // 2), mode="full")[: len(room_echo)] > 0
    gated = np.where(hold, 0.0, rec.mic).astype(np.float32)
    assert not [ms for ms in _starts(gated) if 4000 <= ms <= 4300]
    assert power_db(gated[talk]) < power_db(rec.near[talk]) - 6.0


@pytest.mark.parametrize(
    ("mic_rate", "dtype", "chunks"),
    [
        (16000, "int16", [7.3, 13.1, 21.7, 3.9]),  # odd sizes, not 10 ms multiples
        (16000, "float32", [10.0, 30.0, 4.0]),
        (48000, "float32", [5.0, 20.0, 11.3]),  # a 48 kHz microphone, resampled inside
        (48000, "int16", [2.7, 40.0]),
    ],
)
def test_callback_shaped_chunks_formats_and_rates(
    three_replies: tuple[bytes, list[tuple[float, float]]],
    mic_rate: int,
    dtype: str,
    chunks: list[float],
) -> None:
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=80).record(playback)
    mic = rec.mic
    if mic_rate != RATE:
        mic = soxr.resample(mic, RATE, mic_rate, quality="VHQ").astype(np.float32)
    if dtype == "int16":
        mic = (np.clip(mic, -1, 1) * 32767).astype(np.int16)
    aec = EchoCanceller(RATE)
    y = run_lockstep(aec, playback, rec, mic=mic, mic_rate=mic_rate, chunk_ms=chunks)
    assert aec.placements == 1
    for t0, t1 in spans[1:]:
        whole = _span(y, t0, t1)
        assert erle_db(rec.mic[whole], y[whole]) >= 25.0
    assert _starts(y) == []


def test_noise_suppression_and_gain_control_options(
    three_replies: tuple[bytes, list[tuple[float, float]]],
) -> None:
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=60, noise_dbfs=-45).record(playback)
    plain = run_lockstep(EchoCanceller(RATE), playback, rec)
    quiet = run_lockstep(EchoCanceller(RATE, noise_suppression=3), playback, rec)
    pause = _span(plain, spans[1][1] + 0.3, spans[2][0])  # noise only
    assert power_db(quiet[pause]) < power_db(plain[pause]) - 6.0
    agc = EchoCanceller(RATE, gain_control=True, noise_suppression=True)
    assert len(run_lockstep(agc, playback, rec)) == len(plain)


def test_speaker_started_long_before_the_microphone_is_lined_up(
    three_replies: tuple[bytes, list[tuple[float, float]]],
) -> None:
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=60).record(playback)
    aec = EchoCanceller(RATE)
    aec.feed_playback(np.zeros(3 * 24000, dtype=np.int16), sample_rate=24000)  # 3 s, mic off
    y = run_lockstep(aec, playback, rec)
    for t0, t1 in spans[1:]:
        whole = _span(y, t0, t1)
        assert erle_db(rec.mic[whole], y[whole]) >= 25.0


def test_the_erle_check_catches_a_reference_that_moves_at_a_reply_start(
    three_replies: tuple[bytes, list[tuple[float, float]]],
) -> None:
    """Control: what a streaming resampler's variable hold-back does (a shift of a few ms when a
    reply starts) makes echo leak for seconds, and the checks above would see it."""
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=60).record(playback)
    moved = np.frombuffer(playback, dtype="<i2").copy()
    a, b = (round(t * 24000) for t in spans[1])
    shift = 24000 * 10 // 1000
    moved[a + shift : b + shift] = moved[a:b].copy()
    moved[a : a + shift] = 0
    y = run_lockstep(EchoCanceller(RATE), moved.tobytes(), rec)
    second = _span(y, *spans[1])
    assert erle_db(rec.mic[second], y[second]) < 25.0


class _FakeStream:
    def __init__(self, **kwargs: Any) -> None:
        self.callback = kwargs["callback"]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


class _Streams:
    def __init__(self) -> None:
        self.last: _FakeStream | None = None

    def __call__(self, **kwargs: Any) -> _FakeStream:
        self.last = _FakeStream(**kwargs)
        return self.last


@pytest.mark.timeout(60)
def test_player_feeds_and_microphone_applies_the_canceller(
    three_replies: tuple[bytes, list[tuple[float, float]]],
) -> None:
    """Both devices' callbacks, interleaved in time as PortAudio would call them (speaker blocks
    of 512 frames at 24 kHz, microphone blocks of 20 ms), with the capture worker thread."""
    playback, spans = three_replies
    rec = EchoRoom(delay_ms=60).record(playback)
    aec = EchoCanceller(RATE)
    speaker, capture = _Streams(), _Streams()
    got: list[tuple[bytes, int, int]] = []

    def sink(data: bytes, *, sample_rate: int, channels: int) -> None:
        got.append((data, sample_rate, channels))

    player = Player(24000, stream_factory=speaker, echo_canceller=aec)
    mic = Microphone(sink, sample_rate=RATE, stream_factory=capture, echo_canceller=aec)
    mic_pcm = rec.mic_pcm16()
    with player, mic:
        assert speaker.last is not None and capture.last is not None
        player.write(playback)  # plays, then silence (fed too)
        t_out = t_in = 0
        while t_in * 2 < len(mic_pcm):
            if t_out / 24000 <= t_in / RATE:
                speaker.last.callback(bytearray(1024), 512, None, None)
                t_out += 512
            else:
                capture.last.callback(mic_pcm[t_in * 2 : t_in * 2 + 640], 320, None, None)
                t_in += 320
                for _ in range(500):
                    if mic.queued_blocks == 0:
                        break
                    threading.Event().wait(0.002)
    assert {(rate, ch) for _, rate, ch in got} == {(RATE, 1)}
    y = to_float32(b"".join(d for d, _, _ in got))
    assert aec.placements == 1
    for t0, t1 in spans[1:]:
        whole = _span(y, t0, t1)
        assert erle_db(rec.mic[whole], y[whole]) >= 25.0
