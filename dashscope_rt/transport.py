"""The WebSocket connection: URL, handshake errors, one send lock, frames in, close.

:func:`~dashscope_rt._dial.dial` opens the connection (TCP, proxy, TLS and the HTTP upgrade under
one deadline); frames are the SDK's own (:mod:`dashscope_rt._frames`). This module knows nothing of
the protocol's events: it moves messages and maps every failure to :mod:`dashscope_rt.errors`.

Receiving tolerates what the real service sends and strict clients reject: a close frame whose
reason is longer than the 125 bytes RFC 6455 allows (protocol.md §9.3). Everything received passes
through the session's :class:`~dashscope_rt._redact.Redactor`, so a reflected key goes no further.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import struct
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping

from ._dial import ProxySetting, dial, pick_proxy, proxy_secrets, redact_url
from ._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    BadFrame,
    FrameReader,
    encode_frame,
)
from ._redact import Redactor
from .errors import ConnectionClosed, FrameTooLarge, QuotaExceeded

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "OP_BINARY",
    "OP_PONG",
    "OP_TEXT",
    "REGION_URLS",
    "ProxySetting",
    "Transport",
    "build_url",
    "proxy_secrets",
    "redact_url",
]

log = logging.getLogger("dashscope_rt.transport")

REGION_URLS: Mapping[str, str] = {
    "cn": "wss://dashscope.aliyuncs.com/api-ws/v1/realtime",
    "intl": "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime",
}
"""Endpoint per region: ``cn`` is Beijing, ``intl`` is Singapore. API keys are region-bound."""

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""The largest message accepted from the server by default (audio deltas are tens of KB)."""

if sys.platform.startswith("linux"):
    import fcntl
    import termios

    _SIOCOUTQ: int | None = termios.TIOCOUTQ  # the same request as SIOCOUTQ on Linux
else:  # elsewhere every frame goes through the sender thread
    _SIOCOUTQ = None

_ABNORMAL = 1006
# The service closes with a generic code (1007) when a quota runs out; only the reason tells
# (protocol.md §9.3: "The free tier of the model has been exhausted", AllocationQuota.*).
_QUOTA_REASON = re.compile(r"quota|free tier|exhausted", re.IGNORECASE)


def build_url(model: str, *, region: str = "cn", url: str | None = None) -> str:
    """The endpoint URL with ``?model=``; an explicit ``url`` wins over ``region``."""
    if url is None:
        try:
            url = REGION_URLS[region]
        except KeyError:
            choices = ", ".join(sorted(REGION_URLS))
            raise ValueError(f"region must be one of {choices}, got {region!r}") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"url must start with ws:// or wss://, got {redact_url(url)!r}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(k == "model" for k, _ in query):
        query.append(("model", model))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class Transport:
    """One open WebSocket. ``send_*``, :meth:`ping` and :meth:`close` are thread-safe.

    :meth:`recv` must be called from one thread only (the session's reader).
    """

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        *,
        redactor: Redactor | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._sock = sock
        self._reader = FrameReader(sock, max_frame_bytes)
        self._redactor = redactor or Redactor()
        self.url = redact_url(url)
        self._lock = threading.Lock()
        self._close_sent = False
        self._closed = False
        self.close_code: int | None = None
        self.close_reason = ""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Transport {self.url} {state}>"

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float = 10.0,
        region: str | None = None,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: ProxySetting = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> Transport:
        """Open the connection within ``timeout`` seconds overall, or raise the
        :class:`~dashscope_rt.errors.ConnectError` that fits.

        ``headers`` may hold the key; it appears in no message, nor does anything the server or
        a proxy sends back. Redirects are not followed, so the ``Authorization`` header never
        reaches another host. ``proxy``: an ``http://[user:password@]host:port`` URL, False for
        none, None (default) for ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY`` from the
        environment; loopback hosts are never proxied.
        """
        proxy_url = pick_proxy(url, proxy)
        redactor = Redactor.from_headers(headers, extra=proxy_secrets(proxy_url))
        sock = dial(
            url,
            headers=headers,
            timeout=timeout,
            redactor=redactor,
            region=region,
            ca_file=ca_file,
            ssl_context=ssl_context,
            proxy=proxy_url,
        )
        return cls(sock, url, redactor=redactor, max_frame_bytes=max_frame_bytes)

    # -- sending -------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Send one text frame (thread-safe). Raises ConnectionClosed if the socket is gone."""
        self._send(OP_TEXT, text.encode("utf-8"))

    def try_send_text(self, text: str, before: Callable[[], None] | None = None) -> bool:
        """Send one text frame on this thread if that cannot block; False: nothing was sent.

        True only when the send lock is free and the kernel's send buffer provably has room for
        the whole frame (:func:`_room_for`), so the write returns at once; ``before()`` runs
        just before it. A failed write also returns False: the caller queues the frame, and the
        sender meets the error.
        """
        if self._closed or self._close_sent or not self._lock.acquire(blocking=False):
            return False
        try:
            frame = encode_frame(OP_TEXT, text.encode("utf-8"))
            if not _room_for(self._sock, len(frame) + _TLS_SLACK):
                return False
            if before is not None:
                before()
            self._sock.sendall(frame)
            return True
        except (OSError, ValueError):
            return False
        finally:
            self._lock.release()

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (thread-safe)."""
        self._send(OP_PING, payload)

    def _send(self, opcode: int, data: bytes) -> None:
        if self._closed or self._close_sent:
            raise ConnectionClosed(self.close_code, self.close_reason, by_server=False)
        frame = encode_frame(opcode, data)
        try:
            with self._lock:
                self._sock.sendall(frame)
        except OSError as exc:
            raise ConnectionClosed(_ABNORMAL, f"send failed: {exc}", by_server=True) from exc

    # -- receiving -----------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Timeout of the blocking :meth:`recv` (and of a stuck send)."""
        with contextlib.suppress(OSError):
            self._sock.settimeout(timeout)

    def recv(self, until: float | None = None) -> tuple[int, bytes] | None:
        """Next message (text or binary) or pong as ``(opcode, payload)``; None on a timeout.

        ``until`` (a ``time.monotonic()`` value) is a deadline that holds however slowly the
        bytes of a frame arrive; it leaves the socket's timeout changed.

        Pings are answered here. A close frame, EOF or socket error raises
        :class:`~dashscope_rt.errors.ConnectionClosed`; a message over ``max_frame_bytes``
        raises :class:`~dashscope_rt.errors.FrameTooLarge` (after closing with 1009), broken
        framing a ConnectionClosed with code 1002.
        """
        while True:
            try:
                opcode, data = self._reader.read(until)
            except TimeoutError:
                return None
            except FrameTooLarge as exc:
                self.fail(1009, "message too big")
                raise exc from None
            except BadFrame as exc:
                self.fail(1002, "protocol error")
                reason = f"protocol violation: {exc}"
                raise ConnectionClosed(1002, reason, by_server=False) from None
            except (OSError, EOFError, ValueError) as exc:
                self._closed = True
                if self.close_code is not None:
                    raise ConnectionClosed(
                        self.close_code, self.close_reason, by_server=False
                    ) from None
                raise ConnectionClosed(_ABNORMAL, _eof_reason(exc), by_server=True) from None
            if opcode in (OP_TEXT, OP_BINARY):
                return opcode, self._redactor.data(data)
            if opcode == OP_PING:
                try:
                    with self._lock:
                        self._sock.sendall(encode_frame(OP_PONG, data))
                except OSError:
                    log.debug("could not answer a ping")
            elif opcode == OP_PONG:
                return opcode, data
            elif opcode == OP_CLOSE:
                self._on_close_frame(data)

    def _on_close_frame(self, data: bytes) -> None:
        code: int | None = 1005
        reason = ""
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            reason = self._redactor.text(data[2:].decode("utf-8", "replace"))
        by_server = not self._close_sent
        if by_server:
            self.close_code, self.close_reason = code, reason
            echo = code if code is not None and _valid_close_code(code) else 1000
            try:
                with self._lock:
                    self._close_sent = True
                    self._sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", echo)))
            except OSError:
                pass
        else:
            code, reason = self.close_code, self.close_reason
        self._closed = True
        self.abort()
        if by_server and _QUOTA_REASON.search(reason):
            raise QuotaExceeded(code, reason, by_server=True)
        raise ConnectionClosed(code, reason, by_server=by_server)

    def fail(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and shut the socket down at once, without waiting
        for the echo (for a peer that broke the protocol or cannot be kept up with)."""
        with contextlib.suppress(OSError), self._lock:
            if not self._close_sent:
                self._close_sent = True
                payload = struct.pack("!H", code) + reason.encode()
                self._sock.sendall(encode_frame(OP_CLOSE, payload))
        self.close_code, self.close_reason = code, reason
        self.abort()

    # -- closing -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the socket is closed (or a close frame was received)."""
        return self._closed

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once; thread-safe). The reader then sees the echo and ends."""
        if self._close_sent or self._closed:
            return
        payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
        try:
            with self._lock:
                if self._close_sent:
                    return
                self._close_sent = True
                self.close_code, self.close_reason = code, reason
                self._sock.sendall(encode_frame(OP_CLOSE, payload))
        except OSError:
            self.abort()

    def abort(self) -> None:
        """Shut the socket down now; a blocked :meth:`recv` returns with ConnectionClosed."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        """Free the socket (after the reader has stopped)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()


_TLS_SLACK = 256  # a TLS record's header and tag, and then some


def _room_for(sock: socket.socket, nbytes: int) -> bool:
    """Whether writing ``nbytes`` to ``sock`` now would return without waiting (Linux only).

    Linux blocks a TCP send only while the queued bytes' memory (payload plus per-packet
    overhead, at most about twice the payload) reaches the send buffer: twice the unsent and
    unacknowledged bytes (``SIOCOUTQ``) plus twice the frame below ``SO_SNDBUF`` cannot block.
    """
    if _SIOCOUTQ is None:
        return False
    try:
        queued: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
        size: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except (OSError, ValueError):
        return False
    return 2 * (queued + nbytes) <= size


def _valid_close_code(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def _eof_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "connection lost (no close frame)"
    return f"connection lost: {type(exc).__name__}: {exc}"
