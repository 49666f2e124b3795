"""The send path: a frame goes out on the caller's thread only when that cannot block or reorder.

``Link.send`` writes on the calling thread when nothing is queued or being written and the
kernel's send buffer provably has room (Linux); otherwise the sender thread writes it. These
tests drive a real session against the simulator and a real TCP socket whose peer stops reading.
"""

from __future__ import annotations

import base64
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dashscope_rt import transport as transport_mod
from dashscope_rt._link import _SendQueue
from dashscope_rt.config import SessionConfig
from dashscope_rt.errors import SendBacklogFull
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator

KEY = "sk-send-path"
MODEL = "qwen3-omni-flash-realtime"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ is Linux's")


@pytest.fixture
def stalled_socket() -> Iterator[socket.socket]:
    """A connected TCP socket whose peer never reads."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        try:
            yield client
        finally:
            client.close()
            peer.close()


@linux_only
def test_room_for_says_no_once_the_peer_stops_reading(stalled_socket: socket.socket) -> None:
    assert transport_mod._room_for(stalled_socket, 4096)
    stalled_socket.setblocking(False)
    chunk = bytes(65536)
    with pytest.raises(BlockingIOError):  # a blocking send would wait from here on
        while True:
            stalled_socket.send(chunk)
    assert not transport_mod._room_for(stalled_socket, 4096)


def test_room_for_is_false_where_it_cannot_know(
    stalled_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_mod, "_SIOCOUTQ", None)
    assert not transport_mod._room_for(stalled_socket, 1)


@pytest.mark.timeout(30)
def test_direct_and_queued_sends_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks written on the caller's thread and by the sender arrive whole and in order."""
    direct: list[bool] = []
    original = transport_mod.Transport.try_send_text

    def counting(self: transport_mod.Transport, text: str, before: Any = None) -> bool:
        sent = original(self, text, before)
        direct.append(sent)
        return sent

    monkeypatch.setattr(transport_mod.Transport, "try_send_text", counting)
    chunks = [bytes([i]) * 3200 for i in range(60)]
    big = {"type": "conversation.item.create", "item": {"note": "x" * 3_000_000}}
    with Simulator(api_key=KEY) as sim:
        s = Session(MODEL, api_key=KEY, url=sim.url, config=SessionConfig(turn_detection=None))
        with s:
            for i, chunk in enumerate(chunks):
                if i == 20:
                    s.send_raw(big)  # keeps the sender busy: the next chunks queue behind it
                s.append_audio(chunk, 16000)

            def all_in() -> bool:
                return len(sim.last.received_events("input_audio_buffer.append")) == len(chunks)

            sim.wait_for(all_in, timeout=20)
            got = [
                base64.b64decode(e["audio"])
                for e in sim.last.received_events("input_audio_buffer.append")
            ]
    assert got == chunks
    if sys.platform.startswith("linux"):
        assert any(direct) and not all(direct)  # both paths were taken


def test_nothing_goes_direct_while_a_frame_is_queued_or_being_written() -> None:
    q = _SendQueue(max_bytes=1 << 20)
    wrote: list[str] = []

    def write(name: str) -> bool:
        wrote.append(name)
        return True

    assert q.send_now(lambda: write("first"))  # idle: written at once
    q.put("queued", 10)
    assert not q.send_now(lambda: write("overtaker"))  # one is queued
    assert q.get() == "queued" and q.backlog == 0
    assert not q.send_now(lambda: write("overtaker"))  # one is being written
    q.done()
    assert q.send_now(lambda: write("after"))
    assert wrote == ["first", "after"]


def test_the_backlog_bound_holds_and_says_what_is_queued() -> None:
    q = _SendQueue(max_bytes=100)
    q.put("a", 60)
    with pytest.raises(SendBacklogFull) as info:
        q.put("b", 60)
    assert info.value.backlog == 60 and info.value.limit == 100
    assert q.backlog == 60 and not q.send_now(lambda: True)
