"""Opening a WebSocket under one deadline: name lookup, TCP, a proxy tunnel, TLS, the upgrade.

The socket is opened here; websocket-client performs only the upgrade on it, through its public
``WebSocket.connect(url, socket=...)``. Socket timeouts apply per read, so a server that drips
its answer byte by byte would stretch them without end: a watchdog shuts the socket down when
the deadline passes, whatever stage the connect is in. Every failure becomes the
:class:`~dashscope_rt.errors.ConnectError` that fits, with any secret masked.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import errno
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import websocket

from ._endpoint import is_loopback
from ._redact import Redactor
from .errors import (
    AuthenticationError,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeError,
    InvalidInput,
    NameResolutionError,
    ProxyAuthenticationError,
    ProxyError,
    TLSError,
    TooManyRequests,
)

__all__ = ["ProxySetting", "dial", "pick_proxy", "proxy_secrets", "redact_url"]

ProxySetting = str | Literal[False] | None
"""``None``: from ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY``; ``False``: never; or a URL."""

_SECRET_QUERY_KEYS = ("api_key", "apikey", "key", "token", "access_token", "authorization")
_REGION_NAMES = {"cn": "China (Beijing)", "intl": "International (Singapore)"}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_PROXY_HEAD = 16384


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


# -- choosing a proxy ---------------------------------------------------------------------------


def pick_proxy(url: str, proxy: ProxySetting) -> str | None:
    """The proxy URL to use for ``url``, or None for a direct connection.

    Loopback hosts are never proxied. With ``proxy=None`` the environment decides:
    ``HTTPS_PROXY`` for ``wss://``, ``HTTP_PROXY`` for ``ws://`` (either case), unless the host
    matches ``NO_PROXY``.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if proxy is False or is_loopback(url):
        return None
    if proxy is not None:
        if not isinstance(proxy, str) or not proxy:
            raise InvalidInput(
                f"proxy must be an http:// URL, False or None, got {redact_url(str(proxy))!r}"
            )
        return proxy
    env = urllib.request.getproxies_environment()
    value = env.get("https" if parts.scheme == "wss" else "http")
    if not value or urllib.request.proxy_bypass_environment(host, env):  # type: ignore[attr-defined]
        return None
    return value


def proxy_secrets(proxy: str | None) -> list[str]:
    """The password of a proxy URL and the credentials sent for it, for the redactor."""
    if proxy is None:
        return []
    via = _Proxy(proxy)
    return [s for s in (via.password, via.auth) if s]


class _Proxy:
    def __init__(self, value: str) -> None:
        text = value if "://" in value else "http://" + value
        parts = urllib.parse.urlsplit(text)
        self.safe = redact_url(text)
        if parts.scheme != "http" or not parts.hostname:
            raise InvalidInput(
                f"the proxy must be an http://[user:password@]host:port URL, got {self.safe!r} "
                "(HTTPS and SOCKS proxies are not supported)"
            )
        try:
            port = parts.port
        except ValueError:
            raise InvalidInput(f"the proxy URL has an invalid port: {self.safe!r}") from None
        self.host = parts.hostname
        self.port = port or 80
        self.auth: str | None = None
        self.password = urllib.parse.unquote(parts.password or "")
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            credentials = f"{user}:{self.password}".encode()
            self.auth = base64.b64encode(credentials).decode("ascii")


# -- the deadline -------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, timeout: float, url: str) -> None:
        self.timeout = timeout
        self.end = time.monotonic() + timeout
        self.url = url

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> ConnectTimeout:
        host = urllib.parse.urlsplit(self.url).netloc
        return ConnectTimeout(
            f"no connection to {host} within the connect timeout ({self.timeout:g} s)",
            url=self.url,
        )


@contextlib.contextmanager
def _watchdog(sock: socket.socket, deadline: _Deadline) -> Iterator[threading.Event]:
    """Shut ``sock``'s connection down at the deadline; the event says it fired."""
    fired = threading.Event()
    watch = sock.dup()  # shutdown() acts on the connection, whichever descriptor asks

    def fire() -> None:
        fired.set()
        with contextlib.suppress(OSError):
            watch.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline.end - time.monotonic()), fire)
    timer.name = "dashscope_rt-connect-deadline"
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        timer.join()
        watch.close()


# -- dialing ------------------------------------------------------------------------------------


def dial(
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    redactor: Redactor,
    region: str | None = None,
    ca_file: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    proxy: str | None = None,
) -> socket.socket:
    """An upgraded WebSocket connection to ``url``, or the ConnectError that fits.

    ``proxy`` is the HTTP proxy to tunnel through (see :func:`pick_proxy`), None for a direct
    connection. The whole of it (TCP, the proxy's CONNECT, TLS, the upgrade) takes at most
    ``timeout`` seconds; only the DNS lookup is left to the system resolver's own timeout.
    """
    safe_url = redact_url(url)
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    via = _Proxy(proxy) if proxy is not None else None
    deadline = _Deadline(timeout, safe_url)
    sock = _tcp(via.host if via else host, via.port if via else port, deadline, safe_url)
    failure: ConnectError | None = None
    try:
        with _watchdog(sock, deadline) as fired:
            try:
                if via is not None:
                    _tunnel(sock, via, host, port, redactor, safe_url)
                if secure:
                    ctx = ssl_context or ssl.create_default_context(cafile=ca_file)
                    sock = ctx.wrap_socket(sock, server_hostname=host)
                _upgrade(sock, url, headers, redactor, region)
            except ConnectError as exc:
                failure = exc
            except (OSError, websocket.WebSocketException) as exc:
                failure = _connect_error(exc, safe_url)
        if fired.is_set() or (failure is not None and time.monotonic() >= deadline.end):
            failure = deadline.expired()  # whichever stage the deadline cut short
    except BaseException:
        sock.close()
        raise
    if failure is not None:
        sock.close()
        raise failure  # outside the except blocks: no chained cause can carry a reflected key
    return sock


def _resolve(host: str, port: int, deadline: _Deadline) -> list[Any]:
    """``getaddrinfo`` under the deadline: the system resolver has its own, longer timeouts.

    An address literal resolves at once on this thread; a name is looked up on a helper thread
    that outlives a missed deadline only until the resolver gives up (it cannot be cancelled).
    """
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    result: list[Any] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="dashscope_rt-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise deadline.expired()
    if failure:
        raise failure[0]
    return result


def _tcp(host: str, port: int, deadline: _Deadline, safe_url: str) -> socket.socket:
    try:
        infos = _resolve(host, port, deadline)
    except (socket.gaierror, UnicodeError) as exc:
        raise NameResolutionError(
            f"cannot resolve {host!r} for {safe_url} ({type(exc).__name__}: {exc})", url=safe_url
        ) from None
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, (TimeoutError, websocket.WebSocketTimeoutException)):
                break
            continue
        except BaseException:
            sock.close()
            raise
        _tune(sock)
        return sock
    assert error is not None
    raise _connect_error(error, safe_url) from None


def _tune(sock: socket.socket) -> None:
    """No Nagle delay; kernel keepalive as websocket-client sets it (30 s idle, 3 x 10 s)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _tunnel(
    sock: socket.socket, via: _Proxy, host: str, port: int, redactor: Redactor, safe_url: str
) -> None:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if via.auth is not None:
        lines.append(f"Proxy-Authorization: Basic {via.auth}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: what follows belongs to the tunnel
        byte = sock.recv(1)
        if not byte:
            raise ProxyError(
                f"the proxy {via.safe} closed the connection before answering CONNECT",
                url=safe_url,
                proxy=via.safe,
            )
        head += byte
        if len(head) > _MAX_PROXY_HEAD:
            raise ProxyError(
                f"the proxy {via.safe} sent an over-long answer", url=safe_url, proxy=via.safe
            )
    status_line = redactor.text(head.split(b"\r\n", 1)[0].decode("latin-1"))
    fields = status_line.split(" ", 2)
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    if 200 <= status < 300:
        return
    if status == 407:
        has = "the credentials given were refused" if via.auth else "no credentials were given"
        raise ProxyAuthenticationError(
            f"the proxy {via.safe} requires authentication (HTTP 407; {has}): pass "
            "proxy='http://user:password@host:port'",
            url=safe_url,
            proxy=via.safe,
            status=407,
        )
    raise ProxyError(
        f"the proxy {via.safe} refused the tunnel to {target}: {status_line!r}",
        url=safe_url,
        proxy=via.safe,
        status=status,
    )


def _upgrade(
    sock: socket.socket,
    url: str,
    headers: Mapping[str, str],
    redactor: Redactor,
    region: str | None,
) -> None:
    ws = websocket.WebSocket(skip_utf8_validation=True)
    header_list = [f"{k}: {v}" for k, v in headers.items()]
    try:
        ws.connect(url, header=header_list, redirect_limit=0, socket=sock)  # type: ignore[no-untyped-call]
    except websocket.WebSocketBadStatusException as exc:
        status = int(exc.status_code)
        body = redactor.text(_decode_body(exc.resp_body))
        resp_headers = {str(k): redactor.text(str(v)) for k, v in (exc.resp_headers or {}).items()}
    except websocket.WebSocketException:
        redirect = ws.getstatus()
        if redirect is None or redirect not in _REDIRECTS:
            raise
        status, body, resp_headers = redirect, "", {}
    else:
        return
    raise _status_error(status, body, resp_headers, url, region) from None


def _status_error(
    status: int, body: str, headers: dict[str, str], url: str, region: str | None
) -> ConnectError:
    safe_url = redact_url(url)
    where = _where(url, region)
    if status in _REDIRECTS:
        return HandshakeError(
            f"{where} answered the handshake with a redirect (HTTP {status}); redirects are not "
            "followed so that the API key is never sent to another host: pass the final URL as "
            "url=",
            url=safe_url,
            status=status,
            headers=headers,
        )
    if status in (401, 403):
        return AuthenticationError(
            f"HTTP {status} at the handshake with {where}: the API key was refused. Keys are "
            "region-bound: check that this key belongs to that region (or pass region=/url=)",
            url=safe_url,
            status=status,
            body=body,
            headers=headers,
            region=region,
        )
    if status == 429:
        retry_after = _retry_after(headers)
        when = (
            f"retry after {retry_after:g} s"
            if retry_after is not None
            else "retry later (the server did not say when)"
        )
        detail = f" ({body[:200]})" if body else ""
        return TooManyRequests(
            f"HTTP 429 at the handshake with {where}: rate limited (too many requests or "
            f"sessions for this account and model); {when}{detail}",
            url=safe_url,
            body=body,
            headers=headers,
            retry_after=retry_after,
        )
    if status == 407:
        return ProxyAuthenticationError(
            f"HTTP 407 at the handshake with {where}: a proxy on the way requires "
            "authentication; pass proxy='http://user:password@host:port'",
            url=safe_url,
            status=407,
        )
    return HandshakeError(
        f"HTTP {status} at the handshake with {safe_url}: {body[:200]}",
        url=safe_url,
        status=status,
        body=body,
        headers=headers,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _where(url: str, region: str | None) -> str:
    host = urllib.parse.urlsplit(url).hostname or "?"
    if region in _REGION_NAMES:
        return f"{host} (region {region!r}, {_REGION_NAMES[region]})"
    return host


def _decode_body(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return "" if body is None else str(body)


def _connect_error(exc: BaseException, url: str) -> ConnectError:
    host = urllib.parse.urlsplit(url).netloc or url
    cause = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return TLSError(f"TLS failed with {host}: {cause}", url=url)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"connection refused by {host} (nothing listening?)", url=url)
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(
            f"no answer from {host} within the connect timeout ({cause})",
            url=url,
        )
    if isinstance(exc, (websocket.WebSocketAddressException, socket.gaierror)):
        return NameResolutionError(f"cannot resolve the host of {url} ({cause})", url=url)
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectionRefused(f"{host} is unreachable ({cause})", url=url)
    return ConnectError(f"cannot connect to {url}: {cause}", url=url)
