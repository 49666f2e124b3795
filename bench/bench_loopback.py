"""Loopback latency: simulator → handler, per event, for dashscope_rt and the official SDK.

The simulator runs in its own process (so it does not share our GIL), streaming replies at
``--speed`` × real time in 100 ms audio deltas (speed 4 ≈ 50 events/s with the transcript
deltas), while a thread streams microphone audio up in real time (48 kHz stereo float for
dashscope_rt, pre-encoded 16 kHz Base64 for the official SDK, which cannot convert). Each
turn is a manual commit + ``response.create``. The latency of an event is the
``time.monotonic()`` at the first line of the handler minus the simulator's
``time.monotonic()`` right after its ``send()`` returned (CLOCK_MONOTONIC is system-wide).

Also home of :class:`SimProcess`, the out-of-process simulator the other benches use.
Run alone: ``python bench/bench_loopback.py [--turns 3] [--speed 4]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import ChildServer

__all__ = ["SimProcess", "percentiles", "run_loopback_bench"]

MODEL = "qwen3-omni-flash-realtime"
SIM_KEY = "sk-bench-simulator-key"
REPLY = "The quick brown fox jumps over the lazy dog and then it runs away into the forest. " * 3


# ---------------------------------------------------------------------------------------------
# the simulator in a child process


def _serve(args: argparse.Namespace) -> None:
    """Child process: run a Simulator, print its port, answer commands read from stdin."""
    import logging

    from dashscope_rt.testing import Behaviour, ScriptedReply, Simulator

    logging.basicConfig(level=logging.ERROR)
    text = args.reply
    behaviour = Behaviour(
        speed=args.speed, idle_timeout_s=None, max_duration_s=None, chunk_ms=args.chunk_ms
    )
    sim = Simulator(
        api_key=SIM_KEY,
        behaviour=behaviour,
        responder=lambda turn: ScriptedReply(text=text),
    )
    sim.start()
    print(json.dumps({"port": sim.port}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "times":
            out: list[Any] = []
            for rec in sim.connections:
                t0 = rec._t0
                out.append(
                    {
                        "session": _session_id(rec.sent),
                        "sent": [
                            [e.get("event_id"), e.get("type"), t0 + t]
                            for t, e in list(rec.sent)
                            if isinstance(e, dict)
                        ],
                    }
                )
            print(json.dumps(out), flush=True)
        elif cmd == "digest":
            print(json.dumps([_digest(rec) for rec in sim.connections]), flush=True)
        elif cmd == "count":
            n = sum(len(rec.received) for rec in sim.connections)
            print(json.dumps({"received": n, "connections": len(sim.connections)}), flush=True)
        elif cmd == "reset":
            with sim._lock:
                sim._connections.clear()
            print("{}", flush=True)
        elif cmd == "quit":
            break
    sim.stop()


def _session_id(sent: Sequence[tuple[float, Any]]) -> str | None:
    for _, e in sent:
        if isinstance(e, dict) and e.get("type") == "session.created":
            return str(e["session"]["id"])
    return None


def _digest(rec: Any) -> dict[str, Any]:
    """What a connection received (uplink audio) and sent (downlink audio), as hashes."""
    up = hashlib.sha256()
    up_n = up_bytes = 0
    for _, e in list(rec.received):
        if isinstance(e, dict) and e.get("type") == "input_audio_buffer.append":
            data = base64.b64decode(e["audio"])
            up.update(data)
            up_n += 1
            up_bytes += len(data)
    down = hashlib.sha256()
    down_n = down_bytes = 0
    for _, e in list(rec.sent):
        if isinstance(e, dict) and e.get("type") == "response.audio.delta":
            data = base64.b64decode(e["delta"])
            down.update(data)
            down_n += 1
            down_bytes += len(data)
    return {
        "session": _session_id(rec.sent),
        "up_sha256": up.hexdigest(),
        "up_chunks": up_n,
        "up_bytes": up_bytes,
        "down_sha256": down.hexdigest(),
        "down_chunks": down_n,
        "down_bytes": down_bytes,
        "closed_by": rec.closed_by,
    }


class SimProcess(ChildServer):
    """A :class:`~dashscope_rt.testing.Simulator` in a child process (see :func:`_serve`)."""

    def __init__(self, *, speed: float = 0.0, reply: str = REPLY, chunk_ms: int = 100) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--speed", str(speed)]
        cmd += ["--chunk-ms", str(chunk_ms), "--reply", reply]
        super().__init__(cmd, "simulator")
        self.api_key = SIM_KEY


# ---------------------------------------------------------------------------------------------
# measuring


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    if not values:
        return {"n": 0}
    a = np.asarray(values) * 1000.0
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
    }


def mic_chunks_48k_stereo(seconds: float) -> list[np.ndarray]:
    """100 ms blocks of a quiet 440 Hz tone, 48 kHz stereo float32, like a sound card gives."""
    n = 4800
    t = np.arange(int(48000 * seconds)) / 48000.0
    x = (0.1 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    st = np.stack([x, x], axis=1)
    return [st[i : i + n] for i in range(0, len(st) - n + 1, n)]


def _pcm16k(seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000.0
    return (3000 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2").tobytes()


class _Uplink(threading.Thread):
    """Calls ``send(i)`` every 100 ms until stopped (a microphone at real-time pace)."""

    def __init__(self, send: Callable[[int], None]) -> None:
        super().__init__(name="bench-uplink", daemon=True)
        self.send = send
        self.stop_flag = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        nxt = time.monotonic()
        try:
            while not self.stop_flag.is_set():
                self.send(self.sent)
                self.sent += 1
                nxt += 0.1
                self.stop_flag.wait(max(0.0, nxt - time.monotonic()))
        except BaseException as exc:  # reported by the caller
            self.error = exc


def _latencies(
    sim: SimProcess, session_id: str | None, seen: list[tuple[Any, float]]
) -> tuple[list[float], dict[str, int]]:
    conns = sim.ask("times")
    conn = next((c for c in conns if c["session"] == session_id), None)
    if conn is None:
        raise RuntimeError(f"the simulator has no record of session {session_id}")
    sent = {eid: (etype, t) for eid, etype, t in conn["sent"]}
    out: list[float] = []
    kinds: dict[str, int] = {}
    for eid, t in seen:
        hit = sent.get(eid)
        if hit is None or not str(hit[0]).startswith("response."):
            continue
        out.append(t - hit[1])
        kinds[hit[0]] = kinds.get(hit[0], 0) + 1
    return out, kinds


def run_ours(sim: SimProcess, turns: int) -> dict[str, Any]:
    from dashscope_rt.config import SessionConfig
    from dashscope_rt.session import Session

    seen: list[tuple[Any, float]] = []
    monotonic = time.monotonic
    done = threading.Event()
    chunks = mic_chunks_48k_stereo(2.0)
    s = Session(MODEL, api_key=sim.api_key, url=sim.url, config=SessionConfig(turn_detection=None))

    def on_event(e: Any) -> None:
        seen.append((getattr(e, "event_id", None), monotonic()))

    s.on_event(on_event)
    s.on("response.done", lambda e: done.set())
    with s:
        up = _Uplink(lambda i: s.append_audio(chunks[i % len(chunks)], 48000, 2))
        up.start()
        time.sleep(0.5)
        for _ in range(turns):
            done.clear()
            s.commit()
            s.create_response()
            if not done.wait(60):
                raise RuntimeError("dashscope_rt: no response.done within 60 s")
        up.stop_flag.set()
        up.join()
        read_p50, read_p99 = s.handler_latency()
        sid = s.session_id
    if up.error is not None:
        raise up.error
    lat, kinds = _latencies(sim, sid, seen)
    return {
        "client": "dashscope_rt",
        "uplink_chunks": up.sent,
        "events": kinds,
        "wire_to_handler": percentiles(lat),
        "read_to_handler": {
            "p50_ms": round(read_p50 * 1000, 3),
            "p99_ms": round(read_p99 * 1000, 3),
        },
    }


def run_official(sim: SimProcess, turns: int) -> dict[str, Any] | None:
    try:
        from dashscope.audio.qwen_omni import (
            MultiModality,
            OmniRealtimeCallback,
            OmniRealtimeConversation,
        )
    except ImportError:
        return None
    seen: list[tuple[Any, float]] = []
    monotonic = time.monotonic
    done = threading.Event()

    class Callback(OmniRealtimeCallback):
        def on_event(self, message: Any) -> None:
            seen.append((message.get("event_id"), monotonic()))
            if message.get("type") == "response.done":
                done.set()

    pcm = _pcm16k(2.0)
    b64 = [base64.b64encode(pcm[i : i + 3200]).decode() for i in range(0, len(pcm), 3200)]
    conv = OmniRealtimeConversation(
        model=MODEL, callback=Callback(), url=sim.url, api_key=sim.api_key
    )
    conv.connect()
    try:
        conv.update_session(
            output_modalities=[MultiModality.AUDIO, MultiModality.TEXT],
            voice="Cherry",
            enable_turn_detection=False,
        )
        up = _Uplink(lambda i: conv.append_audio(b64[i % len(b64)]))
        up.start()
        time.sleep(0.5)
        for _ in range(turns):
            done.clear()
            conv.commit()
            conv.create_response()
            if not done.wait(60):
                raise RuntimeError("official SDK: no response.done within 60 s")
        up.stop_flag.set()
        up.join()
        sid = conv.get_session_id()
    finally:
        conv.close()
        thread = getattr(conv, "thread", None)
        if thread is not None:
            thread.join(5)
    if up.error is not None:
        raise up.error
    lat, kinds = _latencies(sim, sid, seen)
    return {
        "client": "dashscope (official)",
        "uplink_chunks": up.sent,
        "events": kinds,
        "wire_to_handler": percentiles(lat),
    }


def run_loopback_bench(turns: int = 3, speed: float = 4.0) -> dict[str, Any]:
    """Both clients in turn against one simulator process; returns a JSON-ready dict."""
    with SimProcess(speed=speed) as sim:
        ours = run_ours(sim, turns)
        try:
            official = run_official(sim, turns)
        except Exception as exc:  # report it in the results instead of losing the section
            official = {"client": "dashscope (official)", "error": repr(exc), "wire_to_handler": {}}
    rate = sum(ours["events"].values()) / max(1, turns) / (16.27 / speed)
    res: dict[str, Any] = {
        "bench": "loopback",
        "turns": turns,
        "speed": speed,
        "approx_events_per_s": round(rate, 1),
        "clients": [ours] + ([official] if official else []),
        "targets": {
            "p50 < 0.5 ms": ours["wire_to_handler"].get("p50_ms", 1e9) < 0.5,
            "p99 < 2 ms": ours["wire_to_handler"].get("p99_ms", 1e9) < 2.0,
        },
    }
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--reply", default=REPLY)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        _serve(args)
        return
    res = run_loopback_bench(args.turns, args.speed)
    for c in res["clients"]:
        w = c["wire_to_handler"]
        print(
            f"{c['client']:24s} n={w['n']:5d} p50 {w['p50_ms']:.3f} ms  p90 {w['p90_ms']:.3f} ms"
            f"  p99 {w['p99_ms']:.3f} ms  max {w['max_ms']:.3f} ms"
        )
    print(json.dumps(res["targets"]))


if __name__ == "__main__":
    main()
