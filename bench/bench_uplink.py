"""Uplink: process CPU per 100 ms chunk, from the caller's chunk to the frame on the socket.

Three inputs, each through dashscope_rt and through the same pipeline written plainly:

* ``48k stereo f32`` (what a sound card gives), ``48k int16 mono`` and ``16k bytes`` (PCM16 at
  the model's rate, no resampling);
* ``dashscope_rt``: ``Session.append_audio(chunk, rate, channels)`` (downmix, streaming soxr,
  int16, exact 100 ms chunks, base64, the event, queued to its sender thread, masked, sent);
* ``plain``: the floor, on the caller's thread: numpy downmix (the channels summed column by
  column: ``x.mean(axis=1)`` would be ~20x slower in numpy and flatter the comparison), one
  ``soxr.ResampleStream``, int16, base64 with the same library as dashscope_rt, ``json.dumps``,
  one websocket-client ``send`` (which blocks the caller while it writes; ours never do);
* ``dashscope (official)`` for 16 kHz bytes: ``append_audio(base64 of the chunk)`` (it takes
  base64 text, so the encode with the same library is counted on its side too).

Two modes: ``back to back`` (hot caches; dashscope_rt's sender may take several chunks per
wake-up) and ``paced``, one chunk every ``PACE`` seconds as a microphone would hand them over
(every chunk wakes the sender). In ``paced`` an empty pacing loop is measured in the same repeat
and subtracted (``net``), so the ratios compare the work, not the sleeps. CPU is
``time.process_time()`` of this process (every thread) until every frame was written; the server
(:mod:`frameserver`) runs in another process and counts the audio that arrived. ``stages`` times
each step alone.
``--json`` prints the result for :func:`benchlib.run_child`.
Run: ``python bench/bench_uplink.py [--chunks 300] [--repeat 5]``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_peers import close_conversation
from benchlib import b64_library, b64encode_fn, bench_main, fmt_stat, ratio_stats, stat
from frameserver import FrameServer

__all__ = ["INPUTS", "run_uplink_bench"]

MODEL = "qwen3-omni-flash-realtime"
PACE = 0.002
MODES = {"back to back": 0.0, "paced": PACE}

# name -> (rate, channels, kind)
INPUTS: dict[str, tuple[int, int, str]] = {
    "48k stereo f32": (48000, 2, "f32"),
    "48k int16 mono": (48000, 1, "i16"),
    "16k bytes": (16000, 1, "bytes"),
}


def make_chunks(name: str, seconds: float = 10.0) -> list[Any]:
    """100 ms chunks of a quiet 440 Hz tone with a little noise, in the input's format."""
    rate, _, kind = INPUTS[name]
    rng = np.random.default_rng(7)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.1 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * rng.standard_normal(t.size)
    step = rate // 10
    if kind == "f32":
        st = np.stack([x, x * 0.9], axis=1).astype(np.float32)
        return [st[i : i + step] for i in range(0, len(st) - step + 1, step)]
    pcm = np.round(x * 32767).astype("<i2")
    chunks = [pcm[i : i + step] for i in range(0, len(pcm) - step + 1, step)]
    return [c.tobytes() for c in chunks] if kind == "bytes" else chunks


def _pacer(pace: float) -> Callable[[], None]:
    if pace <= 0:
        return lambda: None
    nxt = [time.monotonic()]

    def tick() -> None:
        nxt[0] += pace
        delay = nxt[0] - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    return tick


class _Ours:
    def __init__(self, server: FrameServer, rate: int, channels: int) -> None:
        from dashscope_rt.config import SessionConfig
        from dashscope_rt.session import Session

        self.rate, self.channels = rate, channels
        self.session = Session(
            MODEL, api_key=server.api_key, url=server.url, config=SessionConfig(turn_detection=None)
        )
        self.session.connect()

    def run(self, chunks: list[Any], n: int, pace: float) -> float:
        s = self.session
        append, rate, channels = s.append_audio, self.rate, self.channels
        tick = _pacer(pace)
        t0 = time.process_time()
        for i in range(n):
            append(chunks[i % len(chunks)], rate, channels)
            tick()
        while s.send_backlog:
            time.sleep(0.001)
        return time.process_time() - t0

    def close(self) -> None:
        self.session.close()


def _downmix(chunk: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Mono float32 in [-1, 1] from an int16 or float array, 1-D or (frames, channels)."""
    if chunk.dtype == np.int16:
        scaled: npt.NDArray[np.float32] = chunk.astype(np.float32) * np.float32(1 / 32768)
        return scaled
    if chunk.ndim == 1:
        return chunk.astype(np.float32, copy=False)
    x = chunk[:, 0].astype(np.float32)
    for c in range(1, chunk.shape[1]):
        x += chunk[:, c]
    x *= np.float32(1 / chunk.shape[1])
    return x


class _Plain:
    def __init__(self, server: FrameServer, rate: int, channels: int) -> None:
        import soxr
        import websocket

        self.ws = websocket.create_connection(
            server.url, header=[f"Authorization: Bearer {server.api_key}"]
        )
        self.ws.recv()  # session.created
        self.rate, self.channels = rate, channels
        self.rs = soxr.ResampleStream(rate, 16000, 1, dtype="float32") if rate != 16000 else None
        self.count = 0

    def _pcm(self, chunk: Any) -> bytes:
        if self.rs is None:
            return bytes(chunk)
        y = self.rs.resample_chunk(_downmix(chunk))
        return bytes((np.clip(y, -1.0, 1.0) * 32767).astype("<i2").tobytes())

    def run(self, chunks: list[Any], n: int, pace: float) -> float:
        dumps, b64encode, send = json.dumps, b64encode_fn(), self.ws.send
        tick = _pacer(pace)
        t0 = time.process_time()
        for i in range(n):
            pcm = self._pcm(chunks[i % len(chunks)])
            self.count += 1
            event = {"event_id": f"event_{self.count}", "type": "input_audio_buffer.append"}
            event["audio"] = b64encode(pcm)
            send(dumps(event))
            tick()
        return time.process_time() - t0

    def close(self) -> None:
        self.ws.close()


class _Official:
    def __init__(self, server: FrameServer, rate: int, channels: int) -> None:
        from dashscope.audio.qwen_omni import OmniRealtimeCallback, OmniRealtimeConversation

        self.conv = OmniRealtimeConversation(
            model=MODEL, callback=OmniRealtimeCallback(), url=server.url, api_key=server.api_key
        )
        self.conv.connect()

    def run(self, chunks: list[Any], n: int, pace: float) -> float:
        append, b64encode = self.conv.append_audio, b64encode_fn()
        tick = _pacer(pace)
        t0 = time.process_time()
        for i in range(n):
            append(b64encode(chunks[i % len(chunks)]))
            tick()
        return time.process_time() - t0

    def close(self) -> None:
        close_conversation(self.conv)


class _Empty:
    """The pacing loop alone (timer wake-ups), subtracted from the others."""

    def run(self, chunks: list[Any], n: int, pace: float) -> float:
        tick = _pacer(pace)
        t0 = time.process_time()
        for _ in range(n):
            tick()
        return time.process_time() - t0

    def close(self) -> None:
        return None


def _clients(server: FrameServer, name: str) -> dict[str, Any]:
    rate, channels, kind = INPUTS[name]
    out: dict[str, Any] = {
        "pacing loop alone": _Empty(),
        "plain": _Plain(server, rate, channels),
        "dashscope_rt": _Ours(server, rate, channels),
    }
    if kind == "bytes":
        with contextlib.suppress(ImportError):
            out["dashscope (official)"] = _Official(server, rate, channels)
    return out


def _stages(n: int = 500) -> dict[str, float]:
    """µs of thread CPU for each step of the 48 kHz stereo float32 path alone, ours and plain."""
    import soxr
    from websocket import ABNF

    from dashscope_rt import events as ev
    from dashscope_rt._frames import OP_TEXT, encode_frame
    from dashscope_rt.audio import AudioConverter

    chunks = make_chunks("48k stereo f32", 2.0)
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[int], Any]) -> None:
        t0 = time.thread_time()
        for i in range(n):
            fn(i)
        out[name] = round((time.thread_time() - t0) / n * 1e6, 2)

    conv = AudioConverter(16000, input_rate=48000, channels=2)
    timed("ours: AudioConverter.convert", lambda i: conv.convert(chunks[i % len(chunks)]))
    rs = soxr.ResampleStream(48000, 16000, 1, dtype="float32")
    timed(
        "plain: downmix + ResampleStream + int16",
        lambda i: (
            (np.clip(rs.resample_chunk(_downmix(chunks[i % 20])), -1, 1) * 32767)
            .astype("<i2")
            .tobytes()
        ),
    )
    timed("numpy x.mean(axis=1) alone", lambda i: chunks[i % 20].mean(axis=1, dtype=np.float32))
    pcm = bytes(3200)
    timed(
        "ours: events.encode (base64 + JSON)",
        lambda i: ev.encode(ev.InputAudioBufferAppend(audio=pcm)),
    )
    b64 = b64encode_fn()
    timed(
        "plain: base64 + json.dumps",
        lambda i: json.dumps({"event_id": "e", "type": "t", "audio": b64(pcm)}),
    )
    data = ev.encode(ev.InputAudioBufferAppend(audio=pcm)).encode()
    timed("ours: frame + mask", lambda i: encode_frame(OP_TEXT, data))
    timed("websocket-client: frame + mask", lambda i: ABNF.create_frame(data, 1).format())
    return out


RATIOS = [("dashscope_rt", "plain"), ("dashscope_rt", "dashscope (official)")]


def _measure(clients: dict[str, Any], data: list[Any], n: int, repeat: int, pace: float) -> Any:
    runs: dict[str, list[float]] = {k: [] for k in clients}
    names = list(clients)
    for r in range(repeat):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            runs[k].append(clients[k].run(data, n, pace) / n * 1e6)
    empty = runs.pop("pacing loop alone")
    net = {k: [v - e for v, e in zip(vs, empty, strict=True)] for k, vs in runs.items()}
    return {
        "pacing_loop_us": stat(empty),
        "gross_us_per_chunk": {k: stat(v) for k, v in runs.items()},
        "net_us_per_chunk": {k: stat(v) for k, v in net.items()},
        "ratios": {
            f"{a} / {b}": ratio_stats(net[a], net[b]) for a, b in RATIOS if a in net and b in net
        },
    }


def run_uplink_bench(chunks: int = 300, repeat: int = 5) -> dict[str, Any]:
    """Net µs of process CPU per chunk for each input, mode and client; paired ratios."""
    inputs: dict[str, Any] = {}
    with FrameServer() as server:
        for name in INPUTS:
            data = make_chunks(name)
            clients = _clients(server, name)
            try:
                for c in clients.values():  # warm up
                    c.run(data, 20, 0.0)
                res = {
                    mode: _measure(clients, data, chunks, repeat, pace)
                    for mode, pace in MODES.items()
                }
            finally:
                for c in clients.values():
                    c.close()
            connected = [k for k in clients if k != "pacing loop alone"]
            received = server.ask("stats")
            server.ask("reset")
            res["server_received"] = {
                k: {"appends": c["appends"], "audio_bytes": c["audio_bytes"]}
                for k, c in zip(connected, received, strict=False)
            }
            inputs[name] = res
    return {
        "bench": "uplink",
        "b64_library": b64_library(),
        "modes_pace_s": MODES,
        "chunks_per_run": chunks,
        "repeat": repeat,
        "inputs": inputs,
        "stages_us": _stages(),
    }


def _show(res: dict[str, Any]) -> None:
    print(f"base64: {res['b64_library']}, modes (pace in s): {res['modes_pace_s']}")
    for name, per_input in res["inputs"].items():
        for mode in MODES:
            r = per_input[mode]
            print(f"{name}, {mode}: pacing loop alone {fmt_stat(r['pacing_loop_us'], '.1f')} us")
            for k, s in r["net_us_per_chunk"].items():
                print(f"  {k:24s} net {fmt_stat(s, '.1f')} us CPU/chunk")
            for k, s in r["ratios"].items():
                print(f"  {k:40s} {fmt_stat(s, unit='x')}")
        print(f"  received: {per_input['server_received']}")
    print(json.dumps(res["stages_us"], indent=1))


def main() -> None:
    bench_main(__doc__, run_uplink_bench, _show, chunks=300, repeat=5)


if __name__ == "__main__":
    main()
