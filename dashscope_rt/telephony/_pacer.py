"""Outbound pacing for one call: reply audio leaves in real time, one 20 ms frame a message.

Twilio plays what it receives and buffers the rest; sending a whole reply at once would leave
seconds of audio in its buffer, out of reach of a barge-in. The pacer keeps only ``lead_ms``
ahead of the playback it estimates, sends each mark when the audio queued before it has gone,
and on :meth:`clear` drops its queue and sends Twilio's ``clear``. Every send happens under one
lock, so no frame queued before a clear can leave after it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable

from ._twilio import clear_message, mark_message, media_message

__all__ = ["Pacer"]

log = logging.getLogger("dashscope_rt.telephony")

_ids = itertools.count(1)


class Pacer:
    """Sends queued frames and marks over ``send`` from a thread of its own.

    ``frame_bytes`` is the size of one frame (160 for 20 ms of 8 kHz G.711). ``send`` raising
    means the socket is gone: the pacer stops and calls ``on_error`` with the exception.
    """

    def __init__(
        self,
        send: Callable[[str], None],
        stream_sid: str,
        *,
        frame_bytes: int = 160,
        frame_ms: int = 20,
        lead_ms: int = 60,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._send = send
        self._sid = stream_sid
        self._frame_bytes = frame_bytes
        self._frame_s = frame_ms / 1000.0
        self._lead_s = lead_ms / 1000.0
        self._on_error = on_error
        self._cond = threading.Condition()
        self._queue: collections.deque[bytes | str] = collections.deque()
        """Frames (bytes) and mark names (str), in sending order."""
        self._play_end = 0.0
        self._stopped = False
        self.frames_sent = 0
        self._thread = threading.Thread(
            target=self._run, name=f"dashscope_rt-phone-{next(_ids)}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def put_audio(self, frames: bytes) -> int:
        """Queue whole frames (``len(frames)`` a multiple of ``frame_bytes``); return how many."""
        fb = self._frame_bytes
        with self._cond:
            self._queue.extend(frames[i : i + fb] for i in range(0, len(frames), fb))
            self._cond.notify()
        return len(frames) // fb

    def put_mark(self, name: str) -> None:
        """Queue a mark: sent as soon as every frame queued before it has been sent."""
        with self._cond:
            self._queue.append(name)
            self._cond.notify()

    @property
    def pending(self) -> bool:
        """True while frames wait here or Twilio is estimated to be still playing."""
        with self._cond:
            return bool(self._queue) or self._play_end > time.monotonic()

    def clear(self) -> list[str]:
        """Drop everything queued and send ``clear``; return the names of the dropped marks."""
        with self._cond:
            dropped = [item for item in self._queue if isinstance(item, str)]
            self._queue.clear()
            self._play_end = 0.0
            self._send_locked(clear_message(self._sid))
            return dropped

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sending (what is queued is dropped) and join the thread."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _send_locked(self, message: str) -> None:
        if self._stopped:
            return
        try:
            self._send(message)
        except Exception as exc:  # the caller's socket is gone
            log.debug("call %s: send failed: %r", self._sid, exc)
            self._stopped = True
            self._queue.clear()
            if self._on_error is not None:
                self._on_error(exc)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._queue:
                    self._cond.wait()
                    continue
                head = self._queue[0]
                if isinstance(head, str):
                    self._queue.popleft()
                    self._send_locked(mark_message(self._sid, head))
                    continue
                now = time.monotonic()
                wait = self._play_end - self._lead_s - now
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._queue.popleft()
                self._send_locked(media_message(self._sid, head))
                self.frames_sent += 1
                self._play_end = max(self._play_end, now) + self._frame_s
