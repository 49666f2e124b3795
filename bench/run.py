"""Run every benchmark in one go, print one table, write ``bench/results/bench-<time>.json``.

``python bench/run.py [--quick] [--sessions N]`` (peers come with ``pip install -e .[bench]``).
Sections: decode+dispatch against the floor and the peers, loopback latency, uplink CPU per
chunk, resampler speed and quality, N concurrent sessions, echo cancellation (ERLE, false
barge-ins, double talk, CPU per 10 ms frame) against a FIFO prototype and LiveKit's APM.
Ratios are measured in this run, on this machine; nothing here asserts a time.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

__all__ = ["main"]


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
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            d: _version(d)
            for d in (
                "dashscope-rt",
                "dashscope",
                "openai",
                "websocket-client",
                "websockets",
                "soxr",
                "numpy",
                "scipy",
                "pywebrtc-audio",
                "livekit",
            )
        },
    }


Row = tuple[str, str, str, str, str, str, str]


def _fmt_ok(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _rows(res: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    dec = res.get("decode")
    if dec:
        d = dec["decoders"]
        ours = d["dashscope_rt decode+dispatch"]
        for name, target in (
            ("floor", "<= 0.8x"),
            ("dashscope (official) +b64 +socket UTF-8 check", ""),
            ("dashscope (official) +b64", ""),
            ("dashscope (official)", ""),
            ("openai parse_event +b64", "<= 0.3x"),
            ("openai parse_event", ""),
        ):
            if name not in d:
                continue
            ratio = dec["ours_vs"][name]
            ok = None if not target else ratio <= float(target[3:-1])
            rows.append(
                (
                    "decode+dispatch",
                    "us/event (time ratio)",
                    f"{ours['us_per_event']:.2f}",
                    name,
                    f"{d[name]['us_per_event']:.2f}",
                    f"{ratio:.2f}x",
                    f"{target} {_fmt_ok(ok)}".strip(),
                )
            )
        if "floor_bytes" in d and "dashscope_rt decode+dispatch (bytes)" in d:
            mine = d["dashscope_rt decode+dispatch (bytes)"]["us_per_event"]
            fb = d["floor_bytes"]["us_per_event"]
            rows.append(
                (
                    "decode+dispatch",
                    "us/event from bytes (time ratio)",
                    f"{mine:.2f}",
                    "floor from bytes",
                    f"{fb:.2f}",
                    f"{mine / fb:.2f}x",
                    f"<= 0.8x {_fmt_ok(mine / fb <= 0.8)}",
                )
            )
        rows.append(
            (
                "decode+dispatch",
                "events/s",
                f"{ours['events_per_s']:,}",
                "decode only",
                f"{d['dashscope_rt']['events_per_s']:,}",
                "",
                "",
            )
        )
    lb = res.get("loopback")
    if lb:
        mine = lb["clients"][0]["wire_to_handler"]
        theirs = lb["clients"][1]["wire_to_handler"] if len(lb["clients"]) > 1 else None
        for key, bound in (("p50_ms", 0.5), ("p99_ms", 2.0)):
            peer = theirs.get(key) if theirs else None
            rows.append(
                (
                    "loopback latency",
                    f"{key[:3]} ms, sim send -> handler",
                    f"{mine[key]:.3f}",
                    "dashscope (official)",
                    f"{peer:.3f}" if peer is not None else "n/a",
                    f"{mine[key] / peer:.2f}x" if peer else "",
                    f"< {bound} {_fmt_ok(mine[key] < bound)}",
                )
            )
        rr = lb["clients"][0]["read_to_handler"]
        rows.append(
            (
                "loopback latency",
                "p50/p99 ms, socket read -> handler",
                f"{rr['p50_ms']:.3f}/{rr['p99_ms']:.3f}",
                "",
                "",
                "",
                "",
            )
        )
    up = res.get("uplink")
    if up:
        c = up["cpu_us_per_chunk"]
        official = c.get("dashscope (official) b64 str")
        for name, limit in (
            ("dashscope_rt 48k stereo float32", 40.0),
            ("dashscope_rt 16k PCM16 bytes", None),
        ):
            rows.append(
                (
                    "uplink",
                    "CPU us / 100 ms chunk" + (" (48k st f32)" if limit else " (16k bytes)"),
                    f"{c[name]:.1f}",
                    "dashscope (official), b64 given",
                    f"{official:.1f}" if official else "n/a",
                    f"{c[name] / official:.2f}x" if official else "",
                    f"<= {limit:g} {_fmt_ok(c[name] <= limit)}" if limit else "",
                )
            )
        paced = up.get("cpu_us_per_chunk_paced") or {}
        official_paced = paced.get("dashscope (official) b64 str")
        for name, label in (
            ("dashscope_rt 48k stereo float32", " (48k st f32)"),
            ("dashscope_rt 16k PCM16 bytes", " (16k bytes)"),
            ("pacing loop alone (baseline)", ": the sleep loop alone"),
        ):
            if name not in paced:
                continue
            peer_row = official_paced is not None and not name.startswith("pacing")
            rows.append(
                (
                    "uplink",
                    f"same, paced 1 chunk/{up['paced_every_s'] * 1000:g} ms" + label,
                    f"{paced[name]:.1f}",
                    "dashscope (official), b64 given" if peer_row else "",
                    f"{official_paced:.1f}" if peer_row else "",
                    f"{paced[name] / official_paced:.2f}x" if peer_row and official_paced else "",
                    "",
                )
            )
    rs = res.get("resampler")
    if rs:
        case = rs["cases"][0]
        r = case["results"]
        conv = r.get("AudioConverter (soxr stream, HQ)")
        scipy = r.get("scipy resample_poly per chunk")
        if conv:
            rows.append(
                (
                    "resampler",
                    "x real time (48k st f32 -> 16k)",
                    f"{conv['x_realtime']:.0f}",
                    "scipy resample_poly per chunk",
                    f"{scipy['x_realtime']:.0f}" if scipy else "n/a",
                    f"{conv['x_realtime'] / scipy['x_realtime']:.2f}x faster" if scipy else "",
                    "",
                )
            )
            rows.append(
                (
                    "resampler",
                    "SNR dB of a 1 kHz sine",
                    f"{conv['snr_db']:.1f}",
                    "scipy resample_poly per chunk",
                    f"{scipy['snr_db']:.1f}" if scipy else "n/a",
                    "",
                    "",
                )
            )
    sc = res.get("scale")
    if sc:
        rows.append(
            (
                "scale",
                f"RSS MB per session ({sc['sessions']} sessions)",
                f"{sc['rss_per_session_mb']:.3f}",
                "",
                "",
                "",
                f"<= 2 {_fmt_ok(sc['rss_per_session_mb'] <= 2)}",
            )
        )
        rows.append(
            (
                "scale",
                "process CPU % of one core",
                f"{sc['process_cpu_pct_of_one_core']:.1f}",
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            (
                "scale",
                "replies intact (no lost/reordered audio)",
                f"{sc['sessions_matched'] - sc['downlink_mismatch']}/{sc['sessions']}",
                "uplink intact",
                f"{sc['sessions_matched'] - sc['uplink_mismatch']}/{sc['sessions']}",
                "",
                f"all {_fmt_ok(sc['intact'])}",
            )
        )
    rows += _aec_rows(res.get("aec"))
    return rows


def _aec_rows(aec: dict[str, Any] | None) -> list[Row]:
    if not aec:
        return []
    rows: list[Row] = []
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


def render(res: dict[str, Any]) -> str:
    """The result table as Markdown (readable in a terminal, pasteable in the README)."""
    m = res["machine"]
    head = (
        f"dashscope_rt {m['versions'].get('dashscope-rt')} - {m['cpu']} ({m['cores']} cores), "
        f"Python {m['python']}, {res['started']}, {res['wall_s']:.0f} s"
    )
    cols = ("section", "measure", "dashscope_rt", "peer", "peer value", "ours/peer", "target")
    rows = [cols, *_rows(res)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head, ""]
    for k, r in enumerate(rows):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def result_path(output: Path, started: datetime.datetime) -> Path:
    """``--output``: a ``.json`` file as given, else a folder for ``bench-<time>.json``."""
    if output.suffix.lower() == ".json" and not output.is_dir():
        return output
    return output / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dashscope_rt benchmarks against the peers")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 1 minute)")
    parser.add_argument("--sessions", type=int, default=200, help="sessions for the scale run")
    parser.add_argument("--only", nargs="*", default=None, help="run only these sections")
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "results",
        help="a .json file to write, or a folder for bench-<time>.json (default bench/results)",
    )
    args = parser.parse_args(argv)

    from bench_aec import run_aec_bench
    from bench_loopback import run_loopback_bench
    from bench_peers import run_peers_bench
    from bench_resampler import run_resampler_bench
    from bench_scale import run_scale_bench
    from bench_uplink import run_uplink_bench

    q = args.quick
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "decode": lambda: run_peers_bench(turns=10 if q else 20, repeat=3 if q else 7),
        "loopback": lambda: run_loopback_bench(turns=1 if q else 3),
        "uplink": lambda: run_uplink_bench(chunks=1000 if q else 3000),
        "resampler": lambda: run_resampler_bench(seconds=3.0 if q else 10.0, repeats=2 if q else 5),
        "scale": lambda: run_scale_bench(sessions=args.sessions, seconds=2.0 if q else 3.0),
        "aec": lambda: run_aec_bench(quick=q),
    }
    started = datetime.datetime.now(datetime.timezone.utc)
    res: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": q,
        "machine": machine_info(),
    }
    t0 = time.monotonic()
    for name, fn in sections.items():
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
