"""Scale: N concurrent sessions in one process against the simulator (in its own process).

Every session streams its own audio up in real time (100 ms chunks of 48 kHz stereo float32
noise, different per session, resampled by the session; the bytes it must send are recomputed
with a fresh converter afterwards, so they can be checked exactly), commits, and receives a
spoken reply (the simulator in fast mode). The input audio is made before RSS is measured.
Measured: RSS per session (peak RSS minus the RSS before the sessions, divided by N), process
CPU, threads. Checked: every session's uplink bytes reached the simulator whole and in order,
and every session received exactly the downlink audio the simulator sent, in order (SHA-256
of the concatenation and chunk counts, both sides).
Run alone: ``python bench/bench_scale.py [--sessions 200] [--seconds 3] [--rate 16000]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_loopback import MODEL, SimProcess

__all__ = ["run_scale_bench"]

SHORT_REPLY = "Sure, here is a short answer for you."


def _audio(index: int, seconds: float, rate: int) -> list[Any]:
    """The audio one session streams, in 100 ms chunks (made before RSS is measured)."""
    rng = np.random.default_rng(index)
    if rate == 16000:  # PCM16 bytes at the model's rate: sent as they are
        pcm = rng.integers(-2000, 2000, int(16000 * seconds), dtype=np.int16).tobytes()
        return [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]
    # what a sound card gives: float32 stereo, resampled by the session
    x = (rng.standard_normal((int(rate * seconds), 2)) * 0.05).astype(np.float32)
    step = rate // 10
    return [x[i : i + step] for i in range(0, len(x), step)]


class _Client:
    def __init__(self, sim: SimProcess, chunks: list[Any], rate: int) -> None:
        from dashscope_rt.config import SessionConfig
        from dashscope_rt.session import Session

        self.rate = rate
        self.chunks = chunks
        self.down: list[bytes] = []
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.session = Session(
            MODEL,
            api_key=sim.api_key,
            url=sim.url,
            config=SessionConfig(turn_detection=None),
            connect_timeout=60.0,
        )
        self.session.on_audio_delta(lambda e: self.down.append(e.audio))
        self.session.on("response.done", lambda e: self.done.set())
        self.session.on_error(self.errors.append)

    def expected_uplink(self) -> tuple[str, int]:
        """SHA-256 and chunk count of what the session must have sent (same converter)."""
        from dashscope_rt.audio import AudioConverter

        if self.rate == 16000:
            data = b"".join(self.chunks)
            return hashlib.sha256(data).hexdigest(), len(self.chunks)
        conv = AudioConverter(16000, input_rate=self.rate, channels=2)
        out: list[bytes] = []
        for c in self.chunks:
            out.extend(conv.convert(c))
        out.extend(conv.flush())
        out = [b for b in out if b]
        return hashlib.sha256(b"".join(out)).hexdigest(), len(out)


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def run_scale_bench(sessions: int = 200, seconds: float = 3.0, rate: int = 48000) -> dict[str, Any]:
    """Returns a JSON-ready dict; ``intact`` is True when no audio was lost or reordered."""
    import gc

    import psutil

    proc = psutil.Process()
    with SimProcess(speed=0.0, reply=SHORT_REPLY) as sim:
        warm = _Client(sim, _audio(10**6, 0.3, rate), rate)  # import and warm every code path once
        with warm.session as s:
            for chunk in warm.chunks:
                s.append_audio(chunk, rate, 1 if rate == 16000 else 2)
            s.commit()
            s.create_response()
            warm.done.wait(30)
        del warm, s
        audio = [_audio(i, seconds, rate) for i in range(sessions)]
        gc.collect()
        sim.ask("reset")
        rss0 = _rss()
        threads0 = threading.active_count()
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        clients = [_Client(sim, audio[i], rate) for i in range(sessions)]
        try:
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda c: c.session.connect(), clients))
            connect_s = time.monotonic() - wall0
            rss_connected = _rss()
            threads = threading.active_count() - threads0
            peak = [rss_connected]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.1):
                    peak[0] = max(peak[0], _rss())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            stream0 = time.monotonic()
            n_chunks = len(clients[0].chunks)
            channels = 1 if rate == 16000 else 2
            late = 0
            for k in range(n_chunks):  # one tick per 100 ms: every session appends one chunk
                for c in clients:
                    c.session.append_audio(c.chunks[k], rate, channels)
                due = stream0 + 0.1 * (k + 1)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    late += 1
            for c in clients:
                c.session.commit()
                c.session.create_response()
            missing = sum(
                1 for c in clients if not c.done.wait(max(0.1, 120 - (time.monotonic() - stream0)))
            )
            run_s = time.monotonic() - stream0
            cpu_run = time.process_time() - cpu0
            peak[0] = max(peak[0], _rss())
            stop.set()
            sampler.join()
            ids = {c.session.session_id: c for c in clients}
        finally:
            for c in clients:
                c.session.close()
        digests = sim.ask("digest")
        sim_cpu = sim.cpu_seconds()
    bad_up = bad_down = 0
    for d in digests:
        client = ids.get(d["session"])
        if client is None:
            continue
        if (d["up_sha256"], d["up_chunks"]) != client.expected_uplink():
            bad_up += 1
        if (
            d["down_sha256"] != hashlib.sha256(b"".join(client.down)).hexdigest()
            or d["down_chunks"] != len(client.down)
            or d["down_chunks"] == 0
        ):
            bad_down += 1
    matched = sum(1 for d in digests if d["session"] in ids)
    errors = sum(len(c.errors) for c in clients)
    per_session = (peak[0] - rss0) / sessions
    intact = matched == sessions and bad_up == 0 and bad_down == 0 and missing == 0
    return {
        "bench": "scale",
        "sessions": sessions,
        "audio_seconds_each": seconds,
        "input": "48 kHz stereo float32" if rate != 16000 else "16 kHz PCM16 bytes",
        "connect_s": round(connect_s, 2),
        "run_s": round(run_s, 2),
        "late_ticks": late,
        "rss_before_mb": round(rss0 / 2**20, 1),
        "rss_connected_mb": round(rss_connected / 2**20, 1),
        "rss_peak_mb": round(peak[0] / 2**20, 1),
        "rss_per_session_mb": round(per_session / 2**20, 3),
        "threads_per_session": round(threads / sessions, 2),
        "process_cpu_s": round(cpu_run, 2),
        "process_cpu_pct_of_one_core": round(100 * cpu_run / (time.monotonic() - wall0), 1),
        "simulator_cpu_s": round(sim_cpu, 2),
        "fds_open": proc.num_fds(),
        "replies_missing": missing,
        "uplink_mismatch": bad_up,
        "downlink_mismatch": bad_down,
        "sessions_matched": matched,
        "handler_errors": errors,
        "intact": intact,
        "targets": {"<= 2 MB RSS per session": per_session <= 2 * 2**20, "zero lost audio": intact},
        "pid": os.getpid(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="N concurrent sessions in one process")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=48000, choices=(16000, 48000))
    args = parser.parse_args()
    print(json.dumps(run_scale_bench(args.sessions, args.seconds, args.rate), indent=2))


if __name__ == "__main__":
    main()
