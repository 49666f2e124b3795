"""A playback buffer over a ``sounddevice.RawOutputStream``, clearable for barge-in."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ._convert import OutputConverter
from ._device import check_device, import_sounddevice

__all__ = ["Player", "StreamFactory"]

_log = logging.getLogger("dashscope_rt.audio")

#: ``factory(samplerate=, channels=, dtype=, blocksize=, device=, callback=) -> stream``; the stream
#: has ``start()``, ``stop()`` and ``close()`` (``sounddevice.RawOutputStream`` / ``RawInputStream``
#: fit). Tests pass a fake one and call ``callback`` themselves.
StreamFactory = Callable[..., Any]


class Player:
    """Plays PCM16LE mono (the model's reply audio) on a sound card.

    ``write()`` only appends to a buffer and never blocks; PortAudio's callback thread pulls from
    that buffer and plays silence when it runs dry. :meth:`clear` drops everything not yet played
    (barge-in). Position counters tell how much real audio was handed to the device, so a
    session can truncate a reply at what the user heard (minus :attr:`latency_ms`).

    Parameters
    ----------
    sample_rate:
        Rate of the PCM given to :meth:`write` (24000 for Qwen-Omni replies).
    device:
        sounddevice output device (index or name substring); None for the default.
    output_rate, channels:
        What the device is opened with, if it cannot take ``sample_rate`` mono; the audio is then
        resampled with a streaming soxr resampler and copied to every channel.
    blocksize:
        Frames per callback (0 lets PortAudio choose).
    stream_factory:
        Replaces ``sounddevice.RawOutputStream`` (for tests).

    ``sounddevice`` is imported only when the stream is opened. Use as a context manager, or
    call :meth:`start`/:meth:`close`; :meth:`write` starts the stream if needed and is ignored
    after :meth:`close`.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        *,
        device: Any = None,
        output_rate: int | None = None,
        channels: int = 1,
        blocksize: int = 0,
        stream_factory: StreamFactory | None = None,
    ) -> None:
        self._conv = OutputConverter(sample_rate, output_rate, dtype="int16", channels=channels)
        self._sample_rate = int(self._conv.input_rate)
        self._out_rate = self._conv.output_rate
        self._channels = channels
        self._frame_bytes = 2 * channels
        self._device = device
        self._blocksize = blocksize
        self._factory = stream_factory
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._played_frames = 0
        self._written_frames = 0
        self._underruns = 0
        self._drained = threading.Event()
        self._drained.set()
        self._stream: Any = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Open and start the output stream (idempotent)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("Player is closed")
            if self._stream is not None:
                return
            if self._factory is None:
                check_device("output", self._device)
            factory = self._factory or import_sounddevice().RawOutputStream
            stream = factory(
                samplerate=self._out_rate,
                channels=self._channels,
                dtype="int16",
                blocksize=self._blocksize,
                device=self._device,
                callback=self._callback,
            )
            self._stream = stream
        stream.start()

    def close(self) -> None:
        """Stop and close the stream; queued audio is dropped. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream, self._stream = self._stream, None
            self._buf.clear()
        self._drained.set()
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- feeding ----------------------------------------------------------------------------

    def write(self, pcm16: Any) -> None:
        """Queue PCM16LE mono at ``sample_rate`` (bytes or int16 array); never blocks on playback.

        Safe to call from the session's event thread (e.g. in ``on_audio_delta``).
        """
        if self._stream is None and not self._closed:
            self.start()
        self._enqueue(self._conv.convert(pcm16).tobytes())

    def flush(self) -> None:
        """Queue the resampler's tail at the end of a reply (only matters when resampling)."""
        self._enqueue(self._conv.flush().tobytes())

    def clear(self) -> float:
        """Drop all queued audio (barge-in); return how many milliseconds were dropped."""
        with self._lock:
            dropped = len(self._buf) // self._frame_bytes
            self._buf.clear()
            self._conv.reset()
        self._drained.set()
        return dropped * 1000.0 / self._out_rate

    def wait_done(self, timeout: float | None = None) -> bool:
        """Flush, then wait until every queued sample was handed to the device; False on timeout."""
        self.flush()
        return self._drained.wait(timeout)

    def _enqueue(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            if self._closed:
                return
            self._buf += data
            self._written_frames += len(data) // self._frame_bytes
            self._drained.clear()

    def _callback(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        need = frames * self._frame_bytes
        with self._lock:
            n = min(len(self._buf), need)
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._played_frames += n // self._frame_bytes
            if 0 < n < need:
                self._underruns += 1
            empty = not self._buf
        if empty:
            self._drained.set()
        outdata[:] = chunk if n == need else chunk + bytes(need - n)

    # -- position ---------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def output_rate(self) -> float:
        return self._out_rate

    @property
    def played_ms(self) -> float:
        """Milliseconds of queued audio handed to the device so far (silence not counted)."""
        return self._played_frames * 1000.0 / self._out_rate

    @property
    def played_bytes(self) -> int:
        """:attr:`played_ms` expressed in bytes of the PCM16 mono given to :meth:`write`."""
        if self._out_rate == self._sample_rate:
            return self._played_frames * 2
        return int(self._played_frames * self._sample_rate / self._out_rate) * 2

    @property
    def written_ms(self) -> float:
        """Milliseconds of audio queued since creation (played, queued or cleared)."""
        return self._written_frames * 1000.0 / self._out_rate

    @property
    def queued_ms(self) -> float:
        """Milliseconds waiting to be played."""
        return len(self._buf) // self._frame_bytes * 1000.0 / self._out_rate

    @property
    def underruns(self) -> int:
        """Callbacks in which the buffer ran dry in the middle of the audio."""
        return self._underruns

    @property
    def latency_ms(self) -> float:
        """The output stream's reported latency (0 when unknown or not started)."""
        latency = getattr(self._stream, "latency", None)
        return float(latency) * 1000.0 if isinstance(latency, (int, float)) else 0.0

    @property
    def active(self) -> bool:
        return self._stream is not None and not self._closed
