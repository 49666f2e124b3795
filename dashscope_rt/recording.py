"""The session log: a JSONL event log plus WAV files, written by a Session and replayed by the
simulator.

A log is a directory::

    events.jsonl   one JSON object per line
    input.wav      every audio chunk the client sent, concatenated (mono PCM16LE, input rate)
    output.wav     every audio chunk the server sent, concatenated (mono PCM16LE, output rate)
    images/        every image the client sent (000001.jpg, ...)

The first line of ``events.jsonl`` is a header::

    {"format": "dashscope_rt.log/1", "model": ..., "input_rate": 16000, "output_rate": 24000,
     "created": "<ISO 8601 UTC>"}

Each following line is an entry::

    {"t": <seconds since the log was opened, monotonic clock>, "dir": "send" | "recv",
     "event": {...the event as sent or received...}}

Audio payloads (``input_audio_buffer.append.audio`` and ``response.audio.delta.delta``) are
replaced by ``{"audio_ref": {"file": "input.wav", "offset": <byte offset in the PCM data>,
"length": <bytes>}}``; images (``input_image_buffer.append.image``) by ``{"image_ref": {"file":
"images/000001.jpg"}}``. :class:`LogReader` restores both as Base64 strings, so the events read back
are exactly what went over the wire.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import wave
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._logformat import (
    AUDIO_FIELDS,
    FORMAT,
    IMAGE_TYPE,
    LogEntry,
    LogHeader,
    LogReader,
    PathLike,
)

__all__ = [
    "AUDIO_FIELDS",
    "FORMAT",
    "LogEntry",
    "LogHeader",
    "LogReader",
    "LogWriter",
]

log = logging.getLogger("dashscope_rt.recording")

_SECRET_KEYS = frozenset({"authorization", "api_key", "apikey", "x-api-key", "token"})


def _scrub(value: Any) -> Any:
    """Drop anything that looks like a credential (the key is never written to a log)."""
    if isinstance(value, Mapping):
        return {
            k: ("<redacted>" if str(k).lower() in _SECRET_KEYS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


class _WavSink:
    def __init__(self, path: Path, rate: int) -> None:
        self.path = path
        self.rate = rate
        self._wav: wave.Wave_write | None = None
        self._fh: Any | None = None
        self.offset = 0

    def write(self, pcm: bytes) -> tuple[int, int]:
        if self._wav is None:
            self._fh = open(self.path, "wb")  # noqa: SIM115
            self._wav = wave.open(self._fh, "wb")  # noqa: SIM115
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.rate)
        pcm = pcm[: len(pcm) // 2 * 2]
        self._wav.writeframesraw(pcm)
        start = self.offset
        self.offset += len(pcm)
        return start, len(pcm)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class LogWriter:
    """Writes a session log; every method is thread-safe and cheap (one lock, buffered files).

    The Session calls :meth:`record_sent` for every client event and :meth:`record_received` for
    every server event; ``audio`` is the decoded PCM when the caller has it (else the Base64 field
    is decoded here).
    """

    def __init__(
        self,
        directory: PathLike,
        model: str,
        input_rate: int = 16000,
        output_rate: int = 24000,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._file = open(self.directory / "events.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._sinks = {
            "send": _WavSink(self.directory / "input.wav", input_rate),
            "recv": _WavSink(self.directory / "output.wav", output_rate),
        }
        self._images = 0
        self._closed = False
        header = {
            "format": FORMAT,
            "model": model,
            "input_rate": input_rate,
            "output_rate": output_rate,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._file.write(json.dumps(header, ensure_ascii=False) + "\n")

    def record_sent(self, event: Mapping[str, Any], audio: bytes | None = None) -> None:
        """Log a client event (``audio``: the PCM of an ``input_audio_buffer.append``)."""
        self._record("send", event, audio)

    def record_received(self, event: Mapping[str, Any], audio: bytes | None = None) -> None:
        """Log a server event (``audio``: the PCM of a ``response.audio.delta``)."""
        self._record("recv", event, audio)

    def _record(self, direction: str, event: Mapping[str, Any], audio: bytes | None) -> None:
        t = time.monotonic() - self._t0
        ev = dict(event)
        etype = str(ev.get("type", ""))
        field = AUDIO_FIELDS.get(etype)
        with self._lock:
            if self._closed:
                return
            if field is not None and (audio is not None or isinstance(ev.get(field), str)):
                pcm = audio if audio is not None else _b64(ev.get(field))
                sink = self._sinks[direction]
                offset, length = sink.write(pcm)
                ev[field] = {
                    "audio_ref": {"file": sink.path.name, "offset": offset, "length": length}
                }
            elif etype == IMAGE_TYPE and isinstance(ev.get("image"), str):
                self._images += 1
                name = f"images/{self._images:06d}.jpg"
                (self.directory / "images").mkdir(exist_ok=True)
                (self.directory / name).write_bytes(_b64(ev["image"]))
                ev["image"] = {"image_ref": {"file": name}}
            line = json.dumps(
                {"t": round(t, 6), "dir": direction, "event": _scrub(ev)}, ensure_ascii=False
            )
            self._file.write(line + "\n")

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._file.flush()
                for sink in self._sinks.values():
                    sink.flush()

    def close(self) -> None:
        """Finish the WAV headers and close the files (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._file.close()
            for sink in self._sinks.values():
                sink.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return b""
