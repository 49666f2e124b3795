"""A playback buffer over a ``sounddevice.RawOutputStream``, clearable for barge-in."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ._convert import OutputConverter
from ._device import check_device, import_sounddevice

if TYPE_CHECKING:
    from ._aec import EchoCanceller

__all__ = ["Player", "StreamFactory"]

_log = logging.getLogger("dashscope_rt.audio")

_SEGMENTS_KEPT = 32
_ECHO_TAIL_S = 0.3  # how long the room still rings after the last sample (for ``playing``)


class _Segment:
    """The audio of one response on the player's timeline of written frames."""

    __slots__ = ("cut_at", "end", "response_id", "start")

    def __init__(self, response_id: str | None, start: int, end: int) -> None:
        self.response_id = response_id
        self.start = start
        self.end = end
        self.cut_at: int | None = None  # timeline position at which clear() dropped the rest

    def played(self, head: int) -> int:
        pos = head if self.cut_at is None else self.cut_at
        return max(0, min(pos, self.end) - self.start)


#: ``factory(samplerate=, channels=, dtype=, blocksize=, device=, callback=) -> stream``; the stream
#: has ``start()``, ``stop()`` and ``close()`` (``sounddevice.RawOutputStream`` / ``RawInputStream``
#: fit). Tests pass a fake one and call ``callback`` themselves.
StreamFactory = Callable[..., Any]


class Player:
    """Plays PCM16LE mono (the model's reply audio) on a sound card.

    ``write()`` only appends to a buffer and never blocks; PortAudio's callback thread pulls from
    that buffer and plays silence when it runs dry. :meth:`clear` drops everything not yet played
    (barge-in). Position counters tell how much real audio was handed to the device, per
    response when :meth:`write` is given ``response_id`` (:meth:`played_ms_of`), so a session
    knows how much of an interrupted reply the user heard.

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
    echo_canceller:
        An :class:`~dashscope_rt.audio.EchoCanceller` fed with exactly what the device is given,
        silence included, from the audio callback.

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
        echo_canceller: EchoCanceller | None = None,
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
        self._aec = echo_canceller
        self._segments: collections.deque[_Segment] = collections.deque(maxlen=_SEGMENTS_KEPT)
        self._last_sound = -1e9  # time.monotonic() when real audio last went to the device

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
            self._conv.release()  # soxr's native state must not outlive the player
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

    def write(self, pcm16: Any, *, response_id: str | None = None) -> None:
        """Queue PCM16LE mono at ``sample_rate`` (bytes or int16 array); never blocks on playback.

        ``response_id`` tags the audio so that :meth:`played_ms_of` can tell how much of that
        response was played. Safe to call from the session's event thread.
        """
        if self._closed:
            return
        if self._stream is None:
            self.start()
        self._enqueue(self._conv.convert(pcm16).tobytes(), response_id)

    def flush(self) -> None:
        """Queue the resampler's tail at the end of a reply (only matters when resampling)."""
        if self._closed:
            return
        last = self._segments[-1].response_id if self._segments else None
        self._enqueue(self._conv.flush().tobytes(), last)

    def clear(self) -> float:
        """Drop all queued audio (barge-in); return how many milliseconds were dropped."""
        with self._lock:
            dropped = len(self._buf) // self._frame_bytes
            head = self._written_frames - dropped
            for seg in self._segments:
                if seg.end > head and seg.cut_at is None:
                    seg.cut_at = head
            self._buf.clear()
            if not self._closed:
                self._conv.reset()
        self._drained.set()
        return dropped * 1000.0 / self._out_rate

    def wait_done(self, timeout: float | None = None) -> bool:
        """Flush, then wait until every queued sample was handed to the device; False on timeout."""
        self.flush()
        return self._drained.wait(timeout)

    def _enqueue(self, data: bytes, response_id: str | None) -> None:
        if not data:
            return
        with self._lock:
            if self._closed:
                return
            self._buf += data
            start = self._written_frames
            self._written_frames += len(data) // self._frame_bytes
            last = self._segments[-1] if self._segments else None
            if last is not None and last.response_id == response_id and last.end == start:
                last.end = self._written_frames
            else:
                self._segments.append(_Segment(response_id, start, self._written_frames))
            self._drained.clear()

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
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
        if n:
            self._last_sound = time.monotonic()
        data = chunk if n == need else chunk + bytes(need - n)
        outdata[:] = data
        aec = self._aec
        if aec is not None:
            played = np.frombuffer(data, dtype="<i2")
            if self._channels > 1:
                played = played.reshape(-1, self._channels)
            aec.feed_playback(played, sample_rate=int(self._out_rate))

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
    def playing_response_id(self) -> str | None:
        """The ``response_id`` of the audio the device is given now (None when idle/untagged)."""
        with self._lock:
            head = self._written_frames - len(self._buf) // self._frame_bytes
            for seg in reversed(self._segments):
                if seg.start <= head < seg.end:
                    return seg.response_id
        return None

    def played_ms_of(self, response_id: str | None) -> float:
        """Milliseconds of the audio written with this ``response_id`` handed to the device (the
        rest was cleared, or is still queued). 0 when unknown."""
        with self._lock:
            head = self._written_frames - len(self._buf) // self._frame_bytes
            frames = sum(s.played(head) for s in self._segments if s.response_id == response_id)
        return frames * 1000.0 / self._out_rate

    @property
    def playing(self) -> bool:
        """Audio is queued, or went to the device less than the output latency plus 0.3 s ago
        (what a half-duplex microphone waits for before it listens again)."""
        if self._buf:
            return True
        return time.monotonic() - self._last_sound < self.latency_ms / 1000.0 + _ECHO_TAIL_S

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
