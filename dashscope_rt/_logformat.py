"""The session log format (``dashscope_rt.log/1``) and its reader.

Written by :class:`dashscope_rt.recording.LogWriter` (the format is described there) and read
here, by :mod:`dashscope_rt.recording` users and by the simulator's replay, which must not depend
on the session layer. Reading a log is plain file I/O; nothing here opens a socket or a thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import attrs

from ._wire import b64encode

__all__ = ["AUDIO_FIELDS", "FORMAT", "IMAGE_TYPE", "LogEntry", "LogHeader", "LogReader", "PathLike"]

log = logging.getLogger("dashscope_rt.recording")

FORMAT = "dashscope_rt.log/1"

AUDIO_FIELDS: Mapping[str, str] = {
    "input_audio_buffer.append": "audio",
    "response.audio.delta": "delta",
}
"""Event type -> the field that carries Base64 audio."""
IMAGE_TYPE = "input_image_buffer.append"
"""The event whose ``image`` is kept in a file of its own."""

PathLike = Union[str, "os.PathLike[str]"]


@attrs.frozen
class LogHeader:
    """The first line of a log."""

    format: str
    model: str
    input_rate: int
    output_rate: int
    created: str = ""


@attrs.frozen
class LogEntry:
    """One logged event. ``event`` has its audio/image restored as Base64; ``audio`` is the PCM."""

    t: float
    dir: str
    event: Mapping[str, Any]
    audio: bytes | None = attrs.field(default=None, repr=False)

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))


class LogReader:
    """Reads a log written by :class:`~dashscope_rt.recording.LogWriter`; iterate it for
    :class:`LogEntry` objects."""

    def __init__(self, directory: PathLike) -> None:
        self.directory = Path(directory)
        path = self.directory / "events.jsonl" if self.directory.is_dir() else self.directory
        if path.name == "events.jsonl" and not self.directory.is_dir():
            self.directory = path.parent
        self._path = path
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        try:
            head = json.loads(first)
        except ValueError as exc:
            raise ValueError(f"{path}: not a dashscope_rt log (bad header)") from exc
        if not isinstance(head, dict) or not str(head.get("format", "")).startswith(
            "dashscope_rt.log/"
        ):
            raise ValueError(f"{path}: not a dashscope_rt log (format {head!r})")
        if head["format"] != FORMAT:
            log.warning("%s: log format %s, this reader knows %s", path, head["format"], FORMAT)
        self.header = LogHeader(
            format=str(head["format"]),
            model=str(head.get("model", "")),
            input_rate=int(head.get("input_rate", 16000)),
            output_rate=int(head.get("output_rate", 24000)),
            created=str(head.get("created", "")),
        )
        self._pcm: dict[str, bytes] = {}

    def _audio(self, ref: Mapping[str, Any]) -> bytes:
        name = str(ref["file"])
        if name not in self._pcm:
            # Read the data chunk directly: a writer that was never closed leaves 0 in the header.
            raw = (self.directory / name).read_bytes()
            idx = raw.find(b"data", 12, 200)
            self._pcm[name] = raw[idx + 8 :] if idx >= 0 else b""
        off, length = int(ref["offset"]), int(ref["length"])
        return self._pcm[name][off : off + length]

    def __iter__(self) -> Iterator[LogEntry]:
        with open(self._path, encoding="utf-8") as f:
            f.readline()
            for n, line in enumerate(f, start=2):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except ValueError:
                    log.warning("%s:%d: skipped a line that is not JSON", self._path, n)
                    continue
                event = dict(raw.get("event") or {})
                audio: bytes | None = None
                field = AUDIO_FIELDS.get(str(event.get("type", "")))
                value = event.get(field) if field else None
                if isinstance(value, Mapping) and "audio_ref" in value:
                    audio = self._audio(value["audio_ref"])
                    event[str(field)] = b64encode(audio)
                img = event.get("image")
                if isinstance(img, Mapping) and "image_ref" in img:
                    data = (self.directory / str(img["image_ref"]["file"])).read_bytes()
                    event["image"] = b64encode(data)
                yield LogEntry(float(raw.get("t", 0.0)), str(raw.get("dir", "")), event, audio)

    def entries(self) -> list[LogEntry]:
        return list(self)
