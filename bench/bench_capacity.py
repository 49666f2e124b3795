"""Capacity: how many real-time sessions one process holds, as a curve, and what runs out first.

For each N, N sessions in this process talk to :mod:`frameserver` (another process) at real-time
pace: every session appends a 100 ms chunk every 100 ms (48 kHz stereo float32 by default, as a
sound card gives; ``--input "16k bytes"`` for PCM16 at the model's rate), and every 6 s commits
and asks for a reply that the server streams at real time (4.7 s: 47 audio deltas of 100 ms at
24 kHz, transcript deltas, controls). Turns are staggered over the 6 s. One thread appends for
every session (an app's audio pump); the SDK's own threads do the rest.

Measured over a window after one warm-up cycle:

* CPU of this process (also by thread role: reader, dispatch, sender, the pump) and of the
  server, in cores (CPU seconds / wall seconds), and of the whole machine (every process, other
  tenants included);
* late chunks: appends that started a whole chunk (100 ms) or more after they were due;
* handler latency: server send -> ``on_audio_delta`` (the server stamps each delta), p50/p99;
* RSS, threads, file descriptors;
* intact: every reply that finished reached its handler whole (47 deltas), and the server
  received exactly the audio each session had to send, in order (bytes and SHA-256, recomputed
  with a fresh converter once the send queues are empty).

A point passes when no chunk was late, p99 < 50 ms and every stream is intact. The first
failing point names the resource nearest its limit (a heuristic, printed with the numbers).
``--server simulator`` runs the same load against the bundled simulator (``dashscope_rt.testing``,
in real-time mode, in another process) instead: can users load-test their apps with it? Its
replies are checked against what it says it sent (SHA-256), its send times give the latency.
Run: ``python bench/bench_capacity.py [--sessions 100 200 400] [--window 12] [--server simulator]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import hashlib
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_loopback import SimProcess
from bench_uplink import INPUTS, make_chunks
from benchlib import b64_library, emit_json
from frameserver import FrameServer

__all__ = ["run_capacity_bench"]

MODEL = "qwen3-omni-flash-realtime"
TICK_S = 0.1
TURN_TICKS = 60  # a turn every 6 s
REPLY_DELTAS = 47  # 4.7 s of reply audio
P99_LIMIT_S = 0.05


class _Fleet:
    """N connected sessions, the counters their handlers keep, and the audio pump."""

    def __init__(self, server: Any, n: int, input_name: str, *, simulator: bool = False) -> None:
        from dashscope_rt.config import SessionConfig
        from dashscope_rt.session import Session

        self.rate, self.channels, _ = INPUTS[input_name]
        self.chunks = make_chunks(input_name, 2.0)
        self.n = n
        self.deltas = [0] * n
        self.replies = [0] * n
        self.broken = [0] * n  # replies that finished with fewer deltas than sent
        self.appended = [0] * n
        self.commits: list[list[int]] = [[] for _ in range(n)]  # ticks after which it committed
        self.errors: list[BaseException] = []
        self.latencies: list[float] = []
        self.simulator = simulator  # its deltas are checked by hash, timed by event id
        self.down = [hashlib.sha256() for _ in range(n)] if simulator else []
        self.arrivals: list[tuple[str, float]] = []
        self.late = 0
        self.appends_timed = 0
        self.stop = threading.Event()
        self.sessions = [
            Session(
                MODEL,
                api_key=server.api_key,
                url=server.url,
                config=SessionConfig(turn_detection=None),
                connect_timeout=60.0,
            )
            for _ in range(n)
        ]
        for i, s in enumerate(self.sessions):
            s.on_audio_delta(functools.partial(self._delta, i))
            s.on("response.done", functools.partial(self._done, i))
            s.on_error(self.errors.append)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda s: s.connect(), self.sessions))
        self._since_done = [0] * n

    def _delta(self, i: int, e: Any) -> None:
        self.deltas[i] += 1
        self._since_done[i] += 1
        eid = e.event_id
        if self.simulator:
            self.down[i].update(e.audio)
            self.arrivals.append((eid, time.monotonic()))
        elif eid and eid[0] == "t":
            self.latencies.append(time.monotonic() - float(eid[1:]))

    def _done(self, i: int, _: Any) -> None:
        self.replies[i] += 1
        if not self.simulator and self._since_done[i] != REPLY_DELTAS:
            self.broken[i] += 1
        self._since_done[i] = 0

    def pump(self) -> None:
        """Append a chunk to every session every 100 ms; commit and ask every 6 s (staggered)."""
        t0 = time.monotonic()
        k = 0
        chunks, rate, channels = self.chunks, self.rate, self.channels
        while not self.stop.is_set():
            due = t0 + k * TICK_S
            for i, s in enumerate(self.sessions):
                if time.monotonic() - due >= TICK_S:
                    self.late += 1
                self.appends_timed += 1
                try:
                    s.append_audio(chunks[k % len(chunks)], rate, channels)
                    self.appended[i] += 1
                    if k % TURN_TICKS == (i * TURN_TICKS) // self.n and k >= TURN_TICKS:
                        s.commit()
                        self.commits[i].append(k)
                        s.create_response()
                except Exception as exc:  # a closed session: counted, not fatal here
                    self.errors.append(exc)
            k += 1
            delay = t0 + k * TICK_S - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)

    def expected_uplink(self, i: int) -> tuple[int, str]:
        """Bytes and SHA-256 of the audio session ``i`` must have sent (a fresh converter)."""
        from dashscope_rt.audio import AudioConverter

        conv = AudioConverter(16000, input_rate=self.rate, channels=self.channels)
        sha = hashlib.sha256()
        size = 0
        commits = set(self.commits[i])
        for k in range(self.appended[i]):
            out = conv.convert(self.chunks[k % len(self.chunks)])
            if k in commits:
                out += conv.flush()
            for chunk in out:
                sha.update(chunk)
                size += len(chunk)
        return size, sha.hexdigest()

    def close(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda s: s.close(), self.sessions))


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds of this process's threads so far, summed by role (the name, numbers cut).

    Read from /proc/self/task/*/schedstat (nanoseconds; the clock-tick counts psutil has are
    too coarse for threads that each run a few milliseconds). Empty where there is no /proc.
    """
    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        name = t.name
        role = name.split("-")[1] if name.startswith("dashscope_rt-") else name
        out[role] = out.get(role, 0.0) + ns / 1e9
    return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _point(server: Any, n: int, input_name: str, window: float) -> dict[str, Any]:
    import psutil

    proc = psutil.Process()
    simulator = isinstance(server, SimProcess)
    wall0 = time.monotonic()
    fleet = _Fleet(server, n, input_name, simulator=simulator)
    connect_s = time.monotonic() - wall0
    pump = threading.Thread(target=fleet.pump, name="bench-pump", daemon=True)
    pump.start()
    try:
        time.sleep(TURN_TICKS * TICK_S + 1.0)  # warm up: one turn cycle, every session replied
        fleet.latencies.clear()
        fleet.arrivals.clear()
        late0, timed0 = fleet.late, fleet.appends_timed
        psutil.cpu_percent()
        roles0 = _cpu_by_role()
        cpu0, srv0, t0 = time.process_time(), server.cpu_seconds(), time.monotonic()
        time.sleep(window)
        wall = time.monotonic() - t0
        cpu, srv = time.process_time() - cpu0, server.cpu_seconds() - srv0
        roles = {k: round((v - roles0.get(k, 0.0)) / wall, 3) for k, v in _cpu_by_role().items()}
        machine = psutil.cpu_percent() / 100.0
        late, timed = fleet.late - late0, fleet.appends_timed - timed0
        lat = list(fleet.latencies)
        arrivals = list(fleet.arrivals)
        rss = proc.memory_info().rss
        threads = threading.active_count()
        fds = proc.num_fds()
    finally:
        fleet.stop.set()
        pump.join()
    deadline = time.monotonic() + 15  # let the replies under way finish, the queues empty
    while time.monotonic() < deadline and any(s.active_response for s in fleet.sessions):
        time.sleep(0.2)
    while time.monotonic() < deadline and any(s.send_backlog for s in fleet.sessions):
        time.sleep(0.05)
    time.sleep(0.3)
    if simulator:
        lat = _sim_latencies(server, arrivals)
        digests = {d["session"]: d for d in server.ask("digest")}
        received = {k: (d["up_bytes"], d["up_sha256"]) for k, d in digests.items()}
        fleet.broken = [
            int(digests.get(s.session_id or "", {}).get("down_sha256") != fleet.down[i].hexdigest())
            for i, s in enumerate(fleet.sessions)
        ]
    else:
        stats = server.ask("stats")
        received = {c["session"]: (c["audio_bytes"], c["audio_sha256"]) for c in stats}
    lost_up = sum(
        1
        for i, s in enumerate(fleet.sessions)
        if received.get(s.session_id or "") != fleet.expected_uplink(i)
    )
    fleet.close()
    server.ask("reset")
    p50, p99 = _percentile(lat, 0.5), _percentile(lat, 0.99)
    intact = lost_up == 0 and sum(fleet.broken) == 0 and not fleet.errors
    return {
        "sessions": n,
        "connect_s": round(connect_s, 1),
        "window_s": round(wall, 1),
        "client_cores": round(cpu / wall, 3),
        "client_cores_by_thread": {k: v for k, v in sorted(roles.items()) if v > 0},
        "server_cores": round(srv / wall, 3),
        "machine_busy": round(machine, 3),
        "late_chunks": late,
        "chunks": timed,
        "handler_p50_ms": round(p50 * 1000, 2),
        "handler_p99_ms": round(p99 * 1000, 2),
        "latency_samples": len(lat),
        "rss_mb": round(rss / 2**20, 1),
        "threads": threads,
        "fds": fds,
        "replies": sum(fleet.replies),
        "broken_replies": sum(fleet.broken),
        "sessions_lost_uplink": lost_up,
        "errors": [repr(e) for e in fleet.errors[:5]],
        "intact": intact,
        "ok": intact and late == 0 and p99 < P99_LIMIT_S,
    }


def _sim_latencies(sim: SimProcess, arrivals: list[tuple[str, float]]) -> list[float]:
    """Simulator send -> handler for the deltas handled in the window (its send times)."""
    sent = {eid: t for conn in sim.ask("times") for eid, _, t in conn["sent"]}
    return [t - sent[eid] for eid, t in arrivals if eid in sent]


def _first_to_run_out(p: dict[str, Any]) -> str:
    """What ran out at a failing point (a heuristic over the printed numbers).

    In order: a limit of the operating system (memory, file descriptors), the machine's cores
    (every process, other tenants too), the server's process; else this process's interpreter
    lock: late chunks while the machine still has CPU to spare mean the app's threads wait for
    the GIL (hundreds of threads, each woken per frame, take turns holding it).
    """
    import psutil

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    avail_mb = psutil.virtual_memory().available / 2**20
    if avail_mb < 256:
        return f"memory ({avail_mb:.0f} MB left)"
    if p["fds"] > 0.9 * nofile:
        return f"file descriptors ({p['fds']} of {nofile})"
    if p["machine_busy"] >= 0.95:
        return f"the machine's CPU ({p['machine_busy']:.0%} busy, every process counted)"
    if p["server_cores"] >= 0.9:
        return f"the server process ({p['server_cores']:.2f} cores)"
    return (
        f"this process's interpreter lock: {p['client_cores']:.2f} cores of CPU, "
        f"{p['threads']} threads taking turns (the machine was {p['machine_busy']:.0%} busy)"
    )


def _server(kind: str) -> Any:
    if kind == "simulator":
        from dashscope_rt.testing import speech_duration_s

        words = ["sure", "here", "is", "a", "short", "answer", "for", "you"]
        text = ""
        while speech_duration_s(text) < REPLY_DELTAS * TICK_S:
            text += words[len(text.split()) % len(words)] + " "
        return SimProcess(speed=1.0, reply=text.strip())
    return FrameServer(turns=1, deltas=REPLY_DELTAS, pace=TICK_S)


def run_capacity_bench(
    sessions: list[int],
    window: float = 12.0,
    input_name: str = "48k stereo f32",
    server_kind: str = "frameserver",
) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    first_fail: dict[str, Any] | None = None
    with _server(server_kind) as server:
        for n in sessions:
            p = _point(server, n, input_name, window)
            points.append(p)
            print(json.dumps(p), file=sys.stderr, flush=True)
            if not p["ok"] and first_fail is None:
                first_fail = p
                p["first_to_run_out"] = _first_to_run_out(p)
    held = [p["sessions"] for p in points if p["ok"]]
    return {
        "bench": "capacity",
        "b64_library": b64_library(),
        "input": input_name,
        "server": server_kind,
        "cores": os.cpu_count(),
        "points": points,
        "max_sessions_ok": max(held) if held else 0,
        "first_failure": first_fail["sessions"] if first_fail else None,
        "first_to_run_out": first_fail.get("first_to_run_out") if first_fail else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 200, 300, 400])
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument("--input", default="48k stereo f32", choices=list(INPUTS))
    parser.add_argument("--server", default="frameserver", choices=["frameserver", "simulator"])
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    res = run_capacity_bench(args.sessions, args.window, args.input, args.server)
    if args.json:
        emit_json(res)
        return
    cols = (
        *("sessions", "client_cores", "server_cores", "machine_busy", "late_chunks"),
        *("handler_p50_ms", "handler_p99_ms", "rss_mb", "threads", "intact", "ok"),
    )
    print(f"input {res['input']}, server {res['server']}, {res['cores']} cores")
    print(" ".join(f"{c:>14s}" for c in cols))
    for p in res["points"]:
        print(" ".join(f"{p[c]!s:>14s}" for c in cols))
    print(f"held: {res['max_sessions_ok']}; first to run out: {res['first_to_run_out']}")


if __name__ == "__main__":
    main()
