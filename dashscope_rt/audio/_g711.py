"""G.711 μ-law and A-law, the 8 kHz codecs of telephone networks, with numpy lookup tables.

The encoders follow the CCITT reference algorithm as Sun's public-domain ``g711.c`` gives it, which
is also what the stdlib ``audioop`` module (removed in Python 3.13) implemented: the output is the
same as ``audioop.lin2ulaw``/``lin2alaw`` for every 16-bit input and the same as
``ulaw2lin``/``alaw2lin`` for every code. (ITU-T G.191's ``g711.c`` rounds negative μ-law inputs
differently: it agrees on A-law, and on μ-law it gives the neighbouring code for 508 of the 65536
inputs, all negative.)

Each encoder is one table of 65536 codes indexed by the sample's bit pattern, each decoder one
table of 256 samples; both are built with numpy on first use.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput, InvalidType, UnknownName
from ._convert import OutputConverter, _Rate
from ._pcm import _as_bytes

__all__ = [
    "ENCODINGS",
    "G711_ENCODINGS",
    "G711_RATE",
    "G711Encoder",
    "alaw_decode",
    "alaw_encode",
    "g711_decode",
    "g711_encode",
    "g711_silence",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
]

#: The G.711 laws, by the names ``encoding=`` takes.
G711_ENCODINGS = ("ulaw", "alaw")
#: Every ``encoding=`` that :meth:`Session.append_audio` takes.
ENCODINGS = ("pcm16", *G711_ENCODINGS)
#: The sample rate of telephone audio.
G711_RATE = 8000

_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
#: The code of a zero sample: what a silent frame is filled with.
_SILENCE = {"ulaw": 0xFF, "alaw": 0xD5}


def _all_samples() -> npt.NDArray[np.int32]:
    """Every int16 value, at the index of its bit pattern read as uint16."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int32)


@functools.cache
def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_samples() >> 2  # 14-bit
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude)  # 8 = beyond the last segment
    mantissa = (magnitude >> (segment + 1)) & 0xF
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


@functools.cache
def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype("<i2")


@functools.cache
def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_samples() >> 3  # 13-bit
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)  # one's complement: symmetric around zero
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)  # at most 7 for 13-bit input
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0xF
    code = (segment << 4) | mantissa
    return (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)


@functools.cache
def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = ((a & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype("<i2")


def _sample_bits(pcm16: Any) -> npt.NDArray[np.uint16]:
    """PCM16 (little-endian bytes, or an int16 array of any shape) as uint16 bit patterns."""
    if isinstance(pcm16, np.ndarray):
        if pcm16.dtype.kind != "i" or pcm16.dtype.itemsize != 2:
            raise InvalidType(
                f"G.711 encoding takes int16 samples, not a {pcm16.dtype} array; convert float "
                "audio with dashscope_rt.audio.to_int16() first"
            )
        native = np.ascontiguousarray(pcm16, dtype=np.int16).reshape(-1)
        return native.view(np.uint16)
    mv = _as_bytes(pcm16)
    if len(mv) % 2:
        raise InvalidInput(
            f"PCM16 audio must be a whole number of 2-byte samples, got {len(mv)} bytes"
        )
    return np.frombuffer(mv, dtype="<u2")


def _codes(data: Any) -> npt.NDArray[np.uint8]:
    """G.711 codes from bytes-like data or a uint8 array."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise InvalidType(f"G.711 data is bytes or a uint8 array, not a {data.dtype} array")
        return np.ascontiguousarray(data).reshape(-1)
    return np.frombuffer(_as_bytes(data), dtype=np.uint8)


def ulaw_encode(pcm16: Any) -> bytes:
    """μ-law codes (one byte per sample) for PCM16LE bytes or an int16 array."""
    return np.take(_ulaw_encode_table(), _sample_bits(pcm16)).tobytes()


def ulaw_decode(data: Any) -> bytes:
    """PCM16LE bytes for μ-law codes (bytes-like or a uint8 array)."""
    return np.take(_ulaw_decode_table(), _codes(data)).tobytes()


def alaw_encode(pcm16: Any) -> bytes:
    """A-law codes (one byte per sample) for PCM16LE bytes or an int16 array."""
    return np.take(_alaw_encode_table(), _sample_bits(pcm16)).tobytes()


def alaw_decode(data: Any) -> bytes:
    """PCM16LE bytes for A-law codes (bytes-like or a uint8 array)."""
    return np.take(_alaw_decode_table(), _codes(data)).tobytes()


_ENCODERS = {"ulaw": ulaw_encode, "alaw": alaw_encode}
_DECODERS = {"ulaw": ulaw_decode, "alaw": alaw_decode}


def _check_law(encoding: Any, allowed: tuple[str, ...] = G711_ENCODINGS) -> str:
    names = ", ".join(repr(e) for e in allowed)
    if not isinstance(encoding, str):
        raise InvalidType(f"encoding: expected a str ({names}), got {type(encoding).__name__}")
    if encoding not in allowed:
        raise UnknownName(f"encoding: {encoding!r} is not one of {names}")
    return encoding


def g711_encode(pcm16: Any, encoding: str) -> bytes:
    """:func:`ulaw_encode` or :func:`alaw_encode`, by ``encoding`` name."""
    return _ENCODERS[_check_law(encoding)](pcm16)


def g711_decode(data: Any, encoding: str) -> bytes:
    """:func:`ulaw_decode` or :func:`alaw_decode`, by ``encoding`` name."""
    return _DECODERS[_check_law(encoding)](data)


def g711_silence(encoding: str, samples: int) -> bytes:
    """``samples`` codes of a zero sample (the filler for a partial telephone frame)."""
    return bytes((_SILENCE[_check_law(encoding)],)) * samples


def to_pcm16(data: Any, encoding: str) -> Any:
    """``data`` as PCM16LE: G.711 is decoded, ``"pcm16"`` input is returned unchanged."""
    if _check_law(encoding, ENCODINGS) == "pcm16":
        return data
    return _DECODERS[encoding](data)


class G711Encoder:
    """Streaming reply audio (PCM16LE mono at ``input_rate``) to G.711 at ``output_rate``.

    One soxr stream resamples (bypassed when the rates are equal, e.g. a qwen3.5 model set to
    8 kHz output), then the law's table encodes. :meth:`flush` ends a reply, :meth:`reset`
    drops it (barge-in). Not thread-safe across calls of one reply: feed it from one thread.
    """

    def __init__(
        self,
        input_rate: _Rate = 24000,
        encoding: str = "ulaw",
        *,
        output_rate: _Rate = G711_RATE,
        quality: str = "HQ",
    ) -> None:
        self._encoding = _check_law(encoding)
        self._encode = _ENCODERS[self._encoding]
        self._conv = OutputConverter(input_rate, output_rate, quality=quality)

    @property
    def encoding(self) -> str:
        return self._encoding

    @property
    def input_rate(self) -> _Rate:
        return self._conv.input_rate

    @property
    def output_rate(self) -> _Rate:
        return self._conv.output_rate

    def encode(self, pcm16: Any) -> bytes:
        """G.711 for one piece of reply audio (may be empty while the resampler fills)."""
        return self._encode(self._conv.convert(pcm16))

    def flush(self) -> bytes:
        """End of a reply: the resampler's tail, encoded; ready for the next reply."""
        return self._encode(self._conv.flush())

    def reset(self) -> None:
        """Drop the reply in progress (resampler state and any odd trailing byte)."""
        self._conv.reset()

    def __repr__(self) -> str:
        return f"G711Encoder({self.input_rate}, {self._encoding!r}, output_rate={self.output_rate})"
