"""The uplink: what the user gives (audio in any format, JPEG frames) turned into client events.

Audio (PCM, or G.711 decoded first) goes through one streaming resampler
(:class:`~dashscope_rt.audio.AudioConverter`) to the model's input rate and out in 100 ms
``input_audio_buffer.append`` chunks. The uplink counts the audio sent since the last commit,
because the service refuses an image with no audio before it in the buffer:
:meth:`Uplink.append_image` sends 200 ms of silence first when there is none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import limits
from .errors import InvalidInput, InvalidType

if TYPE_CHECKING:
    from .audio import AudioConverter

__all__ = ["IMAGE_B64_LIMIT", "Uplink"]

IMAGE_B64_LIMIT = limits.IMAGE_MAX_BASE64_BYTES
_SILENCE_BEFORE_IMAGE_MS = 200
_CHUNK_MS = 100


def check_jpeg(jpeg: Any) -> bytes:
    """``jpeg`` as bytes, or :class:`InvalidInput` saying why the service would refuse it."""
    if isinstance(jpeg, (bytearray, memoryview)):
        jpeg = bytes(jpeg)
    if not isinstance(jpeg, bytes):
        raise InvalidType(f"an image must be JPEG bytes, got {type(jpeg).__name__}")
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise InvalidInput("append_image() takes JPEG data only (it must start with FF D8 FF)")
    b64_len = limits.base64_size(len(jpeg))
    if b64_len > IMAGE_B64_LIMIT:
        raise InvalidInput(
            f"image too large: {len(jpeg)} bytes is {b64_len} after Base64; the limit is "
            f"{IMAGE_B64_LIMIT} (about 190 KB of JPEG): lower the resolution or quality"
        )
    return jpeg


class Uplink:
    """Audio conversion, chunking and commit accounting for one session. Thread-safe.

    ``send(event, audio)`` encodes and queues one client event (``audio``: the PCM it carries);
    ``input_rate()`` is the rate the model takes now (it can change with ``update()``).
    """

    def __init__(
        self,
        *,
        send: Callable[[ev.ClientEvent, bytes | None], str],
        input_rate: Callable[[], int],
    ) -> None:
        self._send = send
        self._input_rate = input_rate
        self._lock = threading.Lock()  # keeps convert + enqueue atomic, and chunks in order
        self._converter: AudioConverter | None = None
        self._converter_key: tuple[int, int] | None = None
        self._since_commit = 0

    @property
    def audio_since_commit(self) -> int:
        """Audio bytes appended since the last commit or clear."""
        return self._since_commit

    def append_audio(
        self, data: Any, sample_rate: int | None, channels: int, *, encoding: str = "pcm16"
    ) -> None:
        """Convert ``data`` to the input rate and send it in 100 ms chunks (a tail waits).

        G.711 (``encoding="ulaw"``/``"alaw"``) is decoded first; its rate defaults to 8 kHz.
        """
        if encoding != "pcm16":
            from .audio import G711_RATE, to_pcm16  # the audio package: on first use

            data = to_pcm16(data, encoding)
            sample_rate = G711_RATE if sample_rate is None else sample_rate
        target = self._input_rate()
        rate = target if sample_rate is None else sample_rate
        key = (rate, channels)
        with self._lock:
            chunks: list[bytes] = []
            conv = self._converter
            if conv is None:
                from .audio import AudioConverter  # numpy and soxr: imported on first use

                conv = AudioConverter(target, input_rate=rate, channels=channels)
                self._converter = conv
            elif key != self._converter_key:
                chunks.extend(conv.set_input(rate, channels))
            self._converter_key = key
            chunks.extend(conv.convert(data))
            for chunk in chunks:
                self._send_chunk(chunk)

    def flush(self) -> int:
        """Send what the resampler still holds; return the bytes sent."""
        with self._lock:
            if self._converter is None:
                return 0
            chunks = self._converter.flush()
            for chunk in chunks:
                self._send_chunk(chunk)
            return sum(len(c) for c in chunks)

    def append_pcm(self, pcm: bytes) -> None:
        """Send PCM16 already at the input rate, in 100 ms chunks, after any buffered audio."""
        step = max(2, self._input_rate() * _CHUNK_MS // 1000 * 2)
        with self._lock:
            if self._converter is not None:
                for chunk in self._converter.flush():
                    self._send_chunk(chunk)
            for i in range(0, len(pcm), step):
                self._send_chunk(pcm[i : i + step])

    def append_silence(self, ms: int) -> None:
        """Send ``ms`` milliseconds of silence (after any buffered audio)."""
        self.append_pcm(b"\x00\x00" * (self._input_rate() * ms // 1000))

    def append_image(self, jpeg: Any) -> str:
        """Send one JPEG frame, after 200 ms of silence if no audio precedes it in the buffer."""
        data = check_jpeg(jpeg)
        if self._since_commit == 0:
            self.flush()
        if self._since_commit == 0:
            self.append_silence(_SILENCE_BEFORE_IMAGE_MS)
        return self._send(ev.InputImageBufferAppend(image=data), None)

    def commit(self) -> str:
        """Flush the resampler and send ``input_audio_buffer.commit``."""
        self.flush()
        eid = self._send(ev.InputAudioBufferCommit(), None)
        self.committed()
        return eid

    def clear(self) -> str:
        """Drop the audio buffered here and on the server (``input_audio_buffer.clear``)."""
        self.reset()
        return self._send(ev.InputAudioBufferClear(), None)

    def committed(self) -> None:
        """The server's buffer was committed or cleared: no audio precedes the next image."""
        with self._lock:
            self._since_commit = 0

    def reset(self) -> None:
        """Forget buffered audio (a clear, or a new server session after a redial)."""
        with self._lock:
            if self._converter is not None:
                self._converter.reset()
            self._since_commit = 0

    def release(self) -> None:
        """Free the resampler (the session is over; a later append makes a new one)."""
        with self._lock:
            self._converter = None
            self._converter_key = None

    def _send_chunk(self, chunk: bytes) -> None:
        if chunk:
            self._send(ev.InputAudioBufferAppend(audio=chunk), chunk)
            self._since_commit += len(chunk)
