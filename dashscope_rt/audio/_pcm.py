"""Sample formats and scaling between integer PCM and float audio."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput

__all__ = [
    "SAMPLE_FORMATS",
    "BufferLike",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "sample_format",
    "to_float32",
    "to_int16",
]

#: Buffer-protocol input accepted wherever raw PCM is expected (bytes, bytearray, memoryview, ...).
BufferLike = bytes | bytearray | memoryview

#: Names accepted for ``dtype`` of raw byte input, and the numpy dtype (little-endian) they map to.
SAMPLE_FORMATS: dict[str, np.dtype[Any]] = {
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}

_INT16_SCALE = np.float32(32768.0)


def sample_format(dtype: Any) -> np.dtype[Any]:
    """Return the little-endian numpy dtype for a ``dtype`` name or object; raise InvalidInput."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidInput(f"dtype: unknown sample format {dtype!r}") from exc
    name = dt.newbyteorder("=").name
    if name not in SAMPLE_FORMATS:
        raise InvalidInput(
            f"dtype: sample format {dtype!r} is not supported; use one of {sorted(SAMPLE_FORMATS)}"
        )
    return SAMPLE_FORMATS[name]


def to_float32(data: Any, *, dtype: Any = "int16") -> npt.NDArray[np.float32]:
    """Scale PCM to float32 in [-1, 1) (float input is cast, not clipped).

    ``data`` is an ndarray (its own dtype is used: int16, int32, uint8, or float) or raw bytes
    interpreted as ``dtype``. The shape of an array is kept; bytes give a 1-D array.
    """
    arr: npt.NDArray[Any] = (
        data
        if isinstance(data, np.ndarray)
        else np.frombuffer(_as_bytes(data), dtype=sample_format(dtype))
    )
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f":
        return arr.astype(np.float32, copy=False)
    out: npt.NDArray[np.float32]
    if kind == "i" and size in (2, 4):
        scale = np.float32(1.0 / (1 << (8 * size - 1)))
        out = arr.astype(np.float32)
        out *= scale
        return out
    if kind == "u" and size == 1:
        out = arr.astype(np.float32)
        out -= np.float32(128.0)
        out *= np.float32(1.0 / 128.0)
        return out
    raise InvalidInput(
        f"audio dtype {arr.dtype} is not supported; use int16, int32, uint8, float32 or float64"
    )


def to_int16(x: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    """Audio to int16. Float (nominal [-1, 1]) is scaled by 32768, rounded and clipped (never
    wraps; NaN becomes 0); integer input is rescaled from its own range.
    """
    if x.dtype == np.int16:
        return x.astype(np.int16, copy=False)
    if x.dtype.kind != "f":
        x = to_float32(x)
    y: npt.NDArray[np.float32] = np.multiply(x, _INT16_SCALE, dtype=np.float32)
    np.clip(y, -32768.0, 32767.0, out=y)
    if not math.isfinite(float(y.sum())):
        np.nan_to_num(y, copy=False, nan=0.0)
    np.rint(y, out=y)
    out: npt.NDArray[np.int16] = y.astype(np.int16)
    return out


def pcm16_to_float32(pcm16: BufferLike) -> npt.NDArray[np.float32]:
    """PCM16LE bytes to a 1-D float32 array in [-1, 1). A trailing odd byte is ignored."""
    mv = _as_bytes(pcm16)
    usable = len(mv) - len(mv) % 2
    return to_float32(np.frombuffer(mv[:usable], dtype="<i2"))


def float32_to_pcm16(x: npt.ArrayLike) -> bytes:
    """Float audio (any shape; interleaved order kept) to PCM16LE bytes, clipped to int16 range."""
    return to_int16(np.asarray(x, dtype=np.float32)).astype("<i2", copy=False).tobytes()


def _as_bytes(data: Any) -> memoryview:
    """A flat byte view of any buffer-protocol object; raise InvalidInput for anything else."""
    if isinstance(data, str):
        raise InvalidInput("audio data must be bytes or a numpy array, not str")
    try:
        mv = memoryview(data)
    except TypeError as exc:
        raise InvalidInput(
            f"audio data must be bytes, a buffer or a numpy array, not {type(data).__name__}"
        ) from exc
    if mv.format == "B" and mv.ndim == 1:
        return mv
    if mv.c_contiguous:
        return mv.cast("B")
    return memoryview(mv.tobytes())
