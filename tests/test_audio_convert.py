"""AudioConverter / OutputConverter: streaming equals one-shot, framing, scaling, clipping."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import soxr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashscope_rt.audio import (
    QUALITIES,
    AudioConverter,
    OutputConverter,
    float32_to_pcm16,
    pcm16_to_float32,
    resample_pcm16,
    to_float32,
    to_int16,
)
from dashscope_rt.errors import InvalidInput

IN_RATES = [8000, 16000, 22050, 44100, 48000, 96000]
OUT_RATES = [16000, 24000]
CHUNKS = [1, 7, 160, 1600, 4801]


def _signal(n: int, channels: int, dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.9, 0.9, (n, channels))
    if dtype == "int16":
        return np.round(x * 32767).astype(np.int16)
    return x.astype(dtype)


def _reference(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Independent one-shot path: float64 down-mix, soxr.resample, round and clip to int16."""
    f = x.astype(np.float64)
    if x.dtype == np.int16:
        f /= 32768.0
    mono = np.clip(f.mean(axis=1), -1.0, 1.0)
    y = mono if in_rate == out_rate else soxr.resample(mono, in_rate, out_rate, quality="HQ")
    ref: np.ndarray = np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int64)
    return ref


def _run(conv: AudioConverter, x: np.ndarray, chunk: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(x), chunk):
        got = conv.convert(x[i : i + chunk])
        assert all(len(c) == conv.chunk_bytes for c in got), "a convert() chunk is not whole"
        out += got
    tail = conv.flush()
    assert all(len(c) == conv.chunk_bytes for c in tail[:-1])
    if tail:
        assert 0 < len(tail[-1]) <= conv.chunk_bytes and len(tail[-1]) % 2 == 0
    return out + tail


def _samples(chunks: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.int64)


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("out_rate", OUT_RATES)
@pytest.mark.parametrize("in_rate", IN_RATES)
def test_chunked_equals_one_shot(
    in_rate: int, out_rate: int, chunk: int, channels: int, dtype: str
) -> None:
    n = 2400 + 3 * chunk + 17
    x = _signal(n, channels, dtype, seed=in_rate + chunk)
    conv = AudioConverter(out_rate, input_rate=in_rate, channels=channels)
    chunked = _samples(_run(conv, x, chunk))
    one_shot = _samples(_run(conv, x, n))  # same converter: flush() started a fresh stream
    ref = _reference(x, in_rate, out_rate)
    assert abs(len(chunked) - n * out_rate / in_rate) <= 1
    assert len(chunked) == len(one_shot) == len(ref)
    assert np.abs(chunked - one_shot).max() <= 1
    assert np.abs(chunked - ref).max() <= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    in_rate=st.sampled_from(IN_RATES),
    out_rate=st.sampled_from(OUT_RATES),
    channels=st.integers(1, 3),
    as_bytes=st.booleans(),
    cuts=st.lists(st.integers(0, 9000), max_size=12),
    chunk_ms=st.sampled_from([20, 100]),
)
def test_random_splits_equal_one_shot(
    in_rate: int, out_rate: int, channels: int, as_bytes: bool, cuts: list[int], chunk_ms: int
) -> None:
    x = _signal(9000, channels, "int16", seed=len(cuts))
    data = x.tobytes() if as_bytes else x
    total = len(data)
    step = 7 if as_bytes else 1  # bytes are cut anywhere, also inside a sample or a frame
    points = sorted({min(c * step, total) for c in cuts})
    bounds = [0, *points, total]

    def run(pieces: list[tuple[int, int]]) -> np.ndarray:
        conv = AudioConverter(out_rate, input_rate=in_rate, channels=channels, chunk_ms=chunk_ms)
        out: list[bytes] = []
        for a, b in pieces:
            got = conv.convert(data[a:b])
            assert all(len(c) == conv.chunk_bytes for c in got)
            out += got
        out += conv.flush()
        return _samples(out)

    split = run(list(itertools.pairwise(bounds)))
    whole = run([(0, total)])
    assert len(split) == len(whole)
    assert np.abs(split - whole).max(initial=0) <= 1


def _snr_db(y: np.ndarray, ref: np.ndarray) -> float:
    noise = np.sum((y - ref) ** 2)
    return 10 * math.log10(np.sum(ref**2) / max(noise, 1e-30))


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "channels", "dtype"),
    [
        (48000, 16000, 2, "float32"),
        (44100, 24000, 1, "int16"),
        (8000, 16000, 1, "int16"),
        (96000, 16000, 2, "int16"),
        (22050, 24000, 1, "float64"),
    ],
)
def test_sine_snr_above_60_db(in_rate: int, out_rate: int, channels: int, dtype: str) -> None:
    t = np.arange(in_rate) / in_rate  # one second
    sine = 0.5 * np.sin(2 * np.pi * 1000 * t)
    x = np.repeat(sine[:, None], channels, axis=1)
    x = np.round(x * 32767).astype(np.int16) if dtype == "int16" else x.astype(dtype)
    conv = AudioConverter(out_rate, input_rate=in_rate, channels=channels)
    y = _samples(_run(conv, x, in_rate // 10)) / 32768.0
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / out_rate)
    edge = out_rate // 50  # the filter rings at the signal's start and end
    assert _snr_db(y[edge:-edge], ref[edge:-edge]) > 60


def test_float_outside_unit_range_clips_never_wraps() -> None:
    conv = AudioConverter(16000, input_rate=16000, chunk_ms=1)
    x = np.array([2.0, -2.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e30, -1e30], np.float32)
    got = _samples(conv.convert(x) + conv.flush())
    assert got.tolist() == [32767, -32768, 32767, -32768, 16384, 0, 32767, -32768, 32767, -32768]


@pytest.mark.parametrize("channels", [1, 2])
def test_loud_float_resampled_saturates_with_the_right_sign(channels: int) -> None:
    t = np.arange(48000) / 48000
    sine = 3.0 * np.sin(2 * np.pi * 440 * t)
    x = np.repeat(sine[:, None], channels, axis=1).astype(np.float32)
    conv = AudioConverter(16000, input_rate=48000, channels=channels)
    y = _samples(_run(conv, x, 4800))
    ref = np.sin(2 * np.pi * 440 * np.arange(len(y)) / 16000)
    mid = slice(800, -800)
    assert y.max() == 32767 and y.min() == -32768
    strong = np.abs(ref[mid]) > 0.3
    assert np.all(np.sign(y[mid][strong]) == np.sign(ref[mid][strong]))
    assert np.all(np.abs(y[mid][strong]) > 25000)


def _pass16k(x: object, channels: int = 1) -> list[int]:
    conv = AudioConverter(16000, input_rate=16000, chunk_ms=1, channels=channels)
    out: list[int] = _samples(conv.convert(x) + conv.flush()).tolist()
    return out


def test_int32_and_uint8_and_float64_scaling() -> None:
    i32 = np.array([1 << 30, -(1 << 31), (1 << 31) - 1], np.int32)
    u8 = np.array([128, 192, 0, 255], np.uint8)
    f64 = np.linspace(-1, 1, 16)
    assert _pass16k(i32) == [16384, -32768, 32767]
    assert _pass16k(u8) == [0, 16384, -32768, 32512]
    assert _pass16k(f64) == _pass16k(f64.astype(np.float32))
    stereo_u8 = np.array([[0, 255], [192, 192]], np.uint8)
    assert _pass16k(stereo_u8, channels=2) == [-128, 16384]


def test_bytes_in_other_sample_formats() -> None:
    x = np.array([0.25, -0.5, 0.75, -1.0] * 8, np.float32)
    conv = AudioConverter(16000, input_rate=16000, dtype="float32", chunk_ms=1)
    raw = x.tobytes()
    got = conv.convert(raw[:5]) + conv.convert(raw[5:]) + conv.flush()  # cut mid-sample
    assert _samples(got).tolist() == _pass16k(x)


def test_passthrough_is_bit_exact_and_framed() -> None:
    x = _signal(16000 + 123, 1, "int16")
    conv = AudioConverter(16000, input_rate=16000)
    assert not conv.resampling
    out = _run(conv, x, 999)
    assert [len(c) for c in out] == [3200] * 10 + [246]
    assert b"".join(out) == x.tobytes()


def test_odd_bytes_are_carried_never_dropped() -> None:
    x = _signal(4000, 2, "int16")
    raw = x.tobytes()
    conv = AudioConverter(16000, input_rate=16000, channels=2, chunk_ms=10)
    out: list[bytes] = []
    pos = 0
    for size in [1, 2, 3, 5, 1, 333, 4000, 1]:
        out += conv.convert(memoryview(raw)[pos : pos + size])
        pos += size
    out += conv.convert(raw[pos:]) + conv.flush()
    expected = np.rint(x.astype(np.float32).mean(axis=1)).astype(np.int64)
    assert np.abs(_samples(out) - expected).max() <= 1
    assert len(_samples(out)) == 4000


def test_empty_and_tiny_inputs_never_produce_broken_frames() -> None:
    conv = AudioConverter(16000, input_rate=44100)
    assert conv.convert(b"") == []
    assert conv.convert(np.zeros(0, np.float32)) == []
    assert conv.flush() == []
    got: list[bytes] = []
    for _ in range(4410):  # 100 ms, one sample at a time
        got += conv.convert(np.array([1000], np.int16))
        assert all(len(c) == 3200 for c in got)
    got += conv.flush()
    assert sum(len(c) for c in got) == 3200


def test_flush_starts_a_fresh_stream_and_reset_drops_state() -> None:
    x = _signal(4410, 1, "int16")
    conv = AudioConverter(16000, input_rate=44100)
    first = _run(conv, x, 441)
    second = _run(conv, x, 441)
    assert first == second
    conv.convert(x)
    assert conv.pending_bytes > 0
    conv.convert(b"\x01")
    conv.reset()
    assert conv.pending_bytes == 0
    assert _run(conv, x, 441) == first


def test_flush_keeps_a_partial_frame_for_the_following_bytes() -> None:
    raw = _signal(100, 1, "int16").tobytes()
    conv = AudioConverter(16000, input_rate=16000, chunk_ms=1)
    a = conv.convert(raw[:51]) + conv.flush()
    b = conv.convert(raw[51:]) + conv.flush()
    assert b"".join(a + b) == raw


def test_set_input_switches_rate_without_losing_audio() -> None:
    conv = AudioConverter(16000, input_rate=48000)
    out = conv.convert(_signal(4800, 1, "float32"))
    assert conv.set_input(48000) == []
    out += conv.set_input(8000, channels=2)
    assert (conv.input_rate, conv.channels) == (8000, 2)
    out += conv.convert(_signal(800, 2, "int16")) + conv.flush()
    assert sum(len(c) for c in out) == 2 * (1600 + 1600)


@pytest.mark.parametrize("quality", QUALITIES)
def test_every_quality_keeps_the_length(quality: str) -> None:
    conv = AudioConverter(24000, input_rate=44100, quality=quality.lower())
    assert conv.quality == quality
    total = sum(len(c) for c in _run(conv, _signal(44100, 1, "int16"), 1000))
    assert total == 2 * 24000


@pytest.mark.parametrize(
    ("kwargs", "data", "match"),
    [
        ({"channels": 2}, np.zeros((100, 3), np.int16), "3 channels, but channels=2"),
        ({"channels": 2}, np.zeros((2, 100), np.int16), "channel-first"),
        ({"channels": 2}, np.zeros(101, np.int16), "multiple of channels"),
        ({}, np.zeros((2, 2, 2), np.int16), "1-D or 2-D"),
        ({}, np.zeros(10, np.int8), "not supported"),
        ({}, np.zeros(10, np.complex64), "not supported"),
        ({}, "abc", "not str"),
        ({}, [1, 2, 3], "not list"),
    ],
)
def test_contradicting_input_raises_invalid_input(
    kwargs: dict[str, Any], data: object, match: str
) -> None:
    conv = AudioConverter(16000, input_rate=48000, **kwargs)
    with pytest.raises(InvalidInput, match=match):
        conv.convert(data)


def test_arrays_after_a_pending_partial_frame_raise() -> None:
    conv = AudioConverter(16000, input_rate=16000)
    conv.convert(b"\x01\x02\x03")
    with pytest.raises(InvalidInput, match="partial frame"):
        conv.convert(np.zeros(4, np.int16))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_rate": 0},
        {"input_rate": "16000"},
        {"input_rate": math.nan},
        {"input_rate": 16000, "quality": "best"},
        {"input_rate": 16000, "chunk_ms": 0},
        {"input_rate": 16000, "channels": 0},
        {"input_rate": 16000, "dtype": "int8"},
    ],
)
def test_bad_parameters_raise_invalid_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        AudioConverter(16000, **kwargs)


def test_chunk_size_follows_chunk_ms() -> None:
    assert AudioConverter(16000, input_rate=16000).chunk_bytes == 3200
    assert AudioConverter(24000, input_rate=16000, chunk_ms=20).chunk_bytes == 960
    assert AudioConverter(22050, input_rate=16000, chunk_ms=10).chunk_bytes == 440


def test_pcm_helpers_round_trip() -> None:
    x = _signal(1000, 1, "int16")[:, 0]
    f = pcm16_to_float32(x.tobytes() + b"\x07")
    assert f.dtype == np.float32 and len(f) == 1000
    assert float32_to_pcm16(f) == x.tobytes()
    assert np.array_equal(to_int16(to_float32(x)), x)
    assert np.array_equal(to_int16(x), x)
    assert to_float32(np.array([1 << 30], np.int32))[0] == 0.5


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("channels", [1, 2])
def test_output_converter_streams_like_one_shot(dtype: str, channels: int) -> None:
    x = _signal(24000, 1, "int16")[:, 0]
    raw = x.tobytes()
    conv = OutputConverter(24000, 48000, dtype=dtype, channels=channels)
    parts = [conv.convert(raw[i : i + 481]) for i in range(0, len(raw), 481)] + [conv.flush()]
    y = np.concatenate(parts)
    assert y.dtype == np.dtype(dtype)
    assert y.shape == ((48000,) if channels == 1 else (48000, channels))
    mono = y if channels == 1 else y[:, 0]
    if channels == 2:
        assert np.array_equal(y[:, 0], y[:, 1])
    ref = np.frombuffer(resample_pcm16(raw, 24000, 48000), "<i2").astype(np.float64)
    got = mono.astype(np.float64) * (32768.0 if dtype == "float32" else 1.0)
    assert np.abs(got - ref).max() <= 1.01


def test_output_converter_passthrough_and_odd_bytes() -> None:
    conv = OutputConverter(24000, dtype="float32")
    a = conv.convert(b"\x00\x40\x00")
    b = conv.convert(b"\xc0")
    assert np.concatenate([a, b]).tolist() == [0.5, -0.5]
    assert conv.flush().size == 0
    with pytest.raises(InvalidInput):
        OutputConverter(24000, dtype="float16")


def test_resample_pcm16_one_shot_length() -> None:
    raw = _signal(24000, 1, "int16").tobytes()
    assert len(resample_pcm16(raw, 24000, 16000)) == 2 * 16000
    assert resample_pcm16(raw, 24000, 24000) == raw


def test_no_time_based_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long pause between chunks (pipecat #5769) must not reset the stream."""
    import time as time_module

    x = _signal(9600, 1, "int16")
    conv = AudioConverter(16000, input_rate=48000)
    out = conv.convert(x[:4801])
    clock = [time_module.monotonic() + 3600.0]
    monkeypatch.setattr(time_module, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time_module, "time", lambda: clock[0])
    monkeypatch.setattr(time_module, "perf_counter", lambda: clock[0])
    out += conv.convert(x[4801:]) + conv.flush()
    whole = AudioConverter(16000, input_rate=48000)
    assert np.abs(_samples(out) - _samples(_run(whole, x, len(x)))).max() <= 1


@pytest.mark.timeout(20)
def test_convert_flush_and_reset_from_several_threads() -> None:
    import threading

    conv = AudioConverter(16000, input_rate=48000, channels=2)
    block = _signal(480, 2, "float32")
    errors: list[BaseException] = []
    stop = threading.Event()

    def producer() -> None:
        try:
            while not stop.is_set():
                for chunk in conv.convert(block):
                    assert len(chunk) == conv.chunk_bytes
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=producer)
    t.start()
    try:
        for i in range(200):
            if i % 3 == 0:
                conv.reset()
            tail = conv.flush()
            assert all(len(c) % 2 == 0 and len(c) <= conv.chunk_bytes for c in tail)
    finally:
        stop.set()
        t.join(10)
    assert not errors
