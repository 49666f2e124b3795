"""What every benchmark here shares: robust statistics, CPU clocks, the no-speedups child process.

Conventions (issue #17): time is CPU time (``time.thread_time`` for one thread,
``time.process_time`` for every thread of the process), never wall time; a figure is the median
of repeated runs with its interquartile range; a ratio is computed per repeat from runs made
back to back (interleaved), then summarised the same way, so a busy shared machine moves both
sides of a ratio together. Nothing here asserts a time.

The optional ``speedups`` extra (pybase64) changes the cost of every base64 step, so each bench
runs twice: as installed, and in a child process where ``import pybase64`` fails (:func:`run_child`
with ``speedups=False``). Floors and peers use the same base64 library as dashscope_rt on each
side (:func:`b64decode_fn`, :func:`b64encode_fn`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HERE",
    "ROOT",
    "ChildServer",
    "b64_library",
    "b64decode_fn",
    "b64encode_fn",
    "bench_main",
    "emit_json",
    "fmt_stat",
    "have_pybase64",
    "ratio_stats",
    "run_child",
    "stat",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_MARK = "BENCH-JSON "


def stat(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median and interquartile range (``q1``, ``q3``) of ``values``, with ``n``."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"n": 0, "median": float("nan"), "q1": float("nan"), "q3": float("nan")}
    if len(vals) == 1:
        q1 = med = q3 = vals[0]
    else:
        q1, med, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return {
        "n": len(vals),
        "median": round(med, digits),
        "q1": round(q1, digits),
        "q3": round(q3, digits),
    }


def ratio_stats(mine: Sequence[float], theirs: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """:func:`stat` of the per-repeat ratios ``mine[i] / theirs[i]`` (paired, same repeat)."""
    return stat([m / t for m, t in zip(mine, theirs, strict=True) if t > 0], digits)


def fmt_stat(s: dict[str, Any] | None, spec: str = ".2f", unit: str = "") -> str:
    """``median (q1-q3)`` for a table cell; ``n/a`` when missing."""
    if not s or not s.get("n"):
        return "n/a"
    return f"{s['median']:{spec}}{unit} ({s['q1']:{spec}}-{s['q3']:{spec}})"


# ---------------------------------------------------------------------------------------------
# base64: the same library on both sides of every comparison


def have_pybase64() -> bool:
    """Whether pybase64 is importable here (False in a no-speedups :func:`run_child`)."""
    try:
        import pybase64  # noqa: F401
    except ImportError:
        return False
    return True


def b64_library() -> str:
    return "pybase64" if have_pybase64() else "binascii"


def b64decode_fn() -> Callable[[str], bytes]:
    """The fastest decode call of the library dashscope_rt uses in this process.

    With pybase64 that is ``b64decode(s, validate=True)`` (its SIMD path, faster than the
    lenient default); without it ``binascii.a2b_base64`` (``base64.b64decode`` wraps it).
    """
    if have_pybase64():
        import pybase64

        def decode(s: str) -> bytes:
            return pybase64.b64decode(s, validate=True)

        return decode
    import binascii

    return binascii.a2b_base64


def b64encode_fn() -> Callable[[bytes], str]:
    """The fastest bytes -> str encode of the library dashscope_rt uses in this process."""
    if have_pybase64():
        import pybase64

        return pybase64.b64encode_as_string
    import binascii

    def encode(b: bytes) -> str:
        return binascii.b2a_base64(b, newline=False).decode("ascii")

    return encode


# ---------------------------------------------------------------------------------------------
# the no-speedups side, in a child process

_CHILD = """
import runpy, sys
if {hide!r}:
    sys.modules["pybase64"] = None  # `import pybase64` raises ImportError from here on
sys.path[:0] = [{here!r}, {root!r}]
sys.argv = [{script!r}, *{args!r}]
runpy.run_path({script!r}, run_name="__main__")
"""


def run_child(
    script: str, args: Sequence[str], *, speedups: bool = True, timeout: float = 1800
) -> Any:
    """Run ``bench/<script> <args>`` in a fresh process; return the JSON it printed.

    ``speedups=False`` runs it where ``import pybase64`` fails, as without the ``speedups``
    extra. The script prints its result with :func:`emit_json`; its other output goes to our
    stderr.
    """
    path = str(HERE / script)
    code = _CHILD.format(
        hide=not speedups, here=str(HERE), root=str(ROOT), script=path, args=list(args)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            res = json.loads(line[len(_MARK) :])
            if not speedups and res.get("b64_library") == "pybase64":
                raise RuntimeError(f"{script}: the no-speedups child still imported pybase64")
            return res
    raise RuntimeError(f"{script} {' '.join(args)} gave no result (exit {proc.returncode})")


def bench_main(
    doc: str | None, run: Callable[..., Any], show: Callable[[Any], None], **options: float
) -> None:
    """A bench's command line: ``--NAME value`` for each option (typed by its default) passed to
    ``run``; the result is printed by ``show``, or with ``--json`` as :func:`emit_json` does."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    for name, default in options.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = vars(parser.parse_args())
    as_json = args.pop("json")
    result = run(**args)
    if as_json:
        emit_json(result)
    else:
        show(result)


def emit_json(result: Any) -> None:
    """Print ``result`` as the one machine-readable line :func:`run_child` reads."""
    print(_MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# a server in a child process


class ChildServer:
    """A server run as ``cmd`` in a child process that prints ``{"port": ...}`` first, then
    answers one JSON line per command line on stdin (``quit`` ends it)."""

    def __init__(self, cmd: list[str], what: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {what} process did not start")
        self.info: dict[str, Any] = json.loads(line)
        self.port = int(self.info["port"])
        self.url = f"ws://127.0.0.1:{self.port}/api-ws/v1/realtime"
        self._lock = threading.Lock()

    def ask(self, cmd: str) -> Any:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def cpu_seconds(self) -> float:
        """CPU the server has used so far (every thread, user and system)."""
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
