"""Memory per turn with default settings, and the import cost of ``import dashscope_rt``.

``memory``: one ``Session`` with defaults answers ``--turns`` short replies from
:mod:`frameserver` (10 audio deltas of 100 ms each, back to back), one after another; RSS is
sampled after a ``gc.collect()`` every ``--every`` turns. Reported: KB per turn (least-squares
slope over the second half) and what the session keeps (history entries, metrics).

``imports``: ``python -X importtime -c "import dashscope_rt"`` in fresh processes: the median
total, and whether heavy modules (numpy, soxr, websocket, attrs) were imported by it.
Run: ``python bench/bench_memory.py [--turns 2000]``.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import ROOT, bench_main, stat
from frameserver import FrameServer

__all__ = ["run_import_bench", "run_memory_and_import_bench", "run_memory_bench"]

MODEL = "qwen3-omni-flash-realtime"
HEAVY = ("numpy", "soxr", "websocket", "attrs", "pybase64", "json", "ssl")


def run_memory_bench(turns: int = 2000, every: int = 100) -> dict[str, Any]:
    import numpy as np
    import psutil

    from dashscope_rt.session import Session

    proc = psutil.Process()
    samples: list[tuple[int, float]] = []
    done = threading.Event()
    with FrameServer(turns=1, deltas=10) as server:
        s = Session(MODEL, api_key=server.api_key, url=server.url)
        s.on("response.done", lambda e: done.set())
        with s:
            for turn in range(1, turns + 1):
                done.clear()
                s.create_response()
                if not done.wait(30):
                    raise RuntimeError(f"turn {turn}: no response.done within 30 s")
                if turn % every == 0:
                    gc.collect()
                    samples.append((turn, proc.memory_info().rss / 1024))
            history, metrics = len(s.history), len(s.metrics)
    half = samples[len(samples) // 2 :]
    slope = float(np.polyfit([t for t, _ in half], [m for _, m in half], 1)[0])
    return {
        "turns": turns,
        "rss_kb": [[t, round(m)] for t, m in samples],
        "kb_per_turn": round(slope, 2),
        "history_entries": history,
        "metrics_entries": metrics,
    }


_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def run_import_bench(repeat: int = 7) -> dict[str, Any]:
    """``import dashscope_rt`` in fresh processes: total (µs, wall: what a user waits)."""
    totals: list[float] = []
    loaded: dict[str, float] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import dashscope_rt"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stderr
        for line in out.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            cumulative, indent, name = int(m.group(2)), len(m.group(3)), m.group(4)
            if name == "dashscope_rt" and indent == 1:
                totals.append(cumulative / 1000)
            if name in HEAVY:
                loaded[name] = cumulative / 1000
    return {
        "import_ms": stat(totals, 1),
        "heavy_modules_imported_ms": {k: round(v, 1) for k, v in sorted(loaded.items())},
    }


def run_memory_and_import_bench(turns: int = 2000, every: int = 100) -> dict[str, Any]:
    return {
        "bench": "memory",
        "memory": run_memory_bench(turns, every),
        "imports": run_import_bench(),
    }


def main() -> None:
    bench_main(
        __doc__,
        run_memory_and_import_bench,
        lambda r: print(json.dumps(r, indent=1)),
        turns=2000,
        every=100,
    )


if __name__ == "__main__":
    main()
