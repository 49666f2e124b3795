"""A minimal WebSocket server in its own process that replays prepared frames: the benches' server.

It speaks just enough of the protocol for every client measured here (dashscope_rt, the official
SDK, a plain websocket-client loop): ``session.created`` on connect, ``session.updated`` echoing a
``session.update``, ``input_audio_buffer.committed`` for a commit, and on ``response.create`` it
sends the frames of :func:`bench_decode.build_frames` (the same frames the decode bench times),
back to back (``pace`` 0) or ``pace`` seconds after each audio delta (the other frames follow
at once), from a thread of its own. Paced audio deltas carry their send time as their event id
(``t<time.monotonic()>``; CLOCK_MONOTONIC is system-wide), so a client can measure server send
-> handler. Frames are encoded once (only the id is spliced in), so the server costs little next
to the client, and it runs in another process, so its CPU is never counted as the client's.
Every received ``input_audio_buffer.append`` is counted and hashed, so an uplink bench can check
that what was sent arrived whole and in order.

:class:`FrameServer` starts it and asks it for those counts over stdin/stdout.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import ChildServer

__all__ = ["FrameServer"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
KEY = "sk-bench-frameserver"


def server_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _text(obj: Any) -> bytes:
    return server_frame(0x1, json.dumps(obj, separators=(",", ":")).encode())


def _ids(d: dict[str, Any]) -> set[str]:
    """The response and item ids a frame carries (top level and in ``response``)."""
    found = {d.get("response_id"), d.get("item_id")}
    if isinstance(d.get("response"), dict):
        found.add(d["response"].get("id"))
    return {i for i in found if isinstance(i, str)}


class _Reply:
    """The frames of one reply: encoded whole, and as (is audio, text after the event id).

    Each reply gets response and item ids of its own (a client may ignore a response id it has
    seen): :meth:`whole` and :meth:`paced` end every id with the reply's number instead, which
    keeps the lengths, so the frame headers stay valid.
    """

    def __init__(self, frames: list[str]) -> None:
        self._whole = b"".join(server_frame(0x1, f.encode()) for f in frames)
        self.parts: list[tuple[bool, str, tuple[str, ...]]] = []
        self.ids: set[str] = set()
        for f in frames:
            d = json.loads(f)
            del d["event_id"]
            rest = json.dumps(d, ensure_ascii=False)[1:]  # as build_frames writes them
            ids = _ids(d)
            self.ids |= ids
            self.parts.append((d["type"] == "response.audio.delta", rest, tuple(ids)))
        self.frames = len(frames)

    @staticmethod
    def _renamed(orig: str, number: int) -> str:
        return orig[:-8] + f"{number % 10**8:08d}"

    def whole(self, number: int) -> bytes:
        out = self._whole
        for orig in self.ids:
            out = out.replace(orig.encode(), self._renamed(orig, number).encode())
        return out

    def paced(self, pace: float, number: int) -> Any:
        """Yield each frame as it is due, audio deltas stamped with their send time."""
        due = time.monotonic()
        for k, (audio, rest, ids) in enumerate(self.parts):
            for orig in ids:
                rest = rest.replace(orig, self._renamed(orig, number))
            eid = f"t{time.monotonic():.6f}" if audio else f"event_{k}"
            yield server_frame(0x1, ('{"event_id": "' + eid + '", ' + rest).encode())
            if audio:
                due += pace
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


class _Conn:
    """One client connection: a reader thread, and a streamer thread per response.create."""

    def __init__(self, sock: socket.socket, number: int, reply: _Reply, pace: float) -> None:
        self.sock = sock
        self.number = number
        self.reply = reply
        self.pace = pace  # seconds between reply frames, as set when the connection was made
        self.lock = threading.Lock()
        self.buf = bytearray()
        self.appends = 0
        self.audio_bytes = 0
        self.sha = hashlib.sha256()
        self.responses = 0
        self.closed = False

    def send(self, data: bytes) -> None:
        with self.lock:
            if not self.closed:
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.closed = True

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def handshake(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        session = {"id": f"sess_bench_{self.number}", "object": "realtime.session"}
        self.send(_text({"event_id": "event_s0", "type": "session.created", "session": session}))

    def frame(self) -> tuple[int, bytes]:
        import numpy as np

        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        key = self._read(4) if b1 & 0x80 else b""
        data = self._read(n)
        if key:
            pad = np.frombuffer(key * (n // 4 + 1), dtype=np.uint8, count=n)
            data = np.bitwise_xor(np.frombuffer(data, dtype=np.uint8), pad).tobytes()
        return b0 & 0x0F, data

    def serve(self) -> None:
        try:
            self.handshake()
            while True:
                op, data = self.frame()
                if op == 0x8:
                    self.send(server_frame(0x8, data[:2]))
                    return
                if op == 0x9:
                    self.send(server_frame(0xA, data))
                elif op in (0x1, 0x2):
                    self.on_event(json.loads(data))
        except (EOFError, OSError, ValueError):
            return
        finally:
            with self.lock:
                self.closed = True
            self.sock.close()

    def on_event(self, e: dict[str, Any]) -> None:
        t = e.get("type")
        if t == "input_audio_buffer.append":
            pcm = base64.b64decode(e["audio"])
            self.appends += 1
            self.audio_bytes += len(pcm)
            self.sha.update(pcm)
        elif t == "session.update":
            session = {"id": f"sess_bench_{self.number}", **e.get("session", {})}
            self.send(_text({"event_id": "e1", "type": "session.updated", "session": session}))
        elif t == "input_audio_buffer.commit":
            item = f"item_bench_{self.number}_{self.appends}"
            done = {"event_id": "e2", "type": "input_audio_buffer.committed", "item_id": item}
            self.send(_text(done))
        elif t == "response.create":
            self.responses += 1
            number = self.number * 10000 + self.responses
            threading.Thread(target=self.stream, args=(number,), daemon=True).start()

    def stream(self, number: int) -> None:
        if self.pace <= 0:
            self.send(self.reply.whole(number))
            return
        for frame in self.reply.paced(self.pace, number):
            if self.closed:
                return
            self.send(frame)

    def stats(self) -> dict[str, Any]:
        return {
            "session": f"sess_bench_{self.number}",
            "appends": self.appends,
            "audio_bytes": self.audio_bytes,
            "audio_sha256": self.sha.hexdigest(),
            "responses": self.responses,
        }


def _serve(turns: int, deltas: int, pace: float) -> None:
    from bench_decode import build_frames

    reply = _Reply(build_frames(turns=turns, deltas=deltas))
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    conns: list[_Conn] = []
    lock = threading.Lock()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with lock:
                conn = _Conn(sock, len(conns), reply, pace)
                conns.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(json.dumps({"port": listener.getsockname()[1], "frames": reply.frames}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd.startswith("pace "):  # for the connections made from now on
            pace = float(cmd.split()[1])
            print("{}", flush=True)
        elif cmd == "stats":
            with lock:
                print(json.dumps([c.stats() for c in conns]), flush=True)
        elif cmd == "reset":
            with lock:
                conns.clear()
            print("{}", flush=True)
        elif cmd == "quit":
            break
    listener.close()


class FrameServer(ChildServer):
    """:mod:`frameserver` in a child process: ``url``, ``api_key``, ``frames`` per reply.

    ``ask("pace 0.001")`` sets the pace of the connections made afterwards; ``ask("stats")``
    lists what each connection received; ``cpu_seconds()`` is the server's CPU so far.
    """

    def __init__(self, *, turns: int = 10, deltas: int = 90, pace: float = 0.0) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--turns", str(turns)]
        cmd += ["--deltas", str(deltas), "--pace", str(pace)]
        super().__init__(cmd, "frame server")
        self.frames = int(self.info["frames"])
        self.turns = turns
        self.api_key = KEY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--deltas", type=int, default=90, help="audio deltas per turn")
    parser.add_argument("--pace", type=float, default=0.0)
    args = parser.parse_args()
    _serve(args.turns, args.deltas, args.pace)


if __name__ == "__main__":
    main()
