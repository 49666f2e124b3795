"""A bare WebSocket server side for tests that need a server to misbehave byte by byte."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_upgrade(conn: socket.socket) -> None:
    """Read the client's HTTP upgrade request on ``conn`` and answer 101."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    key = next(
        ln.split(":", 1)[1].strip()
        for ln in data.decode().split("\r\n")
        if ln.lower().startswith("sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def text_frame(obj: dict[str, Any]) -> bytes:
    """An unmasked server text frame carrying ``obj`` as JSON (up to 64 KiB)."""
    data = json.dumps(obj).encode()
    return bytes([0x81, 126]) + len(data).to_bytes(2, "big") + data


def close_frame(code: int, reason: str = "") -> bytes:
    """An unmasked server close frame."""
    payload = code.to_bytes(2, "big") + reason.encode()
    return bytes([0x88, len(payload)]) + payload
