"""Every exception the SDK raises, in one tree.

::

    RealtimeError                      base of everything raised here
    ├── InvalidInput (ValueError)      bad argument or config value; names the field and the range
    │   ├── InvalidType (TypeError)    an argument of the wrong type (names what is accepted)
    │   ├── UnknownName (LookupError)  a name the SDK does not know (model, tool, ...)
    │   ├── UnsupportedByModel         valid in general, but not for this model
    │   └── ToolArgumentsError         the model's arguments do not fit a tool's parameters
    ├── UsageError (RuntimeError)      the SDK was used in a way that cannot work
    │   └── BlockingCallInHandler      a blocking method called from a handler (it would deadlock)
    ├── SendBacklogFull (BufferError)  more is queued to send than ``send_backlog_bytes`` allows
    ├── TransportError                 the WebSocket connection failed or ended
    │   ├── ConnectError               could not open the connection
    │   │   ├── NameResolutionError    DNS lookup failed
    │   │   ├── ConnectionRefused      nothing listens at that address
    │   │   ├── TLSError               certificate or TLS handshake failure
    │   │   ├── ConnectTimeout         (also a Timeout) no answer within the connect timeout
    │   │   ├── ProxyError             the HTTP proxy refused the tunnel (status)
    │   │   │   └── ProxyAuthenticationError  HTTP 407: the proxy wants (other) credentials
    │   │   └── HandshakeError         the server answered the upgrade with an HTTP error
    │   │       ├── AuthenticationError  HTTP 401/403: bad key, or a key of another region
    │   │       └── TooManyRequests    (also RateLimited) HTTP 429
    │   └── ConnectionClosed           the socket closed (code, reason, by_server)
    │       ├── FrameTooLarge          the server sent a frame or message over the size limit
    │       ├── ReceiveBacklogFull     the handlers fell further behind than the receive bound
    │       └── QuotaExceeded          (also RateLimited) the server closed for a quota
    ├── RateLimited                    rate limit or quota; ``retry_after`` when the server said
    ├── Timeout (TimeoutError)         a blocking call ran out of time
    │   └── NoSpeechHeard              voice detection heard no speech in streamed audio
    ├── ProtocolError                  a frame that is not a valid protocol message
    ├── ServerError                    an ``error`` event from the service (type, code, param, ...)
    │   └── VoiceNotSupported          the service refused the session's voice (names good ones)
    ├── AudioDeviceError               no usable sound device (none found, or it cannot be opened)
    ├── MissingExtra (ImportError)     an optional feature whose extra is not installed
    └── SessionClosed (RuntimeError)   the session is closed; nothing more can be sent

No message or attribute here ever holds the API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AudioDeviceError",
    "AuthenticationError",
    "BlockingCallInHandler",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionRefused",
    "FrameTooLarge",
    "HandshakeError",
    "InvalidInput",
    "InvalidType",
    "MissingExtra",
    "NameResolutionError",
    "NoSpeechHeard",
    "ProtocolError",
    "ProxyAuthenticationError",
    "ProxyError",
    "QuotaExceeded",
    "RateLimited",
    "RealtimeError",
    "ReceiveBacklogFull",
    "SendBacklogFull",
    "ServerError",
    "SessionClosed",
    "TLSError",
    "Timeout",
    "TooManyRequests",
    "ToolArgumentsError",
    "TransportError",
    "UnknownName",
    "UnsupportedByModel",
    "UsageError",
    "VoiceNotSupported",
]


class RealtimeError(Exception):
    """Base class of every exception raised by ``dashscope_rt``."""


class InvalidInput(RealtimeError, ValueError):
    """An argument or configuration value is invalid; the message names the field and the range.

    ``param`` is the field's path in the wire ``session`` object where there is one
    (``"turn_detection.threshold"``, ``"tools[0]"``), else None.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidType(InvalidInput, TypeError):
    """An argument has the wrong type; the message names it and what would be accepted."""


class UnknownName(InvalidInput, LookupError):
    """A name (of a model, a tool, ...) that the SDK does not know; the message lists the known."""


class UnsupportedByModel(InvalidInput):
    """The request is valid in general but the selected model does not support it."""

    def __init__(
        self, message: str, *, model: str = "", feature: str = "", param: str | None = None
    ) -> None:
        super().__init__(message, param=param or feature or None)
        self.model = model
        self.feature = feature


class ToolArgumentsError(InvalidInput):
    """The model's arguments for a tool are not valid JSON or do not fit the tool's parameters.

    Raised the same way whether the arguments are parsed by ``Tool.invoke``,
    ``ToolCall.parsed_arguments`` or the session's tool runner.
    """

    def __init__(self, message: str, *, tool: str = "", arguments: Any = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.arguments = arguments


class UsageError(RealtimeError, RuntimeError):
    """The SDK was called in a way that cannot work (the message says what to do instead)."""


class BlockingCallInHandler(UsageError):
    """A blocking method (``ask``, ``wait``, ...) was called from a handler.

    Handlers run on the session's dispatcher thread, which is the thread that would deliver
    the events the call waits for: it would wait forever.
    """


class SendBacklogFull(RealtimeError, BufferError):
    """More data is queued for sending than ``send_backlog_bytes`` allows.

    A local condition (the network is slower than the data sent, or the link is stalled); the
    connection itself is still open and nothing already queued is lost.
    """

    def __init__(self, message: str, *, backlog: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.backlog = backlog
        self.limit = limit


class MissingExtra(RealtimeError, ImportError):
    """An optional feature needs a package that is not installed; the message gives the pip
    command (``pip install 'dashscope-rt[extra]'``)."""

    def __init__(self, message: str, *, extra: str = "") -> None:
        super().__init__(message)
        self.extra = extra


class TransportError(RealtimeError):
    """The WebSocket connection could not be opened, or it broke."""


class ConnectError(TransportError):
    """The connection could not be opened. ``url`` never contains the key."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class NameResolutionError(ConnectError):
    """The host name of the URL could not be resolved."""


class ConnectionRefused(ConnectError):
    """The host refused the TCP connection (nothing listens on that port)."""


class TLSError(ConnectError):
    """TLS failed: an untrusted or mismatched certificate, or a failed TLS handshake."""


class Timeout(RealtimeError, TimeoutError):
    """A blocking operation did not finish within its timeout."""


class NoSpeechHeard(Timeout):
    """The server's voice detection heard no speech in audio streamed as a turn."""


class ConnectTimeout(ConnectError, Timeout):
    """No connection, or no ``session.created``, within the connect timeout."""


class HandshakeError(ConnectError):
    """The server answered the WebSocket upgrade with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int = 0,
        body: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class AuthenticationError(HandshakeError):
    """HTTP 401/403 at the handshake: the key is wrong, or belongs to another region."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int = 401,
        body: str = "",
        headers: dict[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, body=body, headers=headers)
        self.region = region


class RateLimited(RealtimeError):
    """The service refused for a rate limit or a quota.

    ``retry_after`` is the number of seconds the server asked to wait, or None if it did not say.
    Catch this to handle both :class:`TooManyRequests` (HTTP 429 at the handshake) and
    :class:`QuotaExceeded` (the server closed the session for a quota).
    """

    retry_after: float | None = None


class TooManyRequests(HandshakeError, RateLimited):
    """HTTP 429 at the handshake: too many sessions or requests. ``retry_after`` in seconds."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int = 429,
        body: str = "",
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, body=body, headers=headers)
        self.retry_after = retry_after


class ProxyError(ConnectError):
    """The HTTP proxy did not open the tunnel (``status`` is its answer to CONNECT)."""

    def __init__(self, message: str, *, url: str = "", proxy: str = "", status: int = 0) -> None:
        super().__init__(message, url=url)
        self.proxy = proxy
        self.status = status


class ProxyAuthenticationError(ProxyError):
    """HTTP 407 from the proxy: it wants credentials (``http://user:password@host:port``)."""


class ConnectionClosed(TransportError):
    """The WebSocket closed. ``by_server`` is False when this side closed it."""

    def __init__(self, code: int | None, reason: str = "", *, by_server: bool = True) -> None:
        who = "server" if by_server else "client"
        text = f"connection closed by the {who}"
        if code is not None:
            text += f" with code {code}"
        if reason:
            text += f": {reason}"
        super().__init__(text)
        self.code = code
        self.reason = reason
        self.by_server = by_server


class FrameTooLarge(ConnectionClosed):
    """The server sent a frame (or a fragmented message) over ``max_frame_bytes``.

    The SDK closed the connection with code 1009 without reading it; ``size`` is what the frame
    declared and ``limit`` the configured maximum. Everything received before it was delivered.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            1009,
            f"the server sent a message of {size} bytes, over max_frame_bytes={limit} "
            "(raise the limit if such messages are expected)",
            by_server=False,
        )
        self.size = size
        self.limit = limit


class ReceiveBacklogFull(ConnectionClosed):
    """Received events waiting for the handlers passed ``receive_backlog_bytes``.

    A handler is slower than what the server sends. The SDK closed the connection (code 1008);
    every event received before was still given to the handlers, in order. ``backlog`` is the
    size of the waiting events in bytes, ``limit`` the bound.
    """

    def __init__(self, backlog: int, limit: int) -> None:
        super().__init__(
            1008,
            f"the handlers fell {backlog} bytes of events behind, over receive_backlog_bytes="
            f"{limit}: a handler is too slow for what the server sends (move slow work to "
            "another thread)",
            by_server=False,
        )
        self.backlog = backlog
        self.limit = limit


class QuotaExceeded(ConnectionClosed, RateLimited):
    """The server closed the session because a quota ran out (e.g. the free tier is used up).

    ``reason`` is the server's text; ``retry_after`` is None (the server gives no time).
    """


class ProtocolError(RealtimeError):
    """A received frame is not a valid protocol message (bad JSON, not an object, bad base64).

    ``param`` names the offending field (``"type"`` for an unknown event type) and ``missing``
    says it was absent; both are set by :func:`~dashscope_rt.events.decode_client`.
    """

    def __init__(
        self, message: str, *, frame: Any = None, param: str | None = None, missing: bool = False
    ) -> None:
        super().__init__(message)
        self.frame = frame
        self.param = param
        self.missing = missing


class ServerError(RealtimeError):
    """An ``error`` event sent by the service.

    The protocol has no "fatal" flag: an error is reported at once with ``fatal=False``, and
    ``fatal`` becomes True when the server closes the connection right after it (the session's
    :class:`~dashscope_rt.Closed` and ``wait()`` then carry this error).
    """

    def __init__(
        self,
        message: str,
        *,
        type: str = "",
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        fatal: bool = False,
    ) -> None:
        parts = [p for p in (type, code) if p]
        prefix = f"[{'/'.join(parts)}] " if parts else ""
        suffix = f" (param: {param})" if param else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.event_id = event_id
        self.fatal = fatal


class VoiceNotSupported(ServerError):
    """The service refused the session's voice for this model.

    The service accepts any voice in ``session.update`` and refuses it at the first response
    (``Voice 'X' is not supported.``); the connection does not recover, so the session ends
    with this error, however the refusal arrived (an ``error`` event or a close).
    ``voice`` is the refused name, ``model`` the model, ``voices`` names known to work there.
    """

    def __init__(
        self,
        message: str,
        *,
        voice: str = "",
        model: str = "",
        voices: tuple[str, ...] = (),
        type: str = "",
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        fatal: bool = True,
    ) -> None:
        super().__init__(message, type=type, code=code, param=param, event_id=event_id, fatal=fatal)
        self.voice = voice
        self.model = model
        self.voices = voices


class AudioDeviceError(RealtimeError):
    """No usable sound device: PortAudio found none (headless server, Docker, WSL), or the one
    asked for does not exist or cannot be opened. ``kind`` is ``"input"`` or ``"output"``."""

    def __init__(self, message: str, *, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class SessionClosed(RealtimeError, RuntimeError):
    """The session is closed (or was never connected), so nothing can be sent."""
