"""Reader -> handler, end to end over a real socket: process CPU per server event.

The server (:mod:`frameserver`, another process) sends the frames of ``bench_decode`` (89 % audio
deltas) after a ``response.create``, either back to back (``burst``: the client reads them as
fast as it can) or an audio delta every millisecond (``paced``: frames arrive one by one and wake
the client, as over a network). Each client must hand every event, audio decoded, to a no-op
handler. Measured: ``time.process_time()`` of the client process (every thread) from sending
``response.create`` to its handler seeing the last ``response.done``, divided by the frames.

* ``plain websocket-client loop``: the floor, a plainly written client on one thread:
  websocket-client's ``recv_data`` (UTF-8 check skipped), ``json.loads``, base64 decode of the
  audio with the same library as dashscope_rt, the handler.
* ``dashscope_rt``: a ``Session`` with ``on_audio_delta`` and ``on("response.done")`` handlers
  (reader thread, dispatcher thread, conversation state: its real code path).
* ``dashscope (official)``: ``OmniRealtimeConversation`` (its websocket-client ``WebSocketApp``
  as it ships, UTF-8 check included) with a callback that decodes the audio.

Clients are interleaved within each repeat; medians, IQR and paired ratios over the repeats.
``--json`` prints the result for :func:`benchlib.run_child`.
Run: ``python bench/bench_e2e.py [--repeat 7] [--turns 10]``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_peers import close_conversation
from benchlib import b64_library, b64decode_fn, bench_main, fmt_stat, ratio_stats, stat
from frameserver import FrameServer

__all__ = ["run_e2e_bench"]

MODEL = "qwen3-omni-flash-realtime"
PACED_S = 0.001
_CREATE = json.dumps({"event_id": "event_bench", "type": "response.create"})


def _noop(_: Any) -> None:
    return None


class _Client:
    """Connected once; :meth:`reply` asks for one reply and returns the CPU seconds it took."""

    name = ""

    def reply(self) -> float:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Plain(_Client):
    name = "plain websocket-client loop"

    def __init__(self, server: FrameServer) -> None:
        import websocket

        self.turns = server.turns
        self.ws = websocket.create_connection(
            server.url,
            header=[f"Authorization: Bearer {server.api_key}"],
            skip_utf8_validation=True,  # json.loads checks it, in C
        )
        self.ws.recv()  # session.created

    def reply(self) -> float:
        loads = json.loads
        b64decode = b64decode_fn()
        recv = self.ws.recv_data
        handler = _noop
        done = 0
        t0 = time.process_time()
        self.ws.send(_CREATE)
        while done < self.turns:
            _, data = recv()
            d = loads(data)
            t = d["type"]
            if t == "response.audio.delta":
                d["delta"] = b64decode(d["delta"])
            elif t == "response.done":
                done += 1
            handler(d)
        return time.process_time() - t0

    def close(self) -> None:
        self.ws.close()


class _Ours(_Client):
    name = "dashscope_rt"

    def __init__(self, server: FrameServer) -> None:
        from dashscope_rt.session import Session

        self.turns = server.turns
        self.done = 0
        self.finished = threading.Event()
        self.session = Session(MODEL, api_key=server.api_key, url=server.url)
        self.session.on_audio_delta(_noop)
        self.session.on("response.done", self._on_done)
        self.session.connect()

    def _on_done(self, _: Any) -> None:
        self.done += 1
        if self.done == self.turns:
            self.finished.set()

    def reply(self) -> float:
        self.done = 0
        self.finished.clear()
        t0 = time.process_time()
        self.session.create_response()
        if not self.finished.wait(120):
            raise RuntimeError("dashscope_rt: the reply did not finish within 120 s")
        return time.process_time() - t0

    def close(self) -> None:
        self.session.close()


class _Official(_Client):
    name = "dashscope (official)"

    def __init__(self, server: FrameServer) -> None:
        from dashscope.audio.qwen_omni import OmniRealtimeCallback, OmniRealtimeConversation

        b64decode = b64decode_fn()
        outer = self

        class Callback(OmniRealtimeCallback):
            def on_event(self, message: Any) -> None:
                t = message.get("type")
                if t == "response.audio.delta":
                    b64decode(message["delta"])
                elif t == "response.done":
                    outer.done += 1
                    if outer.done == outer.turns:
                        outer.finished.set()

        self.turns = server.turns
        self.done = 0
        self.finished = threading.Event()
        self.conv = OmniRealtimeConversation(
            model=MODEL, callback=Callback(), url=server.url, api_key=server.api_key
        )
        self.conv.connect()

    def reply(self) -> float:
        self.done = 0
        self.finished.clear()
        t0 = time.process_time()
        self.conv.create_response()
        if not self.finished.wait(300):
            raise RuntimeError("official SDK: the reply did not finish within 300 s")
        return time.process_time() - t0

    def close(self) -> None:
        close_conversation(self.conv)


def _makers() -> list[Callable[[FrameServer], _Client]]:
    makers: list[Callable[[FrameServer], _Client]] = [_Plain, _Ours]
    try:
        import dashscope  # noqa: F401
    except ImportError:
        pass
    else:
        makers.append(_Official)
    return makers


def _measure(server: FrameServer, repeat: int) -> dict[str, list[float]]:
    clients = [make(server) for make in _makers()]
    try:
        for c in clients:  # warm up every path once
            c.reply()
        runs: dict[str, list[float]] = {c.name: [] for c in clients}
        for r in range(repeat):
            for c in clients[r % len(clients) :] + clients[: r % len(clients)]:
                runs[c.name].append(c.reply() / server.frames * 1e6)
        return runs
    finally:
        for c in clients:
            c.close()


RATIOS = [
    ("dashscope_rt", "plain websocket-client loop"),
    ("dashscope_rt", "dashscope (official)"),
]


def run_e2e_bench(turns: int = 10, repeat: int = 7) -> dict[str, Any]:
    """µs of process CPU per event, burst and paced, for each client; paired ratios."""
    modes: dict[str, Any] = {}
    with FrameServer(turns=turns) as server:
        for mode, pace in (("burst", 0.0), ("paced", PACED_S)):
            server.ask(f"pace {pace}")
            runs = _measure(server, repeat)
            modes[mode] = {
                "pace_s": pace,
                "us_per_event": {name: stat(v) for name, v in runs.items()},
                "ratios": {
                    f"{a} / {b}": ratio_stats(runs[a], runs[b])
                    for a, b in RATIOS
                    if a in runs and b in runs
                },
            }
        frames = server.frames
    return {
        "bench": "e2e",
        "b64_library": b64_library(),
        "frames_per_reply": frames,
        "repeat": repeat,
        "modes": modes,
    }


def _show(res: dict[str, Any]) -> None:
    print(f"{res['frames_per_reply']} frames a reply, base64: {res['b64_library']}")
    for mode, m in res["modes"].items():
        print(f"{mode} (one frame every {m['pace_s'] * 1000:g} ms; 0 = back to back)")
        for name, s in m["us_per_event"].items():
            print(f"  {name:30s} {fmt_stat(s, '.1f')} us CPU/event")
        for name, s in m["ratios"].items():
            print(f"  {name:50s} {fmt_stat(s, unit='x')}")


def main() -> None:
    bench_main(__doc__, run_e2e_bench, _show, turns=10, repeat=7)


if __name__ == "__main__":
    main()
