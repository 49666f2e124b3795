"""WAV files in and out, through the stdlib ``wave`` module."""

from __future__ import annotations

import io
import os
import struct
import wave
from typing import IO, Any, Union

import attrs
import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput
from ._pcm import _as_bytes, to_float32, to_int16

__all__ = ["WavAudio", "WavSource", "convert_hint", "encode_wav", "read_wav", "write_wav"]

#: A path, an open binary file, or the bytes of a whole WAV file.
WavSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]


@attrs.frozen(eq=False)
class WavAudio:
    """Audio read from a WAV file.

    ``pcm`` has shape ``(frames, channels)`` and the file's own sample format: uint8 for
    8-bit, int16 for 16-bit, int32 for 24-bit (left-aligned: the 24 bits are the top bits) and
    32-bit, float32 for float files (32 or 64 bit); ``sample_width`` is the file's bytes per
    sample. Pass it straight to an :class:`AudioConverter` made with the same ``sample_rate``
    and ``channels``, or to ``session.append_audio(wav.pcm, sample_rate=wav.sample_rate,
    channels=wav.channels)``.
    """

    pcm: npt.NDArray[Any]
    sample_rate: int
    channels: int
    sample_width: int

    @property
    def frames(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    def to_float32(self) -> npt.NDArray[np.float32]:
        """Samples scaled to [-1, 1), shape ``(frames, channels)``."""
        return to_float32(self.pcm)

    def to_pcm16(self, *, mono: bool = False) -> bytes:
        """PCM16LE bytes (interleaved), optionally averaged to mono. The rate is unchanged."""
        if self.sample_width == 2 and not (mono and self.channels > 1):
            return self.pcm.astype("<i2", copy=False).tobytes()
        f = self.to_float32()
        if mono:
            f = f.mean(axis=1, dtype=np.float32)
        return to_int16(f).astype("<i2", copy=False).tobytes()


def read_wav(source: WavSource) -> WavAudio:
    """Read a WAV file: integer PCM (8, 16, 24 or 32 bit) or float (32 or 64 bit), any rate and
    channel count, plain or ``WAVE_FORMAT_EXTENSIBLE`` (Audacity's and most editors' exports).

    ``source`` is a path, a binary file object, or the bytes of the file. Float samples come back
    as float32. Raises :class:`~dashscope_rt.errors.InvalidInput` for anything else (MP3, FLAC,
    compressed WAV, ...), with the ``ffmpeg``/``sox`` command that converts it.
    """
    name: str | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = _as_bytes(source).tobytes()
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(name, "rb") as fh:
            data = fh.read()
    else:
        data = source.read()
    tag, channels, rate, bits, pcm_bytes = _parse_riff(data, name)
    width = bits // 8
    frame = width * channels
    raw = pcm_bytes[: len(pcm_bytes) - len(pcm_bytes) % frame]
    pcm: npt.NDArray[Any]
    if tag == _FLOAT:
        pcm = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
    elif width == 1:
        pcm = np.frombuffer(raw, dtype=np.uint8)
    elif width == 2:
        pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        pcm = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)
    else:
        pcm = np.frombuffer(raw, dtype="<i4").astype(np.int32)
    return WavAudio(
        pcm=pcm.reshape(-1, channels), sample_rate=rate, channels=channels, sample_width=width
    )


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_OTHER_FORMATS = {
    b"ID3": "an MP3",
    b"\xff\xfb": "an MP3",
    b"\xff\xf3": "an MP3",
    b"\xff\xf2": "an MP3",
    b"fLaC": "a FLAC",
    b"OggS": "an Ogg (Vorbis/Opus)",
    b"\x1aE\xdf\xa3": "a WebM/Matroska",
    b"FORM": "an AIFF",
    b"#!AMR": "an AMR",
}


def convert_hint(name: str | None) -> str:
    """The commands that turn any audio file into a WAV the SDK reads (16 kHz mono 16-bit)."""
    src = name or "INPUT"
    stem, ext = os.path.splitext(src) if name else ("OUTPUT", "")
    out = stem + ("-pcm.wav" if ext.lower() == ".wav" else ".wav")
    return (
        f"convert it first, e.g. `ffmpeg -i {src} -ac 1 -ar 16000 {out}` "
        f"or `sox {src} -c 1 -r 16000 -b 16 {out}`"
    )


def _fail(what: str, name: str | None) -> InvalidInput:
    return InvalidInput(f"{name or 'the audio'} is {what}: {convert_hint(name)}")


def _parse_riff(data: bytes, name: str | None) -> tuple[int, int, int, int, bytes]:
    """(format tag, channels, rate, bits per sample, sample bytes) of a RIFF/WAVE file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        kind = next((k for m, k in _OTHER_FORMATS.items() if data.startswith(m)), None)
        if data[4:8] == b"ftyp":
            kind = "an MP4/M4A"
        elif data[:4] in (b"RF64", b"BW64"):
            kind = "an RF64"
        what = f"{kind} file, not WAV" if kind else "not a WAV file (no RIFF/WAVE header)"
        raise _fail(what, name)
    fmt: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = data[body : body + size]
        elif chunk_id == b"data":
            if fmt is None:
                raise _fail("a WAV file with its data before its format", name)
            # A streamed WAV may leave the size at 0 or 0xFFFFFFFF: then the data runs to the end.
            end = len(data) if size in (0, 0xFFFFFFFF) else body + size
            return (*_parse_fmt(fmt, name), data[body:end])
        pos = body + size + (size & 1)
    raise _fail("a WAV file without " + ("a data chunk" if fmt else "a format chunk"), name)


def _parse_fmt(fmt: bytes, name: str | None) -> tuple[int, int, int, int]:
    if len(fmt) < 16:
        raise _fail("a WAV file with a truncated format chunk", name)
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # the first 2 bytes of the sub-format GUID
    supported = (tag == _PCM and bits in (8, 16, 24, 32)) or (tag == _FLOAT and bits in (32, 64))
    if not supported:
        what = {_PCM: "integer PCM", _FLOAT: "float"}.get(tag, f"format {tag:#06x}")
        raise _fail(f"a {bits}-bit {what} WAV file, which this SDK does not decode", name)
    if channels < 1 or rate < 1:
        raise _fail(f"a WAV file with {channels} channels at {rate} Hz", name)
    return tag, channels, rate, bits


def write_wav(
    dest: str | os.PathLike[str] | IO[bytes],
    pcm16: Any,
    sample_rate: int,
    channels: int = 1,
) -> None:
    """Write 16-bit PCM to a WAV file (path or binary file object).

    ``pcm16`` is PCM16LE bytes (interleaved if ``channels`` > 1) or an array: int16 is written
    as is, other dtypes are scaled like :func:`~dashscope_rt.audio.to_float32` and clipped.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise InvalidInput(f"sample_rate: expected a positive int, got {sample_rate!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
        raise InvalidInput(f"channels: {channels!r} is outside 1..64")
    if isinstance(pcm16, np.ndarray):
        if pcm16.ndim == 2 and pcm16.shape[1] != channels:
            raise InvalidInput(f"array shape {pcm16.shape} does not have {channels} channels")
        arr = pcm16 if pcm16.dtype == np.int16 else to_int16(to_float32(pcm16))
        data = arr.astype("<i2", copy=False).tobytes()
    else:
        data = _as_bytes(pcm16).tobytes()
    if len(data) % (2 * channels):
        raise InvalidInput(
            f"pcm16: {len(data)} bytes is not a whole number of {channels}-channel 16-bit frames"
        )
    if isinstance(dest, os.PathLike):
        dest = os.fspath(dest)
    with wave.open(dest, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(data)


def encode_wav(pcm16: Any, sample_rate: int, channels: int = 1) -> bytes:
    """The bytes of a 16-bit WAV file holding ``pcm16`` (see :func:`write_wav`)."""
    buf = io.BytesIO()
    write_wav(buf, pcm16, sample_rate, channels)
    return buf.getvalue()
