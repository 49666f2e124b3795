"""HTTP proxies (issue #12): ``proxy=``, the environment, loopback never proxied, 407, drips.

The proxy is a real socket on 127.0.0.1 that answers ``CONNECT`` and then plays the WebSocket
server itself at the far end of the tunnel (with TLS for ``wss://``), so the target host name is
never resolved and the test needs no network.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
from hostile_servers import Hostile, drip, frame

from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import (
    ConnectTimeout,
    InvalidInput,
    NameResolutionError,
    ProxyAuthenticationError,
    ProxyError,
)
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator, synthesize
from dashscope_rt.transport import Transport

KEY = "sk-proxy-5ecret-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}
TARGET = "ws://realtime.example.com/api-ws/v1/realtime?model=m"

pytestmark = pytest.mark.usefixtures("no_thread_leak")


class Proxy(Hostile):
    """Answers CONNECT (checking ``Proxy-Authorization`` when ``credentials`` are set), then
    serves the WebSocket itself: upgrade, one text frame ``hello``, wait for the close."""

    def __init__(
        self,
        *,
        credentials: str | None = None,
        status: str = "200 Connection established",
        tls: ssl.SSLContext | None = None,
        drip_every: float | None = None,
    ) -> None:
        self.credentials = credentials
        self.status = status
        self.tls = tls
        self.drip_every = drip_every
        super().__init__(self._script)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _script(self, conn: socket.socket) -> None:
        request = self.read_request(conn)
        status = self.status
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if request.get("proxy-authorization") != expected:
                status = "407 Proxy Authentication Required"
        answer = f"HTTP/1.1 {status}\r\nProxy-Authenticate: Basic realm=x\r\n\r\n".encode()
        if self.drip_every is not None:
            drip(conn, answer + b"\r\n" * 100, self.drip_every)
            return
        conn.sendall(answer)
        if not status.startswith("200"):
            return
        stream = self.tls.wrap_socket(conn, server_side=True) if self.tls else conn
        self.upgrade(stream)
        stream.sendall(frame(0x1, b"hello"))
        self.read_frame(stream)  # the client's close

    @property
    def connects(self) -> list[str]:
        return [r.split(b"\r\n", 1)[0].decode() for r in self.requests if r.startswith(b"CONNECT")]


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield monkeypatch


def _hello(tr: Transport) -> None:
    try:
        tr.settimeout(5)
        assert tr.recv() == (0x1, b"hello")
        tr.close()
    finally:
        tr.release()


@pytest.mark.timeout(20)
def test_proxy_option_tunnels_to_the_target(no_proxy_env: pytest.MonkeyPatch) -> None:
    with Proxy() as proxy:
        _hello(Transport.connect(TARGET, headers=AUTH, timeout=5, proxy=proxy.proxy_url))
        assert proxy.connects == ["CONNECT realtime.example.com:80 HTTP/1.1"]
        assert b"Authorization: Bearer" not in proxy.requests[0]  # the key is for the server


@pytest.mark.timeout(20)
def test_wss_through_the_proxy_verifies_the_target_certificate(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("realtime.example.com").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    url = TARGET.replace("ws://", "wss://")
    with Proxy(tls=server_ctx) as proxy:
        _hello(
            Transport.connect(
                url, headers=AUTH, timeout=5, proxy=proxy.proxy_url, ssl_context=client_ctx
            )
        )
        assert proxy.connects == ["CONNECT realtime.example.com:443 HTTP/1.1"]


@pytest.mark.timeout(20)
def test_env_proxy_is_used_and_loopback_never_goes_through_it(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    def hello(conn: socket.socket) -> None:
        direct.upgrade(conn)
        conn.sendall(frame(0x1, b"hello"))
        direct.read_frame(conn)

    with Proxy() as proxy, Hostile(hello) as direct:
        no_proxy_env.setenv("HTTP_PROXY", proxy.proxy_url)
        no_proxy_env.setenv("HTTPS_PROXY", proxy.proxy_url)
        _hello(Transport.connect(TARGET, headers=AUTH, timeout=5))
        assert len(proxy.connects) == 1
        # A loopback URL goes straight to its server, with the proxy variables still set.
        for host in ("127.0.0.1", "localhost"):
            _hello(Transport.connect(f"ws://{host}:{direct.port}/", headers=AUTH, timeout=5))
        assert len(proxy.connects) == 1, "loopback traffic went through the proxy"
        assert len(direct.requests) == 2


@pytest.mark.timeout(20)
def test_no_proxy_and_proxy_false_connect_directly(no_proxy_env: pytest.MonkeyPatch) -> None:
    with Proxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.proxy_url)
        no_proxy_env.setenv("NO_PROXY", "localhost,.invalid")
        with pytest.raises(NameResolutionError):  # direct, so the name had to be resolved
            Transport.connect("ws://realtime.invalid/", headers=AUTH, timeout=5)
        no_proxy_env.delenv("NO_PROXY")
        with pytest.raises(NameResolutionError):
            Transport.connect("ws://realtime.invalid/", headers=AUTH, timeout=5, proxy=False)
        assert proxy.connects == []


@pytest.mark.timeout(20)
def test_proxy_407_is_its_own_error_and_credentials_work(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    with Proxy(credentials="alice:pa55-w0rd-xyz") as proxy:
        for url in (proxy.proxy_url, proxy.proxy_url.replace("//", "//alice:wrong-pass-123@")):
            with pytest.raises(ProxyAuthenticationError) as info:
                Transport.connect(TARGET, headers=AUTH, timeout=5, proxy=url)
            err = info.value
            assert err.status == 407 and "407" in str(err) and "user:password" in str(err)
            assert "wrong-pass" not in str(err) + repr(vars(err))
        good = proxy.proxy_url.replace("//", "//alice:pa55-w0rd-xyz@")
        _hello(Transport.connect(TARGET, headers=AUTH, timeout=5, proxy=good))


@pytest.mark.timeout(20)
def test_proxy_refusing_the_tunnel_is_a_proxy_error(no_proxy_env: pytest.MonkeyPatch) -> None:
    with Proxy(status="502 Bad Gateway") as proxy, pytest.raises(ProxyError) as info:
        Transport.connect(TARGET, headers=AUTH, timeout=5, proxy=proxy.proxy_url)
    assert info.value.status == 502 and not isinstance(info.value, ProxyAuthenticationError)
    assert "502 Bad Gateway" in str(info.value)


@pytest.mark.timeout(30)
def test_slow_drip_proxy_answer_is_cut_at_the_connect_timeout(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    with Proxy(drip_every=0.05) as proxy:
        start = time.monotonic()
        with pytest.raises(ConnectTimeout):
            Transport.connect(TARGET, headers=AUTH, timeout=0.5, proxy=proxy.proxy_url)
        assert time.monotonic() - start < 5


@pytest.mark.parametrize("bad", ["socks5://127.0.0.1:1080", "https://proxy:443", "http://h:port"])
def test_unsupported_proxy_urls_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput, match="proxy"):
        Transport.connect(TARGET, headers=AUTH, timeout=1, proxy=bad)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    socks = [a, b]
    while True:
        ready, _, _ = select.select(socks, [], [], 10)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            if not data:
                return
            (b if s is a else a).sendall(data)


@pytest.mark.timeout(30)
def test_a_session_through_a_proxy_option(no_proxy_env: pytest.MonkeyPatch) -> None:
    """``Session(proxy=...)`` tunnels to the simulator under a name only the proxy knows."""
    with Simulator(api_key=KEY) as sim:
        sim.script_replies(["through the proxy"])

        def tunnel(conn: socket.socket) -> None:
            proxy.read_request(conn)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with socket.create_connection(("127.0.0.1", sim.port)) as upstream:
                _relay(conn, upstream)

        with Hostile(tunnel) as proxy:
            url = f"ws://realtime.example.com:{sim.port}/api-ws/v1/realtime"
            s = Session(
                "qwen3-omni-flash-realtime",
                api_key=KEY,
                url=url,
                proxy=f"http://127.0.0.1:{proxy.port}",
                config=SessionConfig(turn_detection=None),
            )
            with s:
                reply = s.ask(audio=synthesize("hello", 16000), timeout=15)
            assert reply.text
            connects = [r.split(b"\r\n", 1)[0] for r in proxy.requests]
            assert connects == [f"CONNECT realtime.example.com:{sim.port} HTTP/1.1".encode()]
