"""The ``dashscope-rt`` command. Subcommands register themselves in :func:`build_parser`."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from ._cli_common import (
    EXIT_MISSING_EXTRA,
    EXIT_OK,
    EXIT_USAGE,
    TESTING_EXTRA_HINT,
    non_negative,
    quiet_broken_pipe,
)
from ._version import __version__
from .limits import IDLE_TIMEOUT_S, MAX_SESSION_DURATION_S

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run the local protocol simulator",
        description="Serve a local stand-in of the Qwen-Omni-Realtime WebSocket API until Ctrl+C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument(
        "--api-key",
        default="sk-test",
        help="the key clients must send as 'Authorization: Bearer KEY' (default sk-test; "
        "a local test key, not your DashScope key)",
    )
    p.add_argument("--any-key", action="store_true", help="accept any key, or none")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        dest="speed",
        action="store_const",
        const=1.0,
        help="stream audio in real time",
    )
    pace.add_argument(
        "--fast", dest="speed", action="store_const", const=0.0, help="send replies at once"
    )
    pace.add_argument(
        "--speed", dest="speed", type=non_negative, help="N × real time (0 = at once)"
    )
    p.set_defaults(speed=1.0)
    p.add_argument(
        "--model-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reject unknown model names with an error and close (default on)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_S,
        metavar="S",
        help="default %(default)g",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=MAX_SESSION_DURATION_S,
        metavar="S",
        help="default %(default)g",
    )
    p.add_argument("--replay", metavar="LOG_DIR", help="replay a recorded session log instead")
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("websockets") is None:
        print(
            "dashscope-rt: error: the simulator needs the 'websockets' package. "
            f"Install the testing extra: {TESTING_EXTRA_HINT}",
            file=sys.stderr,
        )
        return EXIT_MISSING_EXTRA
    from .testing import Behaviour, Simulator

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    behaviour = Behaviour(
        speed=args.speed,
        check_model=args.model_check,
        idle_timeout_s=args.idle_timeout if args.idle_timeout > 0 else None,
        max_duration_s=args.max_duration if args.max_duration > 0 else None,
    )
    sim = Simulator(
        api_key=None if args.any_key else args.api_key,
        host=args.host,
        port=args.port,
        behaviour=behaviour,
        replay=args.replay,
        replay_realtime=args.speed > 0,
        record=False,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
    except OSError as exc:
        print(
            f"dashscope-rt simulate: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        print(f"Simulator listening on {sim.url}", flush=True)
        print(f"port: {sim.port}", flush=True)
        key = "any (not checked)" if args.any_key else args.api_key
        print(f"API key: {key}", flush=True)
        print(f"Connect to {sim.url}?model=qwen3-omni-flash-realtime  (Ctrl+C to stop)", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()
    print("Simulator stopped.", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; other commands (demo, chat, config) add their own subparsers here."""
    parser = argparse.ArgumentParser(
        prog="dashscope-rt", description="DashScope Qwen-Omni-Realtime tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import _cli_chat, _cli_config, _cli_demo, _cli_probe

    _cli_demo.add_parser(sub)
    _cli_chat.add_parser(sub)
    _cli_probe.add_parser(sub)
    _add_simulate(sub)
    _cli_config.add_parser(sub)
    _cli_config.add_profile_everywhere(parser, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dashscope-rt`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # --help writes too
        func: Command | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return EXIT_USAGE
        return func(args)
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
        quiet_broken_pipe()
        return EXIT_OK
