"""WAV files in and out, through the stdlib ``wave`` module."""

from __future__ import annotations

import io
import os
import wave
from typing import IO, Any, Union

import attrs
import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput
from ._pcm import _as_bytes, to_float32, to_int16

__all__ = ["WavAudio", "WavSource", "encode_wav", "read_wav", "write_wav"]

#: A path, an open binary file, or the bytes of a whole WAV file.
WavSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]


@attrs.frozen(eq=False)
class WavAudio:
    """Audio read from a WAV file.

    ``pcm`` has shape ``(frames, channels)`` and the file's own sample format: uint8 for
    8-bit, int16 for 16-bit, int32 for 24-bit (left-aligned: the 24 bits are the top bits) and
    32-bit. Pass it straight to an :class:`AudioConverter` made with the same ``sample_rate`` and
    ``channels``, or to ``session.append_audio(wav.pcm, sample_rate=wav.sample_rate,
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
    """Read an integer PCM WAV (8, 16, 24 or 32 bit; any rate and channel count).

    ``source`` is a path, a binary file object, or the bytes of the file.
    Raises :class:`~dashscope_rt.errors.InvalidInput` for anything that is not such a file
    (for example float or WAVE_FORMAT_EXTENSIBLE files, which ``wave`` cannot read before 3.12).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(_as_bytes(source).tobytes())
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    try:
        with wave.open(source, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidInput(f"not a readable integer PCM WAV file: {exc}") from exc
    if width not in (1, 2, 3, 4):
        raise InvalidInput(f"WAV sample width {width * 8} bit is not supported")
    frame = width * channels
    raw = raw[: len(raw) - len(raw) % frame]
    if width == 1:
        pcm: npt.NDArray[Any] = np.frombuffer(raw, dtype=np.uint8)
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
