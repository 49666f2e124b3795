"""``read_wav`` beyond what the stdlib ``wave`` reads: float WAV (format 3), WAVE_FORMAT_EXTENSIBLE,
odd chunks, streamed sizes; and other files refused with the command that converts them."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dashscope_rt.audio import AudioConverter, read_wav
from dashscope_rt.errors import InvalidInput

_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def riff(
    raw: bytes,
    *,
    tag: int,
    channels: int,
    rate: int,
    bits: int,
    extensible: bool = False,
    before_data: bytes = b"",
    data_size: int | None = None,
) -> bytes:
    """A WAV file built by hand, as editors write them."""
    block = channels * bits // 8
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block, block, bits
    )
    if extensible:
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + _GUID_TAIL
    elif tag != 1:
        fmt += struct.pack("<H", 0)  # cbSize, as format-3 writers add it
    size = len(raw) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + before_data
    body += b"data" + struct.pack("<I", size) + raw
    return b"RIFF" + struct.pack("<I", len(body)) + body


float_audio = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 400), st.integers(1, 3)),
    elements=st.floats(-1.0, 1.0, width=32),
)


@settings(max_examples=60, deadline=None)
@given(
    audio=float_audio,
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    bits=st.sampled_from([32, 64]),
    extensible=st.booleans(),
)
def test_float_wav_reads_exactly(audio: np.ndarray, rate: int, bits: int, extensible: bool) -> None:
    raw = audio.astype("<f4" if bits == 32 else "<f8").tobytes()
    data = riff(raw, tag=3, channels=audio.shape[1], rate=rate, bits=bits, extensible=extensible)
    wav = read_wav(data)
    assert (wav.sample_rate, wav.channels, wav.frames) == (rate, audio.shape[1], audio.shape[0])
    assert wav.pcm.dtype == np.float32 and wav.sample_width == bits // 8
    assert np.array_equal(wav.pcm, audio)
    pcm16 = np.frombuffer(wav.to_pcm16(), "<i2")
    assert np.all(
        np.abs(pcm16.astype(np.int32) - np.rint(audio.ravel() * 32768).clip(-32768, 32767)) <= 1
    )


@settings(max_examples=40, deadline=None)
@given(
    values=hnp.arrays(np.int16, st.tuples(st.integers(1, 300), st.integers(1, 2))),
    pad=st.binary(min_size=0, max_size=9),
)
def test_extensible_pcm_and_odd_chunks_match_wave(values: np.ndarray, pad: bytes) -> None:
    """Integer PCM inside WAVE_FORMAT_EXTENSIBLE, after an odd-sized chunk (padded to even)."""
    raw = values.astype("<i2").tobytes()
    extra = b"LIST" + struct.pack("<I", len(pad)) + pad + (b"\x00" if len(pad) % 2 else b"")
    data = riff(
        raw,
        tag=1,
        channels=values.shape[1],
        rate=16000,
        bits=16,
        extensible=True,
        before_data=extra,
    )
    wav = read_wav(data)
    assert wav.pcm.dtype == np.int16 and np.array_equal(wav.pcm, values)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(values.shape[1])
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(raw)
    assert read_wav(buf.getvalue()).to_pcm16() == wav.to_pcm16()


def test_streamed_wav_without_a_data_size() -> None:
    raw = np.arange(100, dtype="<i2").tobytes()
    for size in (0, 0xFFFFFFFF):
        wav = read_wav(riff(raw, tag=1, channels=1, rate=16000, bits=16, data_size=size))
        assert wav.pcm[:, 0].tolist() == list(range(100))


def test_float_wav_file_streams_through_the_converter(tmp_path: Path) -> None:
    """What Audacity exports by default: 32-bit float, 44.1 kHz stereo."""
    t = np.arange(44100) / 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "audacity.wav"
    path.write_bytes(
        riff(np.stack([tone, tone], 1).tobytes(), tag=3, channels=2, rate=44100, bits=32)
    )
    wav = read_wav(path)
    conv = AudioConverter(16000, input_rate=wav.sample_rate, channels=wav.channels)
    out = np.frombuffer(b"".join(conv.convert(wav.pcm) + conv.flush()), "<i2")
    assert abs(len(out) - 16000) <= 1
    assert 0.45 < np.abs(out).max() / 32768 < 0.55


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "an MP3 file"),
        (b"\xff\xfb\x90\x64" + bytes(60), "an MP3 file"),
        (b"fLaC\x00\x00\x00\x22", "a FLAC file"),
        (b"OggS\x00\x02", "an Ogg"),
        (b"\x00\x00\x00\x20ftypM4A ", "an MP4/M4A file"),
        (b"hello, not audio at all", "not a WAV file"),
    ],
)
def test_other_files_say_how_to_convert(tmp_path: Path, head: bytes, what: str) -> None:
    path = tmp_path / "question.mp3"
    path.write_bytes(head + bytes(64))
    with pytest.raises(InvalidInput) as info:
        read_wav(path)
    message = str(info.value)
    assert f"{path} is {what}" in message
    out = tmp_path / "question.wav"
    assert f"ffmpeg -i {path} -ac 1 -ar 16000 {out}" in message
    assert f"sox {path} -c 1 -r 16000 -b 16 {out}" in message


def test_compressed_wav_is_refused_with_the_fix() -> None:
    data = riff(bytes(100), tag=0x55, channels=1, rate=16000, bits=0)
    with pytest.raises(
        InvalidInput, match=r"format 0x0055 WAV file, which this SDK does not decode.*ffmpeg"
    ):
        read_wav(data)
    with pytest.raises(InvalidInput, match="without a data chunk"):
        read_wav(riff(b"", tag=1, channels=1, rate=16000, bits=16)[:-8])
