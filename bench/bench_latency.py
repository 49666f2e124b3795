"""Handler latency and send-call cost of a Session against the local simulator.

Prints, for one run on this machine (numbers are for comparison within the run, not targets):

* reader → handler: time from the reader having a frame to the first handler call for it
  (the dispatcher hop), p50/p99;
* simulator send → handler: from the simulator's ``ws.send`` to the handler call, over loopback;
* cost of one ``append_audio`` call (20 ms of 48 kHz float32 → resample → enqueue) against
  an inline ``Transport.send_text`` of the same frame under the send lock (what the call would
  cost if it wrote to the socket itself).

Run: ``.venv/bin/python bench/bench_latency.py [turns]``.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from dashscope_rt import events as ev
from dashscope_rt._dispatch import percentile
from dashscope_rt.config import SessionConfig
from dashscope_rt.session import Session
from dashscope_rt.testing import Simulator, synthesize

KEY = "sk-bench"
MODEL = "qwen3-omni-flash-realtime"


def ms(x: float) -> str:
    return f"{x * 1000:.3f} ms"


def paced(turns: int = 2) -> tuple[float, float, int]:
    """Reader -> handler when events arrive at real-time pace (no queue behind them)."""
    speech = synthesize("a short question", 16000)
    with Simulator(api_key=KEY, realtime=True) as sim:
        s = Session(MODEL, api_key=KEY, url=sim.url, config=SessionConfig(turn_detection=None))
        s.on_event(lambda e: None)
        with s:
            for _ in range(turns):
                s.ask(audio=speech, timeout=30)
            p50, p99 = s.handler_latency()
            return p50, p99, len(s._engine.lag_samples)


def main(turns: int = 20) -> None:
    speech = synthesize("a short question for the benchmark", 16000)
    arrivals: list[tuple[str, float]] = []
    with Simulator(api_key=KEY) as sim:
        s = Session(MODEL, api_key=KEY, url=sim.url, config=SessionConfig(turn_detection=None))

        @s.on_event
        def stamp(e: object) -> None:
            eid = getattr(e, "event_id", None)
            if eid:
                arrivals.append((eid, time.monotonic()))

        with s:
            for _ in range(turns):
                s.ask(audio=speech, timeout=30)
            rec = sim.last
            p50, p99 = s.handler_latency()
            n = len(s._engine.lag_samples)

            sent_at = {
                e["event_id"]: rec._t0 + t
                for t, e in rec.sent
                if isinstance(e, dict) and "event_id" in e
            }
            e2e = [t - sent_at[eid] for eid, t in arrivals if eid in sent_at]

            frame = (np.sin(np.arange(960) / 10.0) * 0.1).astype(np.float32)
            calls = []
            for _ in range(500):
                t0 = time.perf_counter()
                s.append_audio(frame, sample_rate=48000)
                calls.append(time.perf_counter() - t0)
            tr = s._engine.transport
            assert tr is not None
            text = ev.encode(ev.InputAudioBufferAppend(audio=b"\x00" * 640))
            inline = []
            for _ in range(500):
                t0 = time.perf_counter()
                tr.send_text(text)
                inline.append(time.perf_counter() - t0)
            # the same inline sends while another thread streams large frames
            big = ev.encode(ev.InputAudioBufferAppend(audio=b"\x00" * 2_000_000))
            stop = threading.Event()

            def hog() -> None:
                while not stop.is_set():
                    tr.send_text(big)

            th = threading.Thread(target=hog)
            th.start()
            contended = []
            queued = []
            for _ in range(200):
                t0 = time.perf_counter()
                tr.send_text(text)
                contended.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                s.append_audio(frame, sample_rate=48000)
                queued.append(time.perf_counter() - t0)
            stop.set()
            th.join()

    q50, q99, qn = paced()
    print(f"{turns} turns at full speed, {n} dispatched events with a handler")
    print(f"reader -> handler       p50 {ms(p50)}  p99 {ms(p99)}  (bursts: includes queueing)")
    print(f"reader -> handler paced p50 {ms(q50)}  p99 {ms(q99)}  ({qn} events, real time)")
    print(
        f"simulator -> handler    p50 {ms(percentile(e2e, 0.5))}  "
        f"p99 {ms(percentile(e2e, 0.99))}  ({len(e2e)} events)"
    )
    print(
        f"append_audio (queued)   p50 {ms(percentile(calls, 0.5))}  "
        f"p99 {ms(percentile(calls, 0.99))}"
    )
    print(
        f"inline send_text        p50 {ms(percentile(inline, 0.5))}  "
        f"p99 {ms(percentile(inline, 0.99))}"
    )
    print(
        f"with a 2 MB sender busy: inline p50 {ms(percentile(contended, 0.5))} "
        f"p99 {ms(percentile(contended, 0.99))} | append_audio p50 "
        f"{ms(percentile(queued, 0.5))} p99 {ms(percentile(queued, 0.99))}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
