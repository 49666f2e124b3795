"""Transport: URLs, handshake error mapping, TLS, raw frames (long close reasons, pings)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
from hostile_servers import Hostile, frame
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt._frames import FrameReader, encode_frame
from dashscope_rt.errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeError,
    NameResolutionError,
    TLSError,
)
from dashscope_rt.testing import Simulator
from dashscope_rt.transport import REGION_URLS, Transport, build_url, redact_url

KEY = "sk-transport-5ecret"
AUTH = {"Authorization": f"Bearer {KEY}"}


# -- URLs -------------------------------------------------------------------------------------


def test_build_url_per_region_and_explicit_url() -> None:
    assert build_url("m1", region="cn") == REGION_URLS["cn"] + "?model=m1"
    assert build_url("m1", region="intl").startswith("wss://dashscope-intl.aliyuncs.com/")
    assert build_url("m1", url="ws://h:1/p?x=1") == "ws://h:1/p?x=1&model=m1"
    assert build_url("m1", url="ws://h/p?model=m2") == "ws://h/p?model=m2"
    with pytest.raises(ValueError, match="region"):
        build_url("m1", region="mars")
    with pytest.raises(ValueError, match="ws://"):
        build_url("m1", url="https://h/p")


@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=30))
def test_redact_url_hides_secrets(secret: str) -> None:
    url = f"wss://user:{secret}@host.example/p?model=m&api_key={secret}&token={secret}"
    out = redact_url(url)
    assert secret not in out.replace("model=m", "")
    assert "host.example" in out and "model=m" in out


# -- a raw WebSocket server for frame-level tests ----------------------------------------------


class RawServer(Hostile):
    """Accepts a client, completes the handshake, then runs ``script(conn)``."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        def run(conn: socket.socket) -> None:
            self.upgrade(conn)
            script(conn)

        super().__init__(run)

    def close(self) -> None:
        self.done.wait(5)
        self.stop()


@pytest.mark.timeout(10)
def test_over_long_close_reason_is_surfaced() -> None:
    reason = "The free tier of the model has been exhausted. " * 4  # > 125 bytes
    assert len(reason.encode()) > 125

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(0x1, b'{"type":"x"}'))
        conn.sendall(frame(0x8, struct.pack("!H", 1007) + reason.encode()))
        server.read_frame(conn)  # the client's close echo

    server = RawServer(script)
    tr = Transport.connect(f"ws://127.0.0.1:{server.port}/", headers=AUTH, timeout=5)
    try:
        assert tr.recv() == (0x1, b'{"type":"x"}')
        with pytest.raises(ConnectionClosed) as info:
            tr.recv()
    finally:
        tr.release()
        server.close()
    assert info.value.code == 1007 and info.value.reason == reason and info.value.by_server
    assert server.received[0][0] == 0x8
    assert struct.unpack("!H", server.received[0][1][:2])[0] == 1007


@pytest.mark.timeout(10)
def test_pings_are_answered_and_pongs_reported() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(frame(0x9, b"hello"))
        server.read_frame(conn)  # pong
        conn.sendall(frame(0xA, b"p"))
        conn.sendall(frame(0x1, b"after"))
        server.read_frame(conn)  # the client's ping

    server = RawServer(script)
    tr = Transport.connect(f"ws://127.0.0.1:{server.port}/", headers=AUTH, timeout=5)
    try:
        assert tr.recv() == (0xA, b"p")
        assert tr.recv() == (0x1, b"after")
        tr.ping(b"k")
    finally:
        server.close()
        tr.release()
    assert server.received == [(0xA, b"hello"), (0x9, b"k")]


@pytest.mark.timeout(10)
def test_eof_without_close_frame_is_1006() -> None:
    server = RawServer(lambda conn: None)
    tr = Transport.connect(f"ws://127.0.0.1:{server.port}/", headers=AUTH, timeout=5)
    server.close()
    with pytest.raises(ConnectionClosed) as info:
        tr.recv()
    assert info.value.code == 1006 and info.value.by_server
    tr.release()


@pytest.mark.timeout(10)
def test_client_close_then_echo() -> None:
    def script(conn: socket.socket) -> None:
        _op, payload = server.read_frame(conn)
        conn.sendall(frame(0x8, payload))

    server = RawServer(script)
    tr = Transport.connect(f"ws://127.0.0.1:{server.port}/", headers=AUTH, timeout=5)
    tr.close(1000, "bye")
    with pytest.raises(ConnectionClosed) as info:
        tr.recv()
    assert info.value.code == 1000 and not info.value.by_server
    with pytest.raises(ConnectionClosed):
        tr.send_text("late")
    tr.release()
    server.close()


# -- connect errors -----------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


@pytest.mark.timeout(10)
def test_401_is_an_authentication_error_naming_the_region(sim: Simulator) -> None:
    with pytest.raises(AuthenticationError) as info:
        Transport.connect(
            sim.url_for("qwen3-omni-flash-realtime"),
            headers={"Authorization": "Bearer sk-other-5ecret"},
            timeout=5,
            region="intl",
        )
    err = info.value
    assert err.status == 401 and err.region == "intl"
    assert "intl" in str(err) and "Singapore" in str(err) and "127.0.0.1" in str(err)
    assert "InvalidApiKey" in err.body
    assert "5ecret" not in str(err) + repr(err) + err.url


@pytest.mark.timeout(10)
def test_other_status_is_a_handshake_error(sim: Simulator) -> None:
    with pytest.raises(HandshakeError) as info:
        Transport.connect(sim.url, headers=AUTH, timeout=5)  # no ?model=
    assert info.value.status == 400 and not isinstance(info.value, AuthenticationError)


@pytest.mark.timeout(10)
def test_refused_connection() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectionRefused) as info:
        Transport.connect(f"ws://127.0.0.1:{port}/", headers=AUTH, timeout=5)
    assert str(port) in str(info.value)


@pytest.mark.timeout(20)
def test_unknown_host() -> None:
    with pytest.raises(NameResolutionError):
        Transport.connect("ws://no-such-host.invalid/", headers=AUTH, timeout=5)


@pytest.mark.timeout(10)
def test_silent_server_times_out() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)  # accepts at the TCP level, never answers the upgrade
    try:
        with pytest.raises(ConnectTimeout):
            Transport.connect(f"ws://127.0.0.1:{s.getsockname()[1]}/", headers=AUTH, timeout=0.3)
    finally:
        s.close()


@pytest.mark.timeout(10)
def test_redirects_are_not_followed() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def run() -> None:
        conn, _ = s.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: ws://evil.invalid/\r\nContent-Length: 0\r\n\r\n"
            )

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        with pytest.raises(HandshakeError, match="redirect"):
            Transport.connect(f"ws://127.0.0.1:{s.getsockname()[1]}/", headers=AUTH, timeout=5)
    finally:
        t.join(5)
        s.close()


@pytest.mark.timeout(20)
def test_tls_verified_by_default_and_custom_ca(tmp_path: object) -> None:
    trustme = pytest.importorskip("trustme")
    from websockets.sync.server import serve

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_ctx)

    def echo(ws: object) -> None:
        for msg in ws:  # type: ignore[attr-defined]
            ws.send(msg)  # type: ignore[attr-defined]

    with serve(echo, "localhost", 0, ssl=server_ctx) as server:
        port = server.socket.getsockname()[1]
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        url = f"wss://localhost:{port}/"
        with pytest.raises(TLSError):
            Transport.connect(url, headers=AUTH, timeout=5)
        with ca.cert_pem.tempfile() as ca_file:
            tr = Transport.connect(url, headers=AUTH, timeout=5, ca_file=ca_file)
        try:
            tr.send_text("hi")
            tr.settimeout(5)
            assert tr.recv() == (0x1, b"hi")
            tr.close()
        finally:
            tr.release()
        server.shutdown()
        t.join(5)


@given(
    data=st.binary(max_size=70000),
    key=st.binary(min_size=4, max_size=4),
    opcode=st.sampled_from([0x1, 0x2, 0x8, 0x9, 0xA]),
)
def test_our_frames_are_byte_identical_to_websocket_client(
    data: bytes, key: bytes, opcode: int
) -> None:
    from websocket import ABNF

    stock = ABNF(1, 0, 0, 0, opcode, 1, data)
    stock.get_mask_key = lambda n: key
    assert encode_frame(opcode, data, key) == stock.format()


@given(
    messages=st.lists(
        st.tuples(st.sampled_from([0x1, 0x2]), st.binary(max_size=3000), st.integers(1, 4)),
        min_size=1,
        max_size=6,
    ),
    chunk=st.integers(1, 700),
)
def test_frame_reader_reassembles_whatever_the_fragments_and_chunks(
    messages: list[tuple[int, bytes, int]], chunk: int
) -> None:
    """Messages cut into fragments, with pings between, arriving ``chunk`` bytes at a time."""
    wire = b""
    for opcode, data, parts in messages:
        cuts = [len(data) * i // parts for i in range(parts + 1)]
        for i in range(parts):
            piece = data[cuts[i] : cuts[i + 1]]
            wire += frame(opcode if i == 0 else 0x0, piece, fin=i == parts - 1)
            if i == 0:
                wire += frame(0x9, b"between")
    a, b = socket.socketpair()

    def write() -> None:
        for i in range(0, len(wire), chunk):
            b.sendall(wire[i : i + chunk])

    with a, b:
        a.settimeout(5)
        writer = threading.Thread(target=write)
        writer.start()
        reader = FrameReader(a, max_bytes=1 << 20)
        got = [reader.read() for _ in range(2 * len(messages))]
        writer.join(5)
    assert [m for m in got if m[0] != 0x9] == [(op, data) for op, data, _ in messages]
    assert [m for m in got if m[0] == 0x9] == [(0x9, b"between")] * len(messages)
