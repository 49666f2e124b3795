"""The WebSocket connection: URL, handshake errors, one send lock, frames in, close.

A thin wrapper over websocket-client's low-level :class:`websocket.WebSocket` (never
``WebSocketApp``, which swallows exceptions raised in callbacks). It knows nothing of the
protocol's events: it moves text frames and maps every failure to :mod:`dashscope_rt.errors`.

Receiving tolerates what the real service sends and websocket-client rejects: a close frame
whose reason is longer than the 125 bytes RFC 6455 allows (protocol.md §9.3).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import sys
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import websocket
from websocket import ABNF

from .errors import (
    AuthenticationError,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeError,
    NameResolutionError,
    TLSError,
)

__all__ = [
    "REGION_URLS",
    "Transport",
    "build_url",
    "redact_url",
]

log = logging.getLogger("dashscope_rt.transport")

REGION_URLS: Mapping[str, str] = {
    "cn": "wss://dashscope.aliyuncs.com/api-ws/v1/realtime",
    "intl": "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime",
}
"""Endpoint per region: ``cn`` is Beijing, ``intl`` is Singapore. API keys are region-bound."""

_REGION_NAMES = {"cn": "China (Beijing)", "intl": "International (Singapore)"}
_SECRET_QUERY_KEYS = ("api_key", "apikey", "key", "token", "access_token", "authorization")
if sys.platform.startswith("linux"):
    import fcntl
    import termios

    _SIOCOUTQ: int | None = termios.TIOCOUTQ  # the same request as SIOCOUTQ on Linux
else:  # elsewhere every frame goes through the sender thread
    _SIOCOUTQ = None

_ABNORMAL = 1006
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Frame(ABNF):
    """An outgoing frame masked with numpy: about 3x cheaper than websocket-client's big-int
    XOR for the ~4 KB audio appends that are most of the uplink."""

    def _get_masked(self, mask_key: str | bytes) -> bytes:
        import numpy as np  # here, not at import: `import dashscope_rt` stays light

        key = mask_key.encode("latin-1") if isinstance(mask_key, str) else mask_key
        data = self.data if isinstance(self.data, bytes) else self.data.encode("latin-1")
        n = len(data)
        pad = np.frombuffer(key * (n // 4 + 1), dtype=np.uint8, count=n)
        return key + np.bitwise_xor(np.frombuffer(data, dtype=np.uint8), pad).tobytes()


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


def redact_url(url: str) -> str:
    """``url`` with user info and secret-looking query values masked, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = [
        (k, "***" if k.lower() in _SECRET_QUERY_KEYS else v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(
        parts._replace(netloc=netloc, query=urllib.parse.urlencode(query, safe="*"))
    )


def _where(url: str, region: str | None) -> str:
    host = urllib.parse.urlsplit(url).hostname or "?"
    if region in _REGION_NAMES:
        return f"{host} (region {region!r}, {_REGION_NAMES[region]})"
    return host


def _sslopt(ca_file: str | None, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
    if ssl_context is not None:
        return {"context": ssl_context}
    opt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
    if ca_file is not None:
        opt["ca_certs"] = ca_file
    return opt


def _decode_body(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return "" if body is None else str(body)


class Transport:
    """One open WebSocket. ``send_*``, :meth:`ping` and :meth:`close` are thread-safe.

    :meth:`recv` must be called from one thread only (the session's reader).
    """

    def __init__(self, ws: websocket.WebSocket, url: str) -> None:
        self._ws = ws
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
    ) -> Transport:
        """Open the connection, or raise the :class:`~dashscope_rt.errors.ConnectError` that fits.

        ``headers`` may hold the key; it appears in no message. Redirects are not followed, so the
        ``Authorization`` header never reaches another host.
        """
        safe_url = redact_url(url)
        ws = websocket.WebSocket(
            sslopt=_sslopt(ca_file, ssl_context),
            enable_multithread=True,
            skip_utf8_validation=True,
        )
        header_list = [f"{k}: {v}" for k, v in headers.items()]
        try:
            ws.connect(url, header=header_list, timeout=timeout, redirect_limit=0)  # type: ignore[no-untyped-call]
        except websocket.WebSocketBadStatusException as exc:
            _close_quietly(ws)
            status = int(exc.status_code)
            body = _decode_body(exc.resp_body)
            resp_headers = {str(k): str(v) for k, v in (exc.resp_headers or {}).items()}
            if status in (401, 403):
                raise AuthenticationError(
                    f"HTTP {status} at the handshake with {_where(url, region)}: the API key was "
                    "refused. Keys are region-bound: check that this key belongs to that region "
                    "(or pass region=/url=)",
                    url=safe_url,
                    status=status,
                    body=body,
                    headers=resp_headers,
                    region=region,
                ) from None
            raise HandshakeError(
                f"HTTP {status} at the handshake with {safe_url}: {body[:200]}",
                url=safe_url,
                status=status,
                body=body,
                headers=resp_headers,
            ) from None
        except Exception as exc:
            _close_quietly(ws)
            raise _connect_error(exc, safe_url) from exc
        response = ws.handshake_response
        if response is not None and response.status in _REDIRECTS:
            # websocket-client < 1.9.2 (the last release for Python 3.9) reports a redirect
            # it did not follow as a successful connect.
            _close_quietly(ws)
            raise _connect_error(websocket.WebSocketException("Redirect not followed"), safe_url)
        return cls(ws, url)

    # -- sending -------------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Send one text frame (thread-safe). Raises ConnectionClosed if the socket is gone."""
        self._send(text.encode("utf-8"), ABNF.OPCODE_TEXT)

    def try_send_text(self, text: str) -> bool:
        """Send one text frame on this thread if that cannot block; False: nothing was sent.

        True only when the send lock is free and the kernel's send buffer provably has room for
        the whole frame (:func:`_room_for`), so the write returns at once. A failed write also
        returns False: the caller queues the frame, and the sender meets the error.
        """
        data = text.encode("utf-8")
        if self._closed or self._close_sent or not self._lock.acquire(blocking=False):
            return False
        try:
            sock = self._ws.sock
            if sock is None or not _room_for(sock, len(data) + _FRAME_SLACK):
                return False
            self._ws.send_frame(_Frame(1, 0, 0, 0, ABNF.OPCODE_TEXT, 1, data))
            return True
        except (OSError, websocket.WebSocketException, ValueError):
            return False
        finally:
            self._lock.release()

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (thread-safe)."""
        self._send(payload, ABNF.OPCODE_PING)

    def _send(self, data: bytes, opcode: int) -> None:
        if self._closed or self._close_sent:
            raise ConnectionClosed(self.close_code, self.close_reason, by_server=False)
        try:
            with self._lock:
                self._ws.send_frame(_Frame(1, 0, 0, 0, opcode, 1, data))
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionClosed(_ABNORMAL, f"send failed: {exc}", by_server=True) from exc

    # -- receiving -----------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Timeout of the blocking :meth:`recv` (and of a stuck send)."""
        sock = self._ws.sock
        if sock is not None:
            sock.settimeout(timeout)

    def recv(self) -> tuple[int, bytes] | None:
        """Next data or pong frame as ``(opcode, payload)``; None when the recv timeout expired.

        Pings are answered here. A close frame, EOF or socket error raises
        :class:`~dashscope_rt.errors.ConnectionClosed`.
        """
        ws = self._ws
        while True:
            try:
                frame = _recv_frame(ws.frame_buffer)
            except websocket.WebSocketTimeoutException:
                return None
            except TimeoutError:
                return None
            except (OSError, websocket.WebSocketException, struct.error) as exc:
                self._closed = True
                if self.close_code is not None:
                    raise ConnectionClosed(
                        self.close_code, self.close_reason, by_server=False
                    ) from None
                raise ConnectionClosed(_ABNORMAL, _eof_reason(exc), by_server=True) from None
            op = frame.opcode
            if op in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                ws.cont_frame.validate(frame)
                ws.cont_frame.add(frame)
                if ws.cont_frame.is_fire(frame):
                    opcode, full = ws.cont_frame.extract(frame)
                    return int(opcode), bytes(full.data)
            elif op == ABNF.OPCODE_PING:
                try:
                    with self._lock:
                        ws.pong(frame.data)
                except (OSError, websocket.WebSocketException):
                    log.debug("could not answer a ping")
            elif op == ABNF.OPCODE_PONG:
                return int(op), bytes(frame.data)
            elif op == ABNF.OPCODE_CLOSE:
                self._on_close_frame(bytes(frame.data))

    def _on_close_frame(self, data: bytes) -> None:
        code: int | None = 1005
        reason = ""
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            reason = data[2:].decode("utf-8", "replace")
        by_server = not self._close_sent
        if by_server:
            self.close_code, self.close_reason = code, reason
            echo = code if code is not None and _valid_close_code(code) else 1000
            try:
                with self._lock:
                    self._close_sent = True
                    self._ws.send(struct.pack("!H", echo), ABNF.OPCODE_CLOSE)
            except (OSError, websocket.WebSocketException):
                pass
        else:
            code, reason = self.close_code, self.close_reason
        self._closed = True
        self._shutdown()
        raise ConnectionClosed(code, reason, by_server=by_server)

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
                self._ws.send(payload, ABNF.OPCODE_CLOSE)
        except (OSError, websocket.WebSocketException):
            self.abort()

    def abort(self) -> None:
        """Shut the socket down now; a blocked :meth:`recv` returns with ConnectionClosed."""
        self._closed = True
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _shutdown(self) -> None:
        self.abort()

    def release(self) -> None:
        """Free the socket (after the reader has stopped)."""
        self._closed = True
        try:
            self._ws.shutdown()  # type: ignore[no-untyped-call]
        except Exception:  # pragma: no cover - best effort
            log.debug("socket shutdown failed", exc_info=True)


_FRAME_SLACK = 256  # frame header, mask key, a TLS record's overhead


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
    if isinstance(exc, websocket.WebSocketConnectionClosedException):
        return "connection lost (no close frame)"
    return f"connection lost: {type(exc).__name__}: {exc}"


def _recv_frame(fb: Any) -> Any:
    """``frame_buffer.recv_frame`` that accepts over-long close frames.

    Mirrors websocket-client's ``frame_buffer.recv_frame``; its state survives a recv timeout,
    so a partly received frame resumes on the next call.
    """
    if fb.needs_header():
        fb.recv_header()
    fin, rsv1, rsv2, rsv3, opcode, has_mask, _ = fb.header
    if fb.needs_length():
        fb.recv_length()
    length = fb.length
    if fb.needs_mask():
        fb.recv_mask()
    mask_value = fb.mask_value
    payload = fb.recv_strict(length)
    if has_mask:
        payload = ABNF.mask(mask_value, payload)
    fb.clear()
    frame = ABNF(fin, rsv1, rsv2, rsv3, opcode, has_mask, payload)
    if opcode != ABNF.OPCODE_CLOSE or len(payload) < 126:
        frame.validate(skip_utf8_validation=True)
    return frame


def _close_quietly(ws: websocket.WebSocket) -> None:
    with contextlib.suppress(Exception):
        ws.shutdown()  # type: ignore[no-untyped-call]


def _connect_error(exc: BaseException, url: str) -> ConnectError:
    host = urllib.parse.urlsplit(url).netloc or url
    cause = f"{type(exc).__name__}: {exc}"
    err: ConnectError | None = None
    if isinstance(exc, (websocket.WebSocketAddressException, socket.gaierror)):
        err = NameResolutionError(f"cannot resolve the host of {url} ({cause})", url=url)
    elif isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        err = TLSError(f"TLS failed with {host}: {cause}", url=url)
    elif isinstance(exc, ConnectionRefusedError):
        err = ConnectionRefused(f"connection refused by {host} (nothing listening?)", url=url)
    elif isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        err = ConnectTimeout(f"no answer from {host} within the connect timeout ({cause})", url=url)
    elif isinstance(exc, websocket.WebSocketException) and "Redirect" in str(exc):
        err = HandshakeError(
            f"{host} answered the handshake with a redirect; redirects are not followed so that "
            "the API key is never sent to another host: pass the final URL as url=",
            url=url,
        )
    elif isinstance(exc, OSError) and exc.errno is not None and "unreach" in str(exc).lower():
        err = ConnectionRefused(f"{host} is unreachable ({cause})", url=url)
    else:
        err = ConnectError(f"cannot connect to {url}: {cause}", url=url)
    return err
