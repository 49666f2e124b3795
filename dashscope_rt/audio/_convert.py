"""Streaming conversion: any PCM in, mono PCM16LE at the model's rate out (and back for playback).

One ``soxr.ResampleStream`` per stream, fed chunk after chunk, so chunk borders are seamless.
It is flushed (``last=True``) only at the end of a turn and cleared only when asked: never on a
timer. Resampling runs in float32; float input is clipped to [-1, 1] and the result is clipped
again when it is quantised to int16, so loud input saturates instead of wrapping around.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from ..errors import InvalidInput
from ._pcm import _as_bytes, sample_format, to_float32, to_int16

__all__ = [
    "DEFAULT_CHUNK_MS",
    "QUALITIES",
    "AudioConverter",
    "OutputConverter",
    "resample_pcm16",
]

_log = logging.getLogger("dashscope_rt.audio")

#: soxr quality presets, lowest to highest.
QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
#: Length of the chunks :class:`AudioConverter` emits (the documented 100 ms per append).
DEFAULT_CHUNK_MS = 100

_EMPTY_F32: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
_Rate = int | float


def _check_rate(name: str, rate: Any) -> _Rate:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InvalidInput(f"{name}: expected a sample rate in Hz, got {rate!r}")
    if not (math.isfinite(rate) and 1000 <= rate <= 768_000):
        raise InvalidInput(f"{name}: {rate!r} Hz is outside 1000..768000")
    return int(rate) if float(rate).is_integer() else float(rate)


def _check_channels(channels: Any) -> int:
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
        raise InvalidInput(f"channels: expected an int, got {channels!r}")
    if not 1 <= channels <= 64:
        raise InvalidInput(f"channels: {channels} is outside 1..64")
    return int(channels)


def _check_quality(quality: Any) -> str:
    q = str(quality).upper()
    if q not in QUALITIES:
        raise InvalidInput(f"quality: {quality!r} is not one of {', '.join(QUALITIES)}")
    return q


def _finite_to_int16(y: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """:func:`to_int16` for the resampler's own output, which is finite (its input was made
    so) and ours to overwrite: scaled, clipped and rounded in place, no NaN scan."""
    y *= np.float32(32768.0)
    np.clip(y, -32768.0, 32767.0, out=y)
    np.rint(y, out=y)
    return y.astype(np.int16)


def _clip_unit(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Replace NaN by 0 in an already clipped array (a cheap sum detects them)."""
    if not math.isfinite(float(x.sum())):
        np.nan_to_num(x, copy=False, nan=0.0)
    return x


class _MonoInput:
    """Turns chunks of any supported layout into 1-D mono arrays.

    Returns int16 untouched when the input is already mono int16, else float32 clipped to
    [-1, 1]. Raw bytes that end inside a frame keep the partial frame for the next call.
    """

    __slots__ = ("_carry", "_dtype", "_frame_bytes", "channels")

    def __init__(self, channels: int, dtype: Any) -> None:
        self.channels = channels
        self._dtype = sample_format(dtype)
        self._frame_bytes = self._dtype.itemsize * channels
        self._carry = b""

    @property
    def dtype(self) -> str:
        return str(self._dtype.name)

    @property
    def carry_bytes(self) -> int:
        return len(self._carry)

    def drop_carry(self) -> None:
        self._carry = b""

    def mono(self, data: Any) -> npt.NDArray[Any]:
        arr = self._array(data) if isinstance(data, np.ndarray) else self._from_bytes(data)
        kind, size = arr.dtype.kind, arr.dtype.itemsize
        if arr.ndim == 2:
            if arr.shape[1] == 1:
                arr = arr[:, 0]
            else:
                return self._downmix(arr)
        if kind == "i" and size == 2:
            return arr.astype(np.int16, copy=False)
        if kind == "f":
            return _clip_unit(np.clip(arr, -1.0, 1.0, dtype=np.float32))
        return to_float32(arr)

    def _downmix(self, arr: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        ch = arr.shape[1]
        out: npt.NDArray[np.float32] = np.add(arr[:, 0], arr[:, 1], dtype=np.float32)
        for c in range(2, ch):
            out += arr[:, c]
        out *= np.float32(1.0 / ch)
        if arr.dtype.kind == "f":
            _clip_unit(np.clip(out, -1.0, 1.0, out=out))
        elif arr.dtype.kind == "u":
            out -= np.float32(128.0)
            out *= np.float32(1.0 / 128.0)
        else:
            out *= np.float32(1.0 / (1 << (8 * arr.dtype.itemsize - 1)))
        return out

    def _array(self, arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if self._carry:
            raise InvalidInput(
                f"{len(self._carry)} byte(s) of a partial frame are pending from earlier bytes "
                "input; finish the byte stream before passing arrays (or call reset())"
            )
        kind, size = arr.dtype.kind, arr.dtype.itemsize
        if not ((kind == "i" and size in (2, 4)) or (kind == "u" and size == 1) or kind == "f"):
            raise InvalidInput(
                f"audio dtype {arr.dtype} is not supported; "
                "use int16, int32, uint8, float32 or float64"
            )
        ch = self.channels
        if arr.ndim == 1:
            if ch == 1:
                return arr
            if arr.size % ch:
                raise InvalidInput(
                    f"a 1-D array of {arr.size} samples cannot hold interleaved {ch}-channel "
                    "frames (length must be a multiple of channels)"
                )
            return arr.reshape(-1, ch)
        if arr.ndim == 2:
            if arr.shape[1] == ch:
                return arr
            if arr.shape[0] == ch:
                raise InvalidInput(
                    f"array shape {arr.shape} looks channel-first; audio arrays are "
                    f"(frames, channels): pass array.T"
                )
            raise InvalidInput(
                f"array shape {arr.shape} has {arr.shape[1]} channels, but channels={ch}"
            )
        raise InvalidInput(f"audio arrays must be 1-D or 2-D (frames, channels), not {arr.ndim}-D")

    def _from_bytes(self, data: Any) -> npt.NDArray[Any]:
        mv = _as_bytes(data)
        if self._carry:
            mv = memoryview(self._carry + mv.tobytes())
        fb = self._frame_bytes
        usable = len(mv) - len(mv) % fb
        self._carry = mv[usable:].tobytes() if usable != len(mv) else b""
        arr = np.frombuffer(mv[:usable], dtype=self._dtype)
        return arr.reshape(-1, self.channels) if self.channels > 1 else arr


class AudioConverter:
    """Streaming converter from any PCM input to mono PCM16LE chunks at ``target_rate``.

    Parameters
    ----------
    target_rate:
        Output rate in Hz (the model's input rate, usually 16000).
    input_rate:
        Rate of the audio given to :meth:`convert`.
    channels:
        Channels of the input; interleaved in bytes and 1-D arrays, columns in 2-D arrays.
        Several channels are averaged to mono.
    dtype:
        Sample format of raw byte input: ``"int16"`` (PCM16LE, default), ``"int32"``,
        ``"float32"`` or ``"float64"``. Arrays always use their own dtype.
    quality:
        soxr quality, one of :data:`QUALITIES` (default ``"HQ"``).
    chunk_ms:
        Length of every emitted chunk.

    Not reentrant per stream, but thread-safe: calls are serialised by a lock, so a PortAudio
    thread may :meth:`convert` while another thread calls :meth:`flush` or :meth:`reset`.
    """

    def __init__(
        self,
        target_rate: int,
        *,
        input_rate: _Rate,
        channels: int = 1,
        dtype: str = "int16",
        quality: str = "HQ",
        chunk_ms: int = DEFAULT_CHUNK_MS,
    ) -> None:
        target = _check_rate("target_rate", target_rate)
        if not isinstance(target, int):
            raise InvalidInput(f"target_rate: must be a whole number of Hz, got {target_rate!r}")
        if (
            isinstance(chunk_ms, bool)
            or not isinstance(chunk_ms, int)
            or not 1 <= chunk_ms <= 60_000
        ):
            raise InvalidInput(f"chunk_ms: {chunk_ms!r} is outside 1..60000")
        self._target_rate = target
        self._quality = _check_quality(quality)
        self._chunk_ms = chunk_ms
        self._chunk_bytes = 2 * max(1, target * chunk_ms // 1000)
        self._lock = threading.Lock()
        self._out = bytearray()
        self._fed = False
        self._input_rate: _Rate = 0
        self._in = _MonoInput(_check_channels(channels), dtype)
        self._rs: soxr.ResampleStream | None = None
        self._setup(_check_rate("input_rate", input_rate))

    def _setup(self, input_rate: _Rate) -> None:
        self._input_rate = input_rate
        self._rs = (
            None
            if input_rate == self._target_rate
            else soxr.ResampleStream(
                input_rate, self._target_rate, 1, dtype="float32", quality=self._quality
            )
        )
        self._fed = False

    # -- properties -------------------------------------------------------------------------

    @property
    def target_rate(self) -> int:
        return self._target_rate

    @property
    def input_rate(self) -> _Rate:
        return self._input_rate

    @property
    def channels(self) -> int:
        return self._in.channels

    @property
    def dtype(self) -> str:
        """Sample format assumed for raw byte input."""
        return self._in.dtype

    @property
    def quality(self) -> str:
        return self._quality

    @property
    def chunk_ms(self) -> int:
        return self._chunk_ms

    @property
    def chunk_bytes(self) -> int:
        """Byte length of every chunk :meth:`convert` returns (always even)."""
        return self._chunk_bytes

    @property
    def pending_bytes(self) -> int:
        """Converted PCM16 bytes waiting to fill a chunk (excludes the resampler's delay)."""
        return len(self._out)

    @property
    def resampling(self) -> bool:
        """False when input and target rates are equal (soxr is bypassed)."""
        return self._rs is not None

    # -- streaming --------------------------------------------------------------------------

    def convert(self, data: Any) -> list[bytes]:
        """Convert one chunk; return the complete ``chunk_ms`` chunks now available (maybe none).

        ``data`` is bytes-like PCM in :attr:`dtype` (a partial trailing frame is kept for the
        next call) or an int16/int32/uint8/float ndarray, 1-D or (frames, channels).
        Raises :class:`~dashscope_rt.errors.InvalidInput` for a layout that contradicts
        :attr:`channels` or an unsupported dtype.
        """
        with self._lock:
            mono = self._in.mono(data)
            if mono.size:
                self._push(mono)
            return self._take(final=False)

    def flush(self) -> list[bytes]:
        """End the stream: drain the resampler (``last=True``) and return every remaining chunk.

        The last chunk may be shorter than ``chunk_ms`` (still even length). Afterwards the
        converter starts a fresh stream; a partial input frame from byte input is kept, since it
        belongs to the bytes that follow.
        """
        with self._lock:
            if self._rs is not None and self._fed:
                tail = self._rs.resample_chunk(_EMPTY_F32, last=True)
                if tail.size:
                    self._append(to_int16(tail))
                self._rs.clear()
            self._fed = False
            return self._take(final=True)

    def reset(self) -> None:
        """Drop everything buffered (resampler state, pending output, partial input frame)."""
        with self._lock:
            if self._rs is not None and self._fed:
                self._rs.clear()
            self._fed = False
            self._out.clear()
            self._in.drop_carry()

    def set_input(
        self, input_rate: _Rate, channels: int = 1, dtype: str | None = None
    ) -> list[bytes]:
        """Change the input format mid-stream; return the chunks completed by the switch.

        A no-op when nothing changes. Otherwise the old resampler is drained into the pending
        output (so no audio is lost and chunk framing continues) and a new one is built.
        """
        rate = _check_rate("input_rate", input_rate)
        channels = _check_channels(channels)
        new_dtype = self._in.dtype if dtype is None else sample_format(dtype).name
        with self._lock:
            if (rate, channels, new_dtype) == (self._input_rate, self.channels, self._in.dtype):
                return []
            if self._rs is not None and self._fed:
                tail = self._rs.resample_chunk(_EMPTY_F32, last=True)
                if tail.size:
                    self._append(to_int16(tail))
            if self._in.carry_bytes:
                _log.debug(
                    "input format changed: dropping %d byte(s) of a partial frame",
                    self._in.carry_bytes,
                )
            self._in = _MonoInput(channels, new_dtype)
            if rate != self._input_rate:
                self._setup(rate)
            elif self._rs is not None:
                self._rs.clear()
                self._fed = False
            return self._take(final=False)

    def _push(self, mono: npt.NDArray[Any]) -> None:
        if self._rs is None:
            pcm = mono if mono.dtype == np.int16 else to_int16(mono)
        else:
            f = to_float32(mono) if mono.dtype == np.int16 else mono
            y = self._rs.resample_chunk(f)
            self._fed = True
            if not y.size:
                return
            pcm = _finite_to_int16(y)
        self._append(pcm)

    def _append(self, pcm: npt.NDArray[np.int16]) -> None:
        self._out += np.ascontiguousarray(pcm, dtype="<i2").tobytes()

    def _take(self, *, final: bool) -> list[bytes]:
        out = self._out
        cb = self._chunk_bytes
        n = len(out) // cb
        end = len(out) if final else n * cb
        if not end:
            return []
        with memoryview(out) as mv:
            chunks = [mv[i : i + cb].tobytes() for i in range(0, end, cb)]
        del out[:end]
        return chunks

    def __repr__(self) -> str:
        return (
            f"AudioConverter({self._target_rate}, input_rate={self._input_rate}, "
            f"channels={self.channels}, dtype={self.dtype!r}, quality={self._quality!r}, "
            f"chunk_ms={self._chunk_ms})"
        )


class OutputConverter:
    """Streaming converter for reply audio (PCM16LE mono) to what a sound card or notebook wants.

    ``convert(pcm16)`` returns an ndarray of ``dtype`` (``"int16"``, or ``"float32"`` clipped to
    [-1, 1]), shape
    ``(n,)`` for mono or ``(n, channels)`` with the mono signal copied to every channel.
    Use ``.tobytes()`` for a raw stream. Odd trailing bytes are carried to the next call.
    """

    def __init__(
        self,
        input_rate: _Rate = 24000,
        output_rate: _Rate | None = None,
        *,
        dtype: str = "int16",
        channels: int = 1,
        quality: str = "HQ",
    ) -> None:
        self._input_rate = _check_rate("input_rate", input_rate)
        self._output_rate = (
            self._input_rate if output_rate is None else _check_rate("output_rate", output_rate)
        )
        if dtype not in ("int16", "float32"):
            raise InvalidInput(f"dtype: {dtype!r} is not 'int16' or 'float32'")
        self._dtype = dtype
        self._channels = _check_channels(channels)
        self._quality = _check_quality(quality)
        self._lock = threading.Lock()
        self._in = _MonoInput(1, "int16")
        self._fed = False
        self._rs: soxr.ResampleStream | None = (
            None
            if self._input_rate == self._output_rate
            else soxr.ResampleStream(
                self._input_rate, self._output_rate, 1, dtype="float32", quality=self._quality
            )
        )

    @property
    def input_rate(self) -> _Rate:
        return self._input_rate

    @property
    def output_rate(self) -> _Rate:
        return self._output_rate

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def channels(self) -> int:
        return self._channels

    def convert(self, pcm16: Any) -> npt.NDArray[Any]:
        """Convert one piece of PCM16LE mono (bytes or int16 array)."""
        with self._lock:
            mono = self._in.mono(pcm16)
            if self._rs is None:
                return self._shape(mono)
            if not mono.size:
                return self._shape(_EMPTY_F32)
            self._fed = True
            return self._shape(self._rs.resample_chunk(to_float32(mono)))

    def flush(self) -> npt.NDArray[Any]:
        """End of a reply: return the resampler's tail; ready for the next reply."""
        with self._lock:
            if self._rs is None or not self._fed:
                return self._shape(_EMPTY_F32)
            tail = self._rs.resample_chunk(_EMPTY_F32, last=True)
            self._rs.clear()
            self._fed = False
            return self._shape(tail)

    def reset(self) -> None:
        """Drop buffered state (e.g. on barge-in)."""
        with self._lock:
            if self._rs is not None and self._fed:
                self._rs.clear()
            self._fed = False
            self._in.drop_carry()

    def release(self) -> None:
        """Free the resampler's native state; the converter must not be used afterwards."""
        with self._lock:
            self._rs = None
            self._fed = False

    def _shape(self, y: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if self._dtype == "int16":
            out = y if y.dtype == np.int16 else to_int16(y)
        else:
            out = to_float32(y) if y.dtype == np.int16 else np.clip(y, -1.0, 1.0, dtype=np.float32)
        if self._channels > 1:
            out = np.repeat(out[:, np.newaxis], self._channels, axis=1)
        return out


def resample_pcm16(
    pcm16: Any, input_rate: _Rate, output_rate: _Rate, *, quality: str = "HQ"
) -> bytes:
    """One-shot resampling of a whole PCM16LE mono signal (e.g. a complete reply).

    For a live stream use :class:`AudioConverter` or :class:`OutputConverter` instead:
    resampling chunk by chunk with this function makes audible clicks at every border.
    """
    in_rate = _check_rate("input_rate", input_rate)
    out_rate = _check_rate("output_rate", output_rate)
    mv = _as_bytes(pcm16)
    x = np.frombuffer(mv[: len(mv) - len(mv) % 2], dtype="<i2")
    if in_rate == out_rate or not x.size:
        return x.tobytes()
    y = soxr.resample(to_float32(x), in_rate, out_rate, quality=_check_quality(quality))
    return to_int16(y).astype("<i2", copy=False).tobytes()
