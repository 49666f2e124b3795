"""WAV, Player, Microphone (fake streams, no sound card) and camera-frame helpers."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_rt.audio import (
    AUDIO_EXTRA_HINT,
    MAX_IMAGE_BYTES,
    AudioConverter,
    ImageRateLimiter,
    Microphone,
    Player,
    check_jpeg,
    encode_wav,
    read_wav,
    to_jpeg,
    write_wav,
)
from dashscope_rt.errors import InvalidInput, SessionClosed

# -- WAV ----------------------------------------------------------------------------------------


def _write_raw_wav(path: Path, raw: bytes, width: int, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize(
    ("width", "rate"), [(1, 8000), (2, 16000), (3, 44100), (4, 48000), (2, 22050)]
)
def test_read_wav_every_sample_width(tmp_path: Path, width: int, rate: int, channels: int) -> None:
    rng = np.random.default_rng(width * 10 + channels)
    frames = 1001
    if width == 1:
        values = rng.integers(0, 256, (frames, channels))
        raw = values.astype(np.uint8).tobytes()
        expected = values
    elif width == 3:
        values = rng.integers(-(1 << 23), 1 << 23, (frames, channels))
        le = values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = le.tobytes()
        expected = values << 8
    else:
        dt = {2: "<i2", 4: "<i4"}[width]
        info = np.iinfo(dt)
        values = rng.integers(info.min, info.max, (frames, channels), endpoint=True)
        raw = values.astype(dt).tobytes()
        expected = values
    path = tmp_path / "x.wav"
    _write_raw_wav(path, raw, width, rate, channels)
    wav = read_wav(path)
    assert (wav.sample_rate, wav.channels, wav.sample_width, wav.frames) == (
        rate,
        channels,
        width,
        frames,
    )
    assert wav.pcm.shape == (frames, channels)
    assert np.array_equal(wav.pcm.astype(np.int64), expected)
    assert wav.duration == pytest.approx(frames / rate)
    f = wav.to_float32()
    assert f.dtype == np.float32 and np.all(np.abs(f) <= 1.0)
    # and the converter takes it directly
    conv = AudioConverter(16000, input_rate=rate, channels=channels)
    out = b"".join(conv.convert(wav.pcm) + conv.flush())
    assert abs(len(out) // 2 - frames * 16000 / rate) <= 1


@pytest.mark.parametrize("channels", [1, 2])
def test_write_wav_round_trip(tmp_path: Path, channels: int) -> None:
    pcm = np.random.default_rng(1).integers(-32768, 32767, 2400 * channels).astype("<i2")
    path = tmp_path / "out.wav"
    write_wav(path, pcm.tobytes(), 24000, channels)
    wav = read_wav(str(path))
    assert (wav.sample_rate, wav.channels, wav.sample_width) == (24000, channels, 2)
    assert wav.to_pcm16() == pcm.tobytes()
    assert read_wav(path.read_bytes()).to_pcm16() == pcm.tobytes()
    with path.open("rb") as fh:
        assert read_wav(fh).to_pcm16() == pcm.tobytes()
    assert encode_wav(pcm.tobytes(), 24000, channels) == path.read_bytes()


def test_write_wav_from_arrays_and_mono_mix() -> None:
    f = np.array([[0.5, -0.5], [2.0, 2.0]], np.float32)
    wav = read_wav(encode_wav(f, 16000, 2))
    assert wav.pcm.tolist() == [[16384, -16384], [32767, 32767]]
    assert np.frombuffer(wav.to_pcm16(mono=True), "<i2").tolist() == [0, 32767]
    buf = io.BytesIO()
    write_wav(buf, np.array([1, 2, 3], np.int16), 8000)
    assert read_wav(buf.getvalue()).pcm[:, 0].tolist() == [1, 2, 3]


def test_wav_errors() -> None:
    with pytest.raises(InvalidInput, match="WAV"):
        read_wav(b"RIFF....not a wav")
    with pytest.raises(InvalidInput, match="whole number"):
        write_wav(io.BytesIO(), b"\x00\x01\x02", 16000)
    with pytest.raises(InvalidInput, match="channels"):
        write_wav(io.BytesIO(), np.zeros((4, 3), np.int16), 16000, 2)
    with pytest.raises(InvalidInput, match="sample_rate"):
        write_wav(io.BytesIO(), b"", 0)


# -- fake PortAudio streams ---------------------------------------------------------------------


class FakeStream:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.callback = kwargs["callback"]
        self.samplerate = kwargs["samplerate"]
        self.started = self.stopped = self.closed = False
        self.latency = 0.05

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


class Factory:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, **kwargs: Any) -> FakeStream:
        self.streams.append(FakeStream(**kwargs))
        return self.streams[-1]

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]


def _pull(stream: FakeStream, frames: int, frame_bytes: int = 2) -> bytes:
    out = bytearray(frames * frame_bytes)
    stream.callback(out, frames, None, None)
    return bytes(out)


# -- Player -------------------------------------------------------------------------------------


def test_player_plays_in_order_then_silence_and_counts_position() -> None:
    factory = Factory()
    player = Player(24000, stream_factory=factory)
    pcm = np.arange(1, 2401, dtype="<i2").tobytes()  # 100 ms
    player.write(pcm[:1001])  # odd length: the last byte waits for the next write
    player.write(pcm[1001:])
    stream = factory.stream
    assert stream.started and stream.kwargs["samplerate"] == 24000
    assert stream.kwargs["dtype"] == "int16"
    assert player.queued_ms == pytest.approx(100.0)
    got = b"".join(_pull(stream, 240) for _ in range(10))
    assert got == pcm
    assert player.played_ms == pytest.approx(100.0) and player.played_bytes == 4800
    assert player.wait_done(timeout=1)
    assert _pull(stream, 240) == bytes(480)  # underrun: silence, position unchanged
    assert player.played_bytes == 4800
    assert player.latency_ms == pytest.approx(50.0)
    player.close()
    assert stream.stopped and stream.closed
    player.close()


def test_player_clear_drops_queued_audio() -> None:
    factory = Factory()
    with Player(24000, stream_factory=factory) as player:
        player.write(bytes(range(256)) * 75)  # 19200 bytes = 400 ms
        _pull(factory.stream, 2400)  # 100 ms played
        dropped = player.clear()
        assert dropped == pytest.approx(300.0)
        assert player.queued_ms == 0
        assert player.played_ms == pytest.approx(100.0)
        assert _pull(factory.stream, 240) == bytes(480)
        player.write(b"\x01\x00" * 240)
        assert _pull(factory.stream, 240) == b"\x01\x00" * 240
        assert player.played_ms == pytest.approx(110.0)
        assert player.written_ms == pytest.approx(410.0)


def test_player_partial_block_counts_an_underrun() -> None:
    factory = Factory()
    with Player(16000, stream_factory=factory) as player:
        player.write(b"\x05\x00" * 100)
        assert _pull(factory.stream, 160) == b"\x05\x00" * 100 + bytes(120)
        assert player.underruns == 1
        assert player.played_bytes == 200


def test_player_wait_done_times_out_while_audio_is_queued() -> None:
    factory = Factory()
    with Player(24000, stream_factory=factory) as player:
        player.write(bytes(4800))
        assert not player.wait_done(timeout=0.01)
        done = threading.Event()
        waiter = threading.Thread(target=lambda: done.set() if player.wait_done(5) else None)
        waiter.start()
        _pull(factory.stream, 2400)
        waiter.join(5)
        assert done.is_set()


def test_player_resamples_to_the_device_rate_and_channels() -> None:
    factory = Factory()
    with Player(24000, output_rate=48000, channels=2, stream_factory=factory) as player:
        t = np.arange(2400) / 24000
        player.write((np.sin(2 * np.pi * 500 * t) * 10000).astype("<i2").tobytes())
        player.flush()
        stream = factory.stream
        assert (stream.kwargs["samplerate"], stream.kwargs["channels"]) == (48000, 2)
        out = np.frombuffer(_pull(stream, 4800, 4), "<i2").reshape(-1, 2)
        assert np.array_equal(out[:, 0], out[:, 1])
        assert np.abs(out[:, 0]).max() > 9000
        assert player.played_ms == pytest.approx(100.0)
        assert player.played_bytes == 4800


def test_player_without_sounddevice_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    player = Player()
    with pytest.raises(ImportError, match=r"pip install 'dashscope-rt\[audio\]'"):
        player.start()
    with pytest.raises(ImportError, match="dashscope-rt"):
        Microphone(lambda *a, **k: None)
    assert "dashscope-rt[audio]" in AUDIO_EXTRA_HINT


# -- Microphone ---------------------------------------------------------------------------------


class RecordingSession:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, int, int]] = []
        self.got = threading.Event()

    def append_audio(self, data: Any, *, sample_rate: int, channels: int) -> None:
        self.calls.append((data, sample_rate, channels))
        self.got.set()


@pytest.mark.timeout(10)
def test_microphone_pushes_blocks_into_the_session() -> None:
    factory = Factory()
    session = RecordingSession()
    with Microphone(session, sample_rate=48000, channels=2, stream_factory=factory) as mic:
        stream = factory.stream
        assert stream.started
        assert stream.kwargs["blocksize"] == 960 and stream.kwargs["dtype"] == "int16"
        blocks = [bytes([i]) * 3840 for i in range(5)]
        for b in blocks:
            stream.callback(memoryview(b), 960, None, None)
    assert stream.stopped and stream.closed
    assert [c[0] for c in session.calls] == blocks  # stop() delivered what was queued
    assert {(c[1], c[2]) for c in session.calls} == {(48000, 2)}
    assert mic.delivered_blocks == 5 and mic.dropped_blocks == 0


@pytest.mark.timeout(10)
def test_microphone_float32_blocks_arrive_as_arrays() -> None:
    factory = Factory()
    got: list[Any] = []
    done = threading.Event()

    def sink(data: Any, *, sample_rate: int, channels: int) -> None:
        got.append(data)
        done.set()

    with Microphone(sink, channels=2, dtype="float32", stream_factory=factory) as mic:
        block = np.array([[0.5, -0.5]] * 320, np.float32)
        factory.stream.callback(block.tobytes(), 320, None, None)
        assert done.wait(5)
    assert mic.sample_rate == 16000
    assert got[0].shape == (320, 2) and np.array_equal(got[0], block)


@pytest.mark.timeout(10)
def test_microphone_mutes_while_the_player_plays_half_duplex() -> None:
    out, inp = Factory(), Factory()
    session = RecordingSession()
    player = Player(16000, stream_factory=out)
    with player, Microphone(session, stream_factory=inp, mute_while=lambda: player.playing) as mic:
        block = np.full(320, 1000, dtype=np.int16).tobytes()
        player.write(np.full(800, 500, dtype=np.int16))
        inp.stream.callback(block, 320, None, None)  # audio queued: muted
        _pull(out.stream, 800)
        inp.stream.callback(block, 320, None, None)  # just played: the room still rings
        player._last_sound -= 10.0  # (long ago)
        inp.stream.callback(block, 320, None, None)
    assert [c[0] for c in session.calls] == [bytes(640), bytes(640), block]
    assert mic.muted_blocks == 2


@pytest.mark.timeout(10)
def test_microphone_callback_never_blocks_when_the_session_is_slow() -> None:
    factory = Factory()
    entered, release = threading.Event(), threading.Event()
    received: list[bytes] = []

    def slow(data: bytes, *, sample_rate: int, channels: int) -> None:
        received.append(data)
        entered.set()
        release.wait(10)

    mic = Microphone(
        slow, sample_rate=16000, blocksize=320, max_queue_ms=100, stream_factory=factory
    )
    mic.start()
    cb = factory.stream.callback
    cb(b"\x00" * 640, 320, None, None)
    assert entered.wait(5)  # the worker is now stuck in the session
    for i in range(1, 50):
        cb(bytes([i]) * 640, 320, None, None)  # would hang here if the callback blocked
    assert mic.queued_blocks == 5
    assert mic.dropped_blocks == 44
    release.set()
    mic.close()
    assert [b[0] for b in received] == [0, 45, 46, 47, 48, 49]  # oldest dropped first
    assert mic.delivered_blocks + mic.dropped_blocks == 50


@pytest.mark.timeout(10)
def test_microphone_survives_target_errors_and_stops_on_session_closed() -> None:
    factory = Factory()
    calls: list[int] = []
    seen = threading.Event()

    def sink(data: bytes, *, sample_rate: int, channels: int) -> None:
        calls.append(data[0])
        if data[0] == 1:
            raise RuntimeError("boom")
        if data[0] == 2:
            seen.set()
            raise SessionClosed("closed")

    status = type("Status", (), {"input_overflow": True})()
    with Microphone(sink, stream_factory=factory) as mic:
        for i in (1, 2, 3):
            factory.stream.callback(bytes([i]) * 640, 320, None, status)
        assert seen.wait(5)
    assert calls == [1, 2]
    assert mic.errors == 1 and mic.overflows == 3


def test_microphone_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        Microphone(object(), sample_rate=16000, stream_factory=Factory())
    with pytest.raises(InvalidInput):
        Microphone(lambda *a, **k: None, dtype="uint8", stream_factory=Factory())


# -- images ---------------------------------------------------------------------------------------


@pytest.fixture(name="PIL")
def _pil_fixture() -> Any:
    return pytest.importorskip("PIL.Image")


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    pil = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    pil.new("RGB", (w, h), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def test_check_jpeg_accepts_valid_and_rejects_broken(PIL: Any) -> None:
    jpg = _jpeg()
    assert check_jpeg(jpg) == jpg
    assert check_jpeg(bytearray(jpg + b"\x00\x00")) == jpg + b"\x00\x00"
    with pytest.raises(InvalidInput, match="truncated"):
        check_jpeg(jpg[:-10])
    png = io.BytesIO()
    PIL.new("RGB", (8, 8)).save(png, format="PNG")
    with pytest.raises(InvalidInput, match="PNG"):
        check_jpeg(png.getvalue())
    with pytest.raises(InvalidInput, match="over the limit"):
        check_jpeg(jpg, max_bytes=len(jpg) - 1)


def test_strict_limit_is_256_kib_after_base64() -> None:
    import base64

    assert len(base64.b64encode(bytes(MAX_IMAGE_BYTES))) == 256 * 1024
    assert len(base64.b64encode(bytes(MAX_IMAGE_BYTES + 1))) > 256 * 1024


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_check_jpeg_only_raises_invalid_input(data: bytes) -> None:
    candidate = b"\xff\xd8\xff" + data
    with contextlib.suppress(InvalidInput):
        assert check_jpeg(candidate) == candidate
        assert candidate.rstrip(b"\x00").endswith(b"\xff\xd9")


def test_to_jpeg_shrinks_large_images_under_the_limit(PIL: Any) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)  # incompressible
    jpg = to_jpeg(noise)
    assert len(jpg) <= MAX_IMAGE_BYTES
    img = PIL.open(io.BytesIO(check_jpeg(jpg)))
    assert img.format == "JPEG" and max(img.size) <= 1280
    small = to_jpeg(PIL.fromarray(noise[:100, :100]), max_bytes=4000)
    assert len(small) <= 4000


def test_to_jpeg_converts_arrays_pngs_and_keeps_good_jpegs(PIL: Any) -> None:
    jpg = _jpeg()
    assert to_jpeg(jpg) is not None and to_jpeg(jpg) == jpg
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[:, :, 2] = 255  # red in BGR order
    img = PIL.open(io.BytesIO(to_jpeg(bgr, bgr=True)))
    r, g, b = img.convert("RGB").getpixel((16, 16))
    assert r > 200 and g < 50 and b < 50
    assert PIL.open(io.BytesIO(to_jpeg(np.zeros((10, 10), np.uint8)))).mode == "L"
    png = io.BytesIO()
    PIL.new("RGBA", (20, 20), (0, 0, 255, 128)).save(png, format="PNG")
    assert PIL.open(io.BytesIO(to_jpeg(png.getvalue()))).format == "JPEG"
    with pytest.raises(InvalidInput, match="shape"):
        to_jpeg(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(InvalidInput, match="decode"):
        to_jpeg(b"not an image at all")


def test_to_jpeg_without_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    jpg = _jpeg()
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert to_jpeg(jpg) == jpg  # valid JPEG bytes need no Pillow
    with pytest.raises(InvalidInput, match="pip install pillow"):
        to_jpeg(b"\x89PNG....")
    with pytest.raises(ImportError, match="pip install pillow"):
        to_jpeg(np.zeros((4, 4, 3), np.uint8))


def test_image_rate_limiter_with_a_fake_clock() -> None:
    now = [100.0]
    limiter = ImageRateLimiter(2.0, clock=lambda: now[0])
    assert limiter.allow()
    assert not limiter.allow()
    now[0] += 0.25
    assert not limiter.allow()
    assert limiter.wait_time() == pytest.approx(0.25)
    now[0] += 0.25
    assert limiter.allow()
    allowed = 0
    for _ in range(80):  # 10 s at 8 frames/s offered
        now[0] += 0.125
        allowed += limiter.allow()
    assert allowed == 20
    limiter.reset()
    assert limiter.allow()
    with pytest.raises(InvalidInput):
        ImageRateLimiter(0)


def test_audio_all_is_sorted_and_complete() -> None:
    import types

    import dashscope_rt.audio as audio

    def isort_key(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, Classes, functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert audio.__all__ == sorted(audio.__all__, key=isort_key)
    public = {
        name
        for name, value in vars(audio).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")
    assert public == set(audio.__all__)
