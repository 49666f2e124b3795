"""RFC 6455 frames over an open socket: masked frames out, size-checked frames in.

The SDK's own codec (websocket-client only performs the HTTP upgrade): reading checks a frame's
declared length against a limit before reading its payload, keeps partly received frames across a
recv timeout, tolerates close reasons over 125 bytes (the service sends them, protocol.md §9.3)
and masks outgoing frames with numpy (about 3x cheaper than a pure-Python XOR for ~4 KB audio).
"""

from __future__ import annotations

import os
import socket
import struct
import time

from .errors import FrameTooLarge

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "BadFrame",
    "FrameReader",
    "encode_frame",
    "mask",
]

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_RECV_SIZE = 65536
_MAX_RECV = 1 << 20


class BadFrame(Exception):
    """The peer broke RFC 6455 framing (reserved opcode or bits, a stray continuation)."""


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XORed with the 4-byte ``key`` repeated (RFC 6455 §5.3)."""
    import numpy as np  # here, not at import: `import dashscope_rt` stays light

    n = len(data)
    pad = np.frombuffer(key * (n // 4 + 1), dtype=np.uint8, count=n)
    return np.bitwise_xor(np.frombuffer(data, dtype=np.uint8), pad).tobytes()


def encode_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One final, masked client frame (``key`` is random unless given)."""
    if key is None:
        key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(key, payload)


class FrameReader:
    """Reads whole messages and control frames from ``sock``.

    :meth:`read` returns ``(opcode, payload)``: a text or binary message (reassembled from its
    fragments) or a control frame. A frame or message over ``max_bytes`` raises
    :class:`~dashscope_rt.errors.FrameTooLarge` before its payload is read.
    """

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        self._sock = sock
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._part_op = 0
        self._part_size = 0
        self._until: float | None = None

    def read(self, until: float | None = None) -> tuple[int, bytes]:
        """The next message or control frame.

        Raises ``TimeoutError`` when the socket's timeout expires, or at ``until`` (a
        ``time.monotonic()`` value) however slowly bytes arrive; a partly received frame is kept
        for the next call. Raises ``EOFError`` at the end of the stream, :class:`BadFrame` and
        :class:`~dashscope_rt.errors.FrameTooLarge`.
        """
        self._until = until
        while True:
            fin, opcode, payload = self._frame()
            if opcode in _CONTROL:
                return opcode, payload
            if opcode not in _DATA:
                raise BadFrame(f"reserved opcode {opcode:#x}")
            if opcode == OP_CONT:
                if not self._parts:
                    raise BadFrame("a continuation frame without a message to continue")
            elif self._parts:
                raise BadFrame("a new message before the last one was finished")
            else:
                self._part_op, self._part_size = opcode, 0
            if fin and not self._parts:
                return opcode, payload
            self._part_size += len(payload)
            if self._part_size > self.max_bytes:
                raise FrameTooLarge(self._part_size, self.max_bytes)
            self._parts.append(payload)
            if fin:
                message = b"".join(self._parts)
                self._parts = []
                return self._part_op, message

    def _frame(self) -> tuple[bool, int, bytes]:
        buf = self._buf
        while True:
            if len(buf) >= 2:
                b0, b1 = buf[0], buf[1]
                n = b1 & 0x7F
                start = 2
                if n == 126:
                    start = 4
                elif n == 127:
                    start = 10
                masked = bool(b1 & 0x80)
                if masked:
                    start += 4
                if len(buf) >= start:
                    if n == 126:
                        n = struct.unpack_from("!H", buf, 2)[0]
                    elif n == 127:
                        n = struct.unpack_from("!Q", buf, 2)[0]
                    if b0 & 0x70:
                        raise BadFrame("reserved bits set (no extension was negotiated)")
                    if n > self.max_bytes:
                        raise FrameTooLarge(n, self.max_bytes)
                    end = start + n
                    if len(buf) >= end:
                        payload = bytes(buf[start:end])
                        if masked:  # servers must not mask, but it costs nothing to accept
                            payload = mask(bytes(buf[start - 4 : start]), payload)
                        del buf[:end]
                        return bool(b0 & 0x80), b0 & 0x0F, payload
                    self._fill(end - len(buf))
                    continue
            self._fill(1)

    def _fill(self, need: int) -> None:
        if self._until is not None:
            left = self._until - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(left)
        chunk = self._sock.recv(min(max(need, _RECV_SIZE), _MAX_RECV))
        if not chunk:
            raise EOFError("the peer closed the stream")
        self._buf += chunk
