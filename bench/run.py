"""Run every benchmark, print every ratio of issue #17 side by side in one table, write the JSON.

``python bench/run.py [--quick] [--sessions 100 200 300 400] [--only decode e2e ...]`` (peers come
with ``pip install -e .[bench]``). Each section runs in fresh child processes (:mod:`benchlib`):
with the ``speedups`` extra as installed and, where base64 matters, again with pybase64 hidden,
every floor and peer using the same base64 library as dashscope_rt on that side. Values are CPU
time (import time and latency excepted: those are what a user waits), medians with the
interquartile range over repeats; ratios are ours / theirs, paired per repeat (below 1:
dashscope_rt costs less). Nothing here asserts a time: the targets are printed, not enforced.
Writes ``bench/results/bench-<time>.json`` with the CPU and package versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import HERE, fmt_stat, have_pybase64, run_child

__all__ = ["main", "render"]

Row = tuple[str, str, str, str, str, str, str, str]
COLUMNS: Row = (
    *("section", "measure", "base64", "dashscope_rt"),
    *("peer", "peer value", "ours/peer", "target"),
)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    dists = (
        *("dashscope-rt", "dashscope", "openai", "websocket-client", "websockets", "soxr"),
        *("numpy", "scipy", "samplerate", "pybase64", "pywebrtc-audio", "livekit"),
    )
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in dists},
    }


def _target(ratio: dict[str, Any] | None, limit: float | None) -> str:
    if limit is None or not ratio or not ratio.get("n"):
        return ""
    return f"<= {limit:g}x {'yes' if ratio['median'] <= limit else 'NO'}"


# ---------------------------------------------------------------------------------------------
# rows per section


def _decode_rows(side: dict[str, Any]) -> list[Row]:
    lib, us, ratios = side["b64_library"], side["us_per_event"], side["ratios"]
    rows: list[Row] = []
    for ours, peer, label, limit in (
        ("dashscope_rt decode+dispatch (bytes)", "floor (bytes)", "decode+dispatch, bytes in", 1.0),
        ("dashscope_rt decode (bytes)", "floor (bytes)", "decode only, bytes in", None),
        ("dashscope_rt decode+dispatch", "floor", "decode+dispatch, str in", 1.0),
        ("dashscope_rt decode+dispatch", "dashscope (official) +b64", "decode+dispatch", None),
        ("dashscope_rt decode+dispatch", "openai parse_event +b64", "decode+dispatch", None),
    ):
        r = ratios.get(f"{ours} / {peer}")
        if r is None:
            continue
        rows.append(
            (
                "decode (1 thread)",
                f"{label}: CPU us/event",
                lib,
                fmt_stat(us[ours]),
                peer,
                fmt_stat(us[peer]),
                fmt_stat(r, unit="x"),
                _target(r, limit),
            )
        )
    return rows


def _e2e_rows(side: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for mode, m in side["modes"].items():
        us = m["us_per_event"]
        for peer in ("plain websocket-client loop", "dashscope (official)"):
            r = m["ratios"].get(f"dashscope_rt / {peer}")
            if r is None:
                continue
            rows.append(
                (
                    "reader->handler (socket)",
                    f"process CPU us/event, {mode}",
                    side["b64_library"],
                    fmt_stat(us["dashscope_rt"], ".1f"),
                    peer,
                    fmt_stat(us[peer], ".1f"),
                    fmt_stat(r, unit="x"),
                    "",
                )
            )
    return rows


def _uplink_rows(side: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, per_input in side["inputs"].items():
        for mode, m in per_input.items():
            if mode == "server_received":
                continue
            net = m["net_us_per_chunk"]
            for peer, limit in (("plain", 1.5), ("dashscope (official)", None)):
                r = m["ratios"].get(f"dashscope_rt / {peer}")
                if r is None:
                    continue
                rows.append(
                    (
                        "uplink (socket)",
                        f"CPU us/100 ms chunk, {name}, {mode}",
                        side["b64_library"],
                        fmt_stat(net["dashscope_rt"], ".1f"),
                        peer + (" pipeline" if peer == "plain" else ""),
                        fmt_stat(net[peer], ".1f"),
                        fmt_stat(r, unit="x"),
                        _target(r, limit),
                    )
                )
    return rows


def _resampler_rows(res: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ours = "AudioConverter (soxr HQ)"
    for label, case in res["cases"].items():
        cpu, snr = case["cpu_us_per_chunk"], case["snr_db"]
        for peer in cpu:
            if peer == ours:
                continue
            rows.append(
                (
                    "resampler (streaming)",
                    f"CPU us/chunk, {label}; SNR dB ours/peer {snr[ours]:.0f}/{snr[peer]:.0f}",
                    "-",
                    fmt_stat(cpu[ours], ".1f"),
                    peer,
                    fmt_stat(cpu[peer], ".1f"),
                    fmt_stat(case["ratios"][f"{ours} / {peer}"], unit="x"),
                    "",
                )
            )
    return rows


def _capacity_rows(res: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for p in res["points"]:
        machine = p["machine_busy"] * res["cores"]
        rows.append(
            (
                "capacity",
                f"{p['sessions']} sessions: client/server/machine cores, late, p50/p99 ms, RSS",
                res["b64_library"],
                f"{p['client_cores']:.2f}/{p['server_cores']:.2f}/{machine:.2f}, "
                f"{p['late_chunks']}, {p['handler_p50_ms']:.1f}/{p['handler_p99_ms']:.1f}, "
                f"{p['rss_mb']:.0f} MB",
                "",
                "",
                "",
                ("ok" if p["ok"] else "FAILS") + ("" if p["intact"] else " (not intact)"),
            )
        )
    held = res["max_sessions_ok"]
    rows.append(
        (
            "capacity",
            f"sessions held ({res['input']}, real time); first to run out",
            res["b64_library"],
            str(held),
            str(res.get("first_to_run_out") or "nothing, up to the largest N tried"),
            "",
            "",
            f">= 400 {'yes' if held >= 400 else 'NO'}",
        )
    )
    return rows


def _memory_rows(res: dict[str, Any]) -> list[Row]:
    mem, imp = res["memory"], res["imports"]
    heavy = ", ".join(f"{k} {v:g}" for k, v in imp["heavy_modules_imported_ms"].items())
    return [
        (
            "memory",
            f"RSS KB per turn, defaults ({mem['turns']} turns)",
            "-",
            f"{mem['kb_per_turn']:.2f}",
            f"history {mem['history_entries']} entries",
            "",
            "",
            "",
        ),
        (
            "import",
            "import dashscope_rt, ms (wall); heavy modules it imports, ms",
            "-",
            fmt_stat(imp["import_ms"], ".0f"),
            heavy,
            "",
            "",
            "",
        ),
    ]


def _loopback_rows(res: dict[str, Any]) -> list[Row]:
    mine = res["clients"][0]["wire_to_handler"]
    theirs = res["clients"][1]["wire_to_handler"] if len(res["clients"]) > 1 else {}
    rows: list[Row] = []
    for key in ("p50_ms", "p99_ms"):
        peer = theirs.get(key)
        rows.append(
            (
                "loopback latency",
                f"{key[:3]} ms (wall), simulator send -> handler",
                "",
                f"{mine[key]:.3f}",
                "dashscope (official)",
                f"{peer:.3f}" if peer is not None else "n/a",
                f"{mine[key] / peer:.2f}x" if peer else "",
                "",
            )
        )
    return rows


def _aec_rows7(aec: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if not aec:
        return []
    rows: list[tuple[str, ...]] = []
    erle = aec["erle"]
    ours = erle["dashscope_rt | speaker output"]
    for mode in ("speaker output", "replies only"):
        mine = erle[f"dashscope_rt | {mode}"]
        for peer in ("FIFO + soxr stream", "livekit APM"):
            theirs = erle.get(f"{peer} | {mode}")
            if theirs is None:
                continue
            for key, label in (
                ("erle_db", "ERLE dB"),
                ("erle_at_reply_start_db", "at reply start"),
            ):
                m, t = mine[key], theirs[key]
                rows.append(
                    (
                        "echo cancel",
                        f"{label}, fed {mode}, median (min)",
                        f"{m['median']} ({m['min']})",
                        peer,
                        f"{t['median']} ({t['min']})",
                        f"{m['median'] - t['median']:+.1f} dB",
                        f">= 25 {_fmt_ok(m['min'] >= 25)}" if key == "erle_db" else "",
                    )
                )
    raw = erle["raw_vad_starts"]
    socket = aec["false_barge_ins_over_socket"]
    rows.append(
        (
            "echo cancel",
            "false barge-ins (sim VAD, 4 rooms / socket)",
            f"{sum(ours['vad_starts'])} / {socket['with dashscope_rt']}",
            "no cancellation",
            f"{sum(raw)} / {socket['without cancellation']}",
            "",
            f"0 {_fmt_ok(sum(ours['vad_starts']) == 0 and socket['with dashscope_rt'] == 0)}",
        )
    )
    for label, dt in aec["double_talk"].items():
        mine, gate = dt["dashscope_rt"], dt["half-duplex gate"]
        heard = mine["vad_start_after_ms"]
        ok = heard is not None and heard <= 300 and abs(mine["near_level_change_db"]) <= 6
        rows.append(
            (
                "echo cancel",
                f"double talk ({label}): VAD after ms, level dB",
                f"{heard}, {mine['near_level_change_db']:+.1f}",
                "half-duplex gate",
                f"{gate['vad_start_after_ms']}, {gate['near_level_change_db']:+.0f}",
                "",
                f"<=300, +-6 {_fmt_ok(ok)}",
            )
        )
    cpu = aec["cpu_us_per_frame"]
    mine_cpu = cpu["dashscope_rt"]
    for peer in ("livekit APM", "pywebrtc-audio engine alone (reference pre-resampled)"):
        if peer in cpu:
            p = cpu[peer]
            rows.append(
                (
                    "echo cancel",
                    "CPU us / 10 ms frame, median (min-max)",
                    f"{mine_cpu['median']} ({mine_cpu['min']}-{mine_cpu['max']})",
                    peer,
                    f"{p['median']} ({p['min']}-{p['max']})",
                    f"{mine_cpu['median'] / p['median']:.2f}x",
                    "",
                )
            )
    return rows


def _fmt_ok(ok: bool) -> str:
    return "yes" if ok else "NO"


def _aec_rows(res: dict[str, Any]) -> list[Row]:
    """The echo canceller's rows (#14), with the base64 column (not involved: "-")."""
    return [(r[0], r[1], "-", *r[2:]) for r in _aec_rows7(res)]  # type: ignore[misc]


RENDER: dict[str, Callable[[Any], list[Row]]] = {
    "decode": _decode_rows,
    "e2e": _e2e_rows,
    "uplink": _uplink_rows,
    "resampler": _resampler_rows,
    "capacity": _capacity_rows,
    "memory": _memory_rows,
    "loopback": _loopback_rows,
    "aec": _aec_rows,
}


def render(res: dict[str, Any]) -> str:
    """The result table as Markdown (readable in a terminal, pasteable in the README)."""
    m = res["machine"]
    head = (
        f"dashscope_rt {m['versions'].get('dashscope-rt')} - {m['cpu']} ({m['cores']} cores, "
        f"load {m['load_average'][0]:.1f} at start), Python {m['python']}, {res['started']}, "
        f"{res['wall_s']:.0f} s. Cells: median (q1-q3)."
    )
    rows: list[Row] = [COLUMNS]
    for name, fn in RENDER.items():
        for side in res.get(name) or []:
            rows.extend(fn(side))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [head, ""]
    for k, r in enumerate(rows):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _sections(args: argparse.Namespace) -> dict[str, Callable[[], list[Any]]]:
    q = args.quick
    sides = [True, False] if have_pybase64() else [False]

    def both(script: str, *argv: str) -> Callable[[], list[Any]]:
        return lambda: [run_child(script, ["--json", *argv], speedups=s) for s in sides]

    def one(script: str, *argv: str) -> Callable[[], list[Any]]:
        return lambda: [run_child(script, ["--json", *argv], speedups=sides[0])]

    def loopback() -> list[Any]:
        from bench_loopback import run_loopback_bench

        return [run_loopback_bench(turns=1 if q else 3)]

    def aec() -> list[Any]:
        from bench_aec import run_aec_bench

        return [run_aec_bench(quick=q)]

    def pick(quick: int, full: int) -> str:
        return str(quick if q else full)

    sessions = [str(n) for n in args.sessions]
    return {
        "decode": both("bench_decode.py", "--turns", pick(10, 20), "--repeat", pick(9, 15)),
        "e2e": both("bench_e2e.py", "--turns", pick(5, 10), "--repeat", pick(3, 7)),
        "uplink": both("bench_uplink.py", "--chunks", pick(150, 300), "--repeat", pick(3, 5)),
        "resampler": one("bench_resampler.py", "--seconds", pick(3, 10), "--repeats", pick(3, 5)),
        "capacity": one("bench_capacity.py", "--window", pick(6, 12), "--sessions", *sessions),
        "memory": one("bench_memory.py", "--turns", pick(500, 2000)),
        "loopback": loopback,
        "aec": aec,
    }


def result_path(output: Path, started: datetime.datetime) -> Path:
    """``--output``: a ``.json`` file as given, else a folder for ``bench-<time>.json``."""
    if output.suffix.lower() == ".json" and not output.is_dir():
        return output
    return output / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dashscope_rt benchmarks against the peers")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few minutes)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 200, 300, 400])
    parser.add_argument("--only", nargs="*", default=None, help="run only these sections")
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "results",
        help="a .json file to write, or a folder for bench-<time>.json (default bench/results)",
    )
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    res: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "machine": machine_info(),
    }
    t0 = time.monotonic()
    for name, fn in _sections(args).items():
        if args.only and name not in args.only:
            continue
        print(f"[{time.monotonic() - t0:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        t = time.monotonic()
        try:
            res[name] = fn()
        except Exception as exc:  # report the others; a broken section is in the JSON
            res[name] = None
            res.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"  {name} failed: {exc!r}", file=sys.stderr)
        res.setdefault("section_s", {})[name] = round(time.monotonic() - t, 1)
    res["wall_s"] = time.monotonic() - t0
    table = render(res)
    res["table"] = table
    print(table)
    out = result_path(args.output, started)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 1 if res.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
