"""Opening a session: the WebSocket upgrade, then ``session.created`` → ``session.update`` →
``session.updated``, all within one connect timeout. Also the optional log of the frames.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import events as ev
from .errors import ConnectTimeout, ProtocolError, ServerError
from .transport import DEFAULT_MAX_FRAME_BYTES, OP_BINARY, OP_PONG, ProxySetting, Transport

__all__ = ["Dialer", "WireLog", "binary_frame_error", "server_error"]

log = logging.getLogger("dashscope_rt.session")


class Recorder(Protocol):
    """What the link needs of a session log (:class:`~dashscope_rt.recording.LogWriter`)."""

    def record_sent(self, event: dict[str, Any], *, audio: bytes | None = None) -> None: ...
    def record_received(self, event: dict[str, Any], *, audio: bytes | None = None) -> None: ...


def binary_frame_error(data: bytes) -> ProtocolError:
    """The error for a binary message: the protocol's events are text frames, so it is not
    parsed at all."""
    return ProtocolError(
        f"the server sent a binary frame of {len(data)} bytes; the protocol uses text frames "
        "only (it was not parsed)",
        frame=data,
    )


def server_error(event: ev.ErrorEvent, *, fatal: bool) -> ServerError:
    """The :class:`ServerError` for an ``error`` event (empty ids and codes, as the service
    sends them, become None: docs/protocol.md §4.1)."""
    d = event.error
    return ServerError(
        d.message or "server error",
        type=d.type or "",
        code=d.code or None,
        param=d.param or None,
        event_id=d.event_id or None,
        fatal=fatal,
    )


class WireLog:
    """Records the frames sent and received to a session log, when one is set."""

    def __init__(self) -> None:
        self.recorder: Recorder | None = None

    @property
    def active(self) -> bool:
        return self.recorder is not None

    def sent(self, text: str, audio: bytes | None = None) -> None:
        rec = self.recorder
        if rec is None:
            return
        try:
            event = json.loads(text)
            if audio is not None:
                event.pop("audio", None)
            rec.record_sent(event, audio=audio)
        except Exception:
            log.debug("recording a sent event failed", exc_info=True)

    def received(self, event: Any) -> None:
        rec = self.recorder
        if rec is None:
            return
        audio = event.audio if isinstance(event, ev.ResponseAudioDelta) else None
        try:
            rec.record_received(dict(getattr(event, "raw", None) or {}), audio=audio)
        except Exception:
            log.debug("recording a received event failed", exc_info=True)


class Dialer:
    """Where and how to connect; :meth:`dial` opens and configures one connection."""

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        region: str | None,
        timeout: float,
        ca_file: str | None,
        ssl_context: Any,
        proxy: ProxySetting = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.url = url
        self._headers = dict(headers)  # holds the key: never logged, never in a repr
        self.region = region
        self.timeout = timeout
        self.ca_file = ca_file
        self.ssl_context = ssl_context
        self.proxy = proxy
        self.max_frame_bytes = max_frame_bytes

    def dial(
        self,
        session: dict[str, Any],
        on_session: Callable[[ev.SessionInfo | None], None],
        wire_log: WireLog,
    ) -> tuple[Transport, list[tuple[float, Any]], str | None]:
        """Connect and configure: (transport, events received on the way, session id).

        ``session`` is sent in ``session.update``; ``on_session`` sees the server's payloads.
        On failure the socket is closed and the error raised (the server's, as fatal). The
        whole of it, from the first TCP packet to ``session.updated``, takes at most
        ``timeout`` seconds however slowly the bytes arrive.
        """
        deadline = time.monotonic() + self.timeout
        transport = Transport.connect(
            self.url,
            headers=self._headers,
            timeout=self.timeout,
            region=self.region,
            ca_file=self.ca_file,
            ssl_context=self.ssl_context,
            proxy=self.proxy,
            max_frame_bytes=self.max_frame_bytes,
        )
        try:
            early: list[tuple[float, Any]] = []
            created = self._await(transport, deadline, ev.SessionCreated, early, wire_log)
            on_session(created.session)
            text = ev.encode(ev.SessionUpdate(session=session))
            transport.send_text(text)
            wire_log.sent(text)
            updated = self._await(transport, deadline, ev.SessionUpdated, early, wire_log)
            on_session(updated.session)
            return transport, early, updated.session.id or created.session.id
        except BaseException:
            transport.abort()
            transport.release()
            raise

    def _await(
        self,
        transport: Transport,
        deadline: float,
        wanted: type[Any],
        early: list[tuple[float, Any]],
        wire_log: WireLog,
    ) -> Any:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectTimeout(
                    f"no {wanted.TYPE} within the connect timeout ({self.timeout:g} s)",
                    url=transport.url,
                )
            frame = transport.recv(until=deadline)
            if frame is None or frame[0] == OP_PONG:
                continue
            t = time.monotonic()
            try:
                if frame[0] == OP_BINARY:
                    raise binary_frame_error(frame[1])
                event = ev.decode(frame[1])
            except ProtocolError as exc:
                early.append((t, exc))  # reported to on_error once the dispatcher runs
                continue
            wire_log.received(event)
            early.append((t, event))
            if isinstance(event, ev.ErrorEvent):
                # During the handshake any error refuses the session: connect() raises it.
                raise server_error(event, fatal=True)
            if isinstance(event, wanted):
                return event
