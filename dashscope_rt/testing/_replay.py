"""Replay a recorded session log (written by :mod:`dashscope_rt.recording`) to a client.

The recorded server events are cut into blocks: the events before the first client event, then
the events after each recorded client event. A block is released when the client has sent the
matching event — matched loosely, by type and order: the k-th recorded event of a type is matched
by the client's k-th event of that type, and for ``input_audio_buffer.append`` by the amount of
audio (the block waits until the client has appended at least as much audio as the recording had
at that point). Blocks are released in order; client events that match nothing are ignored.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

import attrs

from .._logformat import LogReader
from ..errors import ProtocolError
from ..events import InputAudioBufferAppend, decode_client
from ._outbox import Outgoing

__all__ = ["ReplayEngine"]

log = logging.getLogger("dashscope_rt.testing")

_APPEND = InputAudioBufferAppend.TYPE


@attrs.define
class _Block:
    trigger_type: str | None
    trigger_count: int
    """k for "k-th event of this type", or cumulative audio bytes for appends."""
    trigger_t: float
    events: list[tuple[float, dict[str, Any]]] = attrs.field(factory=list)


class ReplayEngine:
    """Engine-compatible replayer: ``receive`` / ``poll`` / ``next_due`` like SimulatedSession."""

    def __init__(self, log_dir: str | Path, *, now: float = 0.0, realtime: bool = False) -> None:
        self.reader = LogReader(log_dir)
        self.header = self.reader.header
        self.realtime = realtime
        self.closing = False
        self.blocks: list[_Block] = [_Block(None, 0, 0.0)]
        counts: collections.Counter[str] = collections.Counter()
        audio = 0
        for entry in self.reader:
            if entry.dir == "send":
                etype = entry.type
                if etype == _APPEND:
                    audio += len(entry.audio or b"")
                    count = audio
                else:
                    counts[etype] += 1
                    count = counts[etype]
                self.blocks.append(_Block(etype, count, entry.t))
            elif entry.dir == "recv":
                self.blocks[-1].events.append((entry.t, dict(entry.event)))
        self.blocks = [b for b in self.blocks if b.events or b.trigger_type is None]
        self._seen: collections.Counter[str] = collections.Counter()
        self._audio = 0
        self._queue: collections.deque[tuple[float, Outgoing]] = collections.deque()
        self._next = 0
        self._release(now)

    def _ready(self, block: _Block) -> bool:
        if block.trigger_type is None:
            return True
        have = self._audio if block.trigger_type == _APPEND else self._seen[block.trigger_type]
        return have >= block.trigger_count

    def _release(self, now: float) -> None:
        while self._next < len(self.blocks) and self._ready(self.blocks[self._next]):
            block = self.blocks[self._next]
            self._next += 1
            base = self._queue[-1][0] if self._queue else now
            start = max(now, base)
            for t, ev in block.events:
                due = start + max(0.0, t - block.trigger_t) if self.realtime else now
                self._queue.append((max(due, base), Outgoing(ev)))
                base = max(due, base)

    @property
    def done(self) -> bool:
        """Every recorded server event was released."""
        return self._next >= len(self.blocks)

    def receive(self, frame: str | bytes, now: float) -> None:
        try:
            event = decode_client(frame)
        except ProtocolError as exc:  # still count an event of a type the core refused
            etype = exc.frame.get("type") if isinstance(exc.frame, dict) else None
            if isinstance(etype, str) and etype != _APPEND:
                self._seen[etype] += 1
                self._release(now)
            return
        if isinstance(event, InputAudioBufferAppend):
            self._audio += len(event.audio)
        else:
            self._seen[event.TYPE] += 1
        self._release(now)

    def poll(self, now: float) -> list[Outgoing]:
        out: list[Outgoing] = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._queue.popleft()[1])
        return out

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None
