"""A microphone source that pushes audio into a session without blocking PortAudio."""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, SessionClosed
from ._device import check_device, import_sounddevice
from ._player import StreamFactory

if TYPE_CHECKING:
    from ._aec import EchoCanceller

__all__ = ["Microphone"]

_log = logging.getLogger("dashscope_rt.audio")

_DTYPES = ("int16", "int32", "float32")


class Microphone:
    """Captures audio with ``sounddevice.RawInputStream`` and feeds it to a session.

    Threads: PortAudio calls the stream callback on its own thread; the callback only copies the
    block into a bounded queue and returns (when the queue is full the oldest block is dropped and
    :attr:`dropped_blocks` counts it). A worker thread ("dashscope_rt-mic") pops blocks and calls
    ``target.append_audio(data, sample_rate=..., channels=...)``, so a slow session delays
    delivery but never the audio callback.

    Parameters
    ----------
    target:
        A session (anything with ``append_audio``) or a callable with the same signature,
        ``fn(data, *, sample_rate, channels)``. ``data`` is PCM16LE bytes for ``dtype="int16"``,
        else a numpy array of that dtype, shape ``(frames,)`` or ``(frames, channels)``.
    sample_rate:
        Capture rate; None uses the device's default rate (16000 with a custom ``stream_factory``).
    channels, dtype, device:
        Passed to the stream. ``dtype`` is ``"int16"``, ``"int32"`` or ``"float32"``.
    blocksize:
        Frames per callback; default 20 ms.
    max_queue_ms:
        Audio that may wait for the worker before the oldest blocks are dropped.
    stream_factory:
        Replaces ``sounddevice.RawInputStream`` (for tests).
    echo_canceller:
        An :class:`~dashscope_rt.audio.EchoCanceller` (fed by the :class:`Player`) applied to
        every block on the worker thread; the target then gets mono PCM16LE bytes at the
        canceller's rate, in whole 10 ms frames.
    mute_while:
        Half duplex: blocks captured while ``mute_while()`` is true (e.g. ``lambda:
        player.playing``; called in the audio callback, so keep it cheap) become silence.
    """

    def __init__(
        self,
        target: Any,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        dtype: str = "int16",
        blocksize: int | None = None,
        device: Any = None,
        max_queue_ms: int = 2000,
        stream_factory: StreamFactory | None = None,
        echo_canceller: EchoCanceller | None = None,
        mute_while: Callable[[], bool] | None = None,
    ) -> None:
        sink = getattr(target, "append_audio", target)
        if not callable(sink):
            raise InvalidInput("target: expected a session or a callable like append_audio")
        if dtype not in _DTYPES:
            raise InvalidInput(f"dtype: {dtype!r} is not one of {', '.join(_DTYPES)}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
            raise InvalidInput(f"channels: {channels!r} is outside 1..64")
        if sample_rate is None:
            sample_rate = 16000 if stream_factory is not None else _default_input_rate(device)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise InvalidInput(f"sample_rate: expected a positive int, got {sample_rate!r}")
        if blocksize is None:
            blocksize = max(1, sample_rate // 50)
        if blocksize <= 0:
            raise InvalidInput(f"blocksize: {blocksize!r} must be > 0")
        self._sink: Callable[..., Any] = sink
        self._rate = sample_rate
        self._channels = channels
        self._dtype = dtype
        self._blocksize = blocksize
        self._device = device
        self._factory = stream_factory
        self._aec = echo_canceller
        self._mute = mute_while
        block_ms = blocksize * 1000 / sample_rate
        self._queue: collections.deque[bytes] = collections.deque(
            maxlen=max(1, math.ceil(max_queue_ms / block_ms))
        )
        self._wake = threading.Event()
        self._stopping = False
        self._sink_closed = False
        self._worker: threading.Thread | None = None
        self._stream: Any = None
        self._closed = False
        self._state_lock = threading.Lock()
        self.dropped_blocks = 0
        """Blocks dropped because the consumer fell more than ``max_queue_ms`` behind."""
        self.delivered_blocks = 0
        self.overflows = 0
        """Callbacks in which PortAudio reported an input overflow."""
        self.errors = 0
        """Exceptions raised by the target (logged, then capture continues)."""
        self.muted_blocks = 0
        """Blocks replaced by silence because ``mute_while()`` was true."""

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def running(self) -> bool:
        return self._stream is not None

    @property
    def queued_blocks(self) -> int:
        return len(self._queue)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Open the input stream and start capturing (idempotent)."""
        with self._state_lock:
            if self._closed:
                raise RuntimeError("Microphone is closed")
            if self._stream is not None:
                return
            if self._factory is None:
                check_device("input", self._device)
            factory = self._factory or import_sounddevice().RawInputStream
            stream = factory(
                samplerate=self._rate,
                channels=self._channels,
                dtype=self._dtype,
                blocksize=self._blocksize,
                device=self._device,
                callback=self._callback,
            )
            self._stopping = False
            if self._aec is not None:
                self._aec.reset()  # a new capture: line the reference up again
            self._worker = threading.Thread(target=self._run, name="dashscope_rt-mic", daemon=True)
            self._worker.start()
            self._stream = stream
        stream.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop capturing; blocks still queued are delivered before the worker ends."""
        with self._state_lock:
            stream, self._stream = self._stream, None
            worker, self._worker = self._worker, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        self._stopping = True
        self._wake.set()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    def close(self) -> None:
        """Stop and release the device. Idempotent."""
        self.stop()
        self._closed = True

    def __enter__(self) -> Microphone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads ----------------------------------------------------------------------------

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        if status is not None and getattr(status, "input_overflow", False):
            self.overflows += 1
        q = self._queue
        if len(q) == q.maxlen:
            self.dropped_blocks += 1
        if self._mute is not None and self._mute():
            self.muted_blocks += 1
            q.append(bytes(memoryview(indata).nbytes))
        else:
            q.append(bytes(indata))
        self._wake.set()

    def _run(self) -> None:
        q = self._queue
        while True:
            self._wake.wait()
            self._wake.clear()
            while q:
                try:
                    data = q.popleft()
                except IndexError:  # pragma: no cover - emptied concurrently
                    break
                self._deliver(data)
            if self._stopping:
                return

    def _deliver(self, data: bytes) -> None:
        if self._sink_closed:
            return
        payload: Any = data
        if self._dtype != "int16" or (self._aec is not None and self._channels > 1):
            arr = np.frombuffer(data, dtype=self._dtype)
            payload = arr.reshape(-1, self._channels) if self._channels > 1 else arr
        rate, channels = self._rate, self._channels
        try:
            if self._aec is not None:
                payload = self._aec.process(payload, sample_rate=rate)
                rate, channels = self._aec.sample_rate, 1
                if not payload:
                    return  # waiting for the rest of a 10 ms frame, or for its reference
            self._sink(payload, sample_rate=rate, channels=channels)
            self.delivered_blocks += 1
        except SessionClosed:
            _log.info("microphone: the session is closed; captured audio is discarded")
            self._sink_closed = True
        except Exception:
            self.errors += 1
            _log.exception("microphone: the target raised; capture continues")


def _default_input_rate(device: Any) -> int:
    return int(check_device("input", device)["default_samplerate"])
