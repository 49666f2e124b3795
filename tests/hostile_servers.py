"""Small servers on 127.0.0.1 that misbehave on purpose, for the tests/test_hostile_*.py suites.

A :class:`Hostile` server accepts connections and runs a script on each in its own thread; the
helpers speak just enough HTTP and RFC 6455 to upgrade, send raw frames and read the client's
frames, and :func:`open_session` plays the service's opening (``session.created``, then
``session.updated`` once the client sent ``session.update``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

Script = Callable[[socket.socket], None]
H = TypeVar("H", bound="Hostile")

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Hostile:
    """Accepts connections on 127.0.0.1 and runs ``script(conn)`` for each, in a thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/api-ws/v1/realtime"
        self.requests: list[bytes] = []
        self.received: list[tuple[int, bytes]] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        self.sock.settimeout(0.05)  # polls, so that stop() ends this thread promptly
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="hostile-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.script(conn)
        except (OSError, EOFError):
            pass  # the client went away: often the point of the test
        except BaseException as exc:  # pragma: no cover - a bug in a test script
            self.errors.append(exc)
        finally:
            conn.close()
            self.done.set()

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for t in self._threads:
            t.join(5)
        assert not self.errors, self.errors

    # -- HTTP ----------------------------------------------------------------------------------

    def read_request(self, conn: socket.socket) -> dict[str, str]:
        """Read an HTTP request head; returns its headers (lower-case names)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                raise EOFError
            data += chunk
        self.requests.append(data)
        lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {"": lines[0]}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def upgrade(self, conn: socket.socket) -> None:
        """Read the upgrade request and accept it."""
        conn.sendall(upgrade_response(self.read_request(conn)))

    # -- frames --------------------------------------------------------------------------------

    def read_frame(self, conn: socket.socket) -> tuple[int, bytes]:
        head = recv_exact(conn, 2)
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(conn, 8))[0]
        key = recv_exact(conn, 4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(recv_exact(conn, n)))
        self.received.append((opcode, payload))
        return opcode, payload

    def read_event(self, conn: socket.socket) -> dict[str, Any]:
        """The next text frame from the client, as JSON (control frames are skipped)."""
        while True:
            opcode, payload = self.read_frame(conn)
            if opcode == 0x1:
                event: dict[str, Any] = json.loads(payload)
                return event
            if opcode == 0x8:
                raise EOFError("the client closed")


def upgrade_response(request: dict[str, str]) -> bytes:
    key = request.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
    )


def recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("eof")
        buf += chunk
    return buf


def frame(opcode: int, payload: bytes, *, fin: bool = True, length: int | None = None) -> bytes:
    """An unmasked server frame; ``length`` overrides the declared payload length."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes([first, n]) + payload
    if n < 1 << 16:
        return bytes([first, 126]) + struct.pack("!H", n) + payload
    return bytes([first, 127]) + struct.pack("!Q", n) + payload


def event_frame(event: dict[str, Any]) -> bytes:
    return frame(0x1, json.dumps(event).encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(0x8, struct.pack("!H", code) + reason.encode())


def drip(conn: socket.socket, data: bytes, every: float) -> None:
    """Send ``data`` one byte at a time, ``every`` seconds apart (until the client leaves)."""
    for i in range(len(data)):
        conn.sendall(data[i : i + 1])
        time.sleep(every)


SESSION = {
    "id": "sess_hostile",
    "object": "realtime.session",
    "model": "qwen3-omni-flash-realtime",
    "modalities": ["text", "audio"],
    "voice": "Cherry",
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm24",
}


def open_session(server: Hostile, conn: socket.socket) -> None:
    """Upgrade, send ``session.created``, wait for ``session.update``, send ``session.updated``."""
    server.upgrade(conn)
    conn.sendall(event_frame({"type": "session.created", "event_id": "e0", "session": SESSION}))
    while server.read_event(conn).get("type") != "session.update":
        pass
    conn.sendall(event_frame({"type": "session.updated", "event_id": "e1", "session": SESSION}))


def wait_closed(conn: socket.socket, timeout: float = 10.0) -> None:
    """Read until the client closes the TCP connection (or ``timeout``)."""
    conn.settimeout(timeout)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
