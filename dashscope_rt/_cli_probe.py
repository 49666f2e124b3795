"""``dashscope-rt probe``: a scripted conformance session; prints a report to paste in an issue."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ._cli_common import EXIT_AUTH, EXIT_ERROR, EXIT_OK, EXIT_USAGE, CliError, Console, explain
from ._cli_config import add_profile_argument, resolve

__all__ = ["add_parser", "cmd_probe"]

_DEFAULT_MODEL = "qwen3.5-omni-flash-realtime"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``probe``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "probe",
        help="check how the real service behaves; writes a report and a trace to share",
        description="Runs a scripted session against the service (handshake, a VAD turn, a "
        "manual turn, text, an image, a cancel, session.finish, and a second session with a "
        "voice no model has), then prints which simulator Behaviour settings the service "
        "matched. The report (report.md) and the redacted trace (trace.zip) are written to "
        "--out; paste the report into an issue and attach the zip. Uses a few requests of "
        "your quota.",
    )
    p.add_argument("--model", help=f"model (default {_DEFAULT_MODEL})")
    p.add_argument("--region", choices=("cn", "intl"), help="cn = Beijing, intl = Singapore")
    p.add_argument("--workspace", help="workspace id: connect to its own host (qwen3.8 needs one)")
    p.add_argument("--url", help="endpoint instead of the region's (e.g. a local simulator)")
    p.add_argument("--out", default="dashscope-rt-probe", help="output directory")
    p.add_argument(
        "--wav", metavar="FILE", help="your own spoken question instead of the bundled one"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per turn (default 30)")
    p.add_argument("-v", "--verbose", action="store_true", help="log the SDK's activity")
    add_profile_argument(p)
    p.set_defaults(func=cmd_probe)
    return p


def cmd_probe(args: argparse.Namespace) -> int:
    """Run ``probe``; returns the exit status."""
    from . import probe
    from .audio import read_wav
    from .errors import RealtimeError

    con = Console()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = resolve(args)
        if not settings.api_key:
            raise CliError(
                "no API key: set DASHSCOPE_API_KEY or save one with `dashscope-rt config add "
                "NAME` (the probe talks to the real service; it uses a few requests)",
                EXIT_AUTH,
            )
        speech = None
        if args.wav:
            if not Path(args.wav).is_file():
                raise CliError(f"no such file: {args.wav}", EXIT_USAGE)
            wav = read_wav(args.wav)
            speech = (wav.to_pcm16(), wav.sample_rate)
        try:
            report = probe.run(
                args.model or settings.model or _DEFAULT_MODEL,
                out_dir=args.out,
                api_key=settings.api_key,
                region=settings.region,
                workspace=settings.workspace,
                url=settings.url,
                speech=speech,
                timeout=args.timeout,
                progress=lambda line: con.line(con.dim(line)),
            )
        except RealtimeError as exc:
            raise explain(exc, region=settings.region, url=settings.url) from None
    except CliError as exc:
        con.error(exc.message)
        return exc.code
    con.line()
    con.line(report.markdown())
    out = Path(args.out)
    con.line(con.dim(f"written: {out / 'report.md'}, {out / 'trace.zip'} (attach it to the issue)"))
    handshake_failed = bool(report.steps) and report.steps[0].ok is False
    return EXIT_ERROR if handshake_failed else EXIT_OK
