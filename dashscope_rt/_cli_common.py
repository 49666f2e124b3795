"""Shared pieces of the ``dashscope-rt`` commands: exit codes, error messages, live display."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import errors
from ._endpoint import is_loopback

__all__ = [
    "EXIT_AUTH",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING_EXTRA",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_USAGE",
    "TESTING_EXTRA_HINT",
    "CliError",
    "Console",
    "explain",
    "format_metrics",
    "format_usage",
    "level_dbfs",
    "meter",
    "non_negative",
    "quiet_broken_pipe",
    "read_wav_arg",
    "region_label",
    "safe_streams",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NETWORK = 4
EXIT_MISSING_EXTRA = 5
EXIT_INTERRUPTED = 130

TESTING_EXTRA_HINT = "pip install 'dashscope-rt[testing]'"

_REGIONS = {"cn": "Beijing (--region cn)", "intl": "Singapore (--region intl)"}


class CliError(Exception):
    """An error the command reports in one line and turns into an exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def safe_streams() -> None:
    """Let stdout/stderr replace what their encoding cannot show (→ █ “ on a cp1252 console)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            "→█“”·×…".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="replace")


def region_label(region: str | None, url: str | None = None) -> str:
    """``Beijing (--region cn)``, or the host of a custom URL."""
    if url:
        return urllib.parse.urlsplit(url).netloc or url
    return _REGIONS.get(region or "cn", repr(region))


def explain(exc: BaseException, *, region: str | None, url: str | None) -> CliError:
    """Turn an SDK exception into a message the user can act on, with an exit status."""
    where = region_label(region, url)
    if isinstance(exc, errors.AuthenticationError):
        other = "intl" if (region or "cn") == "cn" else "cn"
        if is_loopback(url):
            hint = (
                "a local simulator wants the key it printed when it started (default sk-test) "
                "in DASHSCOPE_API_KEY, unless it runs with --any-key"
            )
        elif url:
            hint = "check the key (DASHSCOPE_API_KEY or `dashscope-rt config list`)"
        else:
            hint = f"keys are region-bound: for a key of the other region add --region {other}"
        return CliError(
            f"the API key was rejected (HTTP {exc.status}) by {where}; {hint}", EXIT_AUTH
        )
    if isinstance(exc, errors.NameResolutionError):
        return CliError(
            f"cannot resolve the host of {where}: no network, DNS not working, or a mistyped "
            "host name",
            EXIT_NETWORK,
        )
    if isinstance(exc, errors.ConnectionRefused):
        return CliError(
            f"connection refused by {where}: is the server running? "
            "(for a local simulator: dashscope-rt simulate)",
            EXIT_NETWORK,
        )
    if isinstance(exc, errors.ConnectTimeout):
        return CliError(
            f"no answer from {where} in time: check the network, a proxy or a firewall",
            EXIT_NETWORK,
        )
    if isinstance(exc, errors.TLSError):
        return CliError(f"TLS failed with {where}: {exc}", EXIT_NETWORK)
    if isinstance(exc, errors.HandshakeError):
        return CliError(_handshake_message(exc, where), EXIT_ERROR)
    if isinstance(exc, (errors.ConnectError, errors.ConnectionClosed)):
        return CliError(f"connection problem with {where}: {exc}", EXIT_NETWORK)
    if isinstance(exc, errors.VoiceNotSupported):
        return CliError(
            f"{exc.message} (choose another with --voice NAME, or /voice NAME at the prompt)",
            EXIT_USAGE,
        )
    if isinstance(exc, errors.ServerError):
        return CliError(f"the service answered with an error: {exc}", EXIT_ERROR)
    if isinstance(exc, errors.InvalidInput):
        return CliError(str(exc), EXIT_USAGE)
    if isinstance(exc, errors.AudioDeviceError):
        return CliError(
            f"{exc}. Use --wav FILE instead of --mic, and --out FILE instead of --play",
            EXIT_MISSING_EXTRA,
        )
    if isinstance(exc, errors.Timeout):
        return CliError(f"timed out: {exc}", EXIT_ERROR)
    if isinstance(exc, OSError):
        return CliError(str(exc), EXIT_ERROR)
    return CliError(f"{type(exc).__name__}: {exc}", EXIT_ERROR)


def _handshake_message(exc: errors.HandshakeError, where: str) -> str:
    status = exc.status
    if status == 404:
        hint = (
            "no realtime endpoint at that path: check the URL "
            "(the service's is wss://HOST/api-ws/v1/realtime; a simulator prints its own)"
        )
    elif 500 <= status < 600:
        hint = "the service had a problem; try again later"
    elif status == 429:
        hint = "too many requests or connections; wait and try again"
    else:
        hint = (exc.body or "").strip()[:200] or "see the service's documentation for the status"
    return f"{where} answered the WebSocket handshake with HTTP {status}: {hint}"


def non_negative(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (0 = no pacing), got {text!r}")
    return value


def read_wav_arg(path: Path) -> Any:
    """The WAV file a command was given; a missing or bad file is a usage error."""
    from .audio import read_wav

    if not path.is_file():
        raise CliError(f"no such file: {path}", EXIT_USAGE)
    try:
        return read_wav(path)
    except errors.RealtimeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}", EXIT_USAGE) from None


def level_dbfs(pcm16: bytes) -> float:
    """RMS level of PCM16LE audio in dBFS (-96 for silence)."""
    n = len(pcm16) // 2
    if n == 0:
        return -96.0
    x = np.frombuffer(pcm16, dtype="<i2", count=n).astype(np.float64)
    rms = math.sqrt(float(np.mean(x * x))) / 32768.0
    return max(-96.0, 20.0 * math.log10(rms)) if rms > 0 else -96.0


def meter(db: float, width: int = 24) -> str:
    """A bar for a level between -60 and 0 dBFS."""
    frac = min(1.0, max(0.0, (db + 60.0) / 60.0))
    full = round(frac * width)
    return "█" * full + "·" * (width - full)


def format_usage(usage: Any) -> str:
    """``123 tokens (in 65: 30 text + 35 audio · out 58: 13 text + 45 audio)``."""
    if usage is None:
        return "no usage reported"

    def detail(total: int | None, parts: Any) -> str:
        bits = [
            f"{v} {k.replace('_tokens', '')}"
            for k, v in dict(parts or {}).items()
            if isinstance(v, int) and v
        ]
        return f"{total}" + (f": {' + '.join(bits)}" if bits else "")

    return (
        f"{usage.total_tokens} tokens (in {detail(usage.input_tokens, usage.input_tokens_details)}"
        f" · out {detail(usage.output_tokens, usage.output_tokens_details)})"
    )


def format_metrics(metrics: Any) -> str:
    """The latency figures of one turn that are known, joined with ``·``."""
    parts: list[str] = []
    felt = metrics.speech_end_to_first_audio_ms
    felt_label = "speech end → first audio"
    if felt is None:
        felt, felt_label = metrics.committed_to_first_audio_ms, "commit → first audio"
    for label, value in (
        (felt_label, felt),
        ("response.created → first text", metrics.created_to_first_text_ms),
        ("whole response", metrics.total_ms),
    ):
        if value is not None:
            parts.append(f"{label} {value:.0f} ms")
    return " · ".join(parts) if parts else "no timings"


class Console:
    """Thread-safe printing with one rewritable status line (the level meter) on a terminal.

    Off a terminal the status line is not shown, so logs and pipes get whole lines only;
    ``$NO_COLOR`` turns the colours off.
    """

    def __init__(self, out: TextIO | None = None, *, color: bool | None = None) -> None:
        if out is None:
            safe_streams()
        self.out = out if out is not None else sys.stdout
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        no_color = bool(os.environ.get("NO_COLOR"))  # https://no-color.org
        self.color = (self.tty and not no_color) if color is None else color
        self._lock = threading.RLock()
        self._status = ""
        self._partial = False
        self.gone = False

    def _clear_status(self) -> None:
        if self._status:
            self._put("\r" + " " * len(self._status) + "\r")
            self._status = ""

    def _put(self, text: str, *, flush: bool = False) -> None:
        """Write, and stop writing for good once the reader went away (``| head``)."""
        if self.gone:
            return
        try:
            self.out.write(text)
            if flush:
                self.out.flush()
        except (BrokenPipeError, ValueError):  # ValueError: written after close
            self.gone = True
            if self.out is sys.stdout:
                quiet_broken_pipe()

    def status(self, text: str) -> None:
        """Show ``text`` on the rewritable line (terminals only)."""
        if not self.tty:
            return
        with self._lock:
            if self._partial:
                return
            self._clear_status()
            self._status = text
            self._put(text, flush=True)

    def line(self, text: str = "") -> None:
        """Print a whole line (ending a partial line first)."""
        with self._lock:
            self._clear_status()
            if self._partial:
                self._put("\n")
                self._partial = False
            self._put(text + "\n", flush=True)

    def write(self, text: str) -> None:
        """Append to a line that stays open (streaming text)."""
        with self._lock:
            self._clear_status()
            self._put(text, flush=True)
            self._partial = True

    def stream(self, prefix: str, text: str) -> None:
        """Append ``text`` to the open line, opening it with ``prefix`` first if needed."""
        with self._lock:
            if not self._partial:
                self.write(prefix)
            self.write(text)

    def end_line(self) -> None:
        """Close a line opened by :meth:`write`."""
        with self._lock:
            if self._partial:
                self._put("\n", flush=True)
                self._partial = False

    def dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.color else text

    def error(self, text: str) -> None:
        """One line on stderr."""
        with self._lock:
            self._clear_status()
            if self._partial:
                self._put("\n")
                self._partial = False
            self._put("", flush=True)
            with contextlib.suppress(BrokenPipeError, ValueError):
                print(f"dashscope-rt: error: {text}", file=sys.stderr, flush=True)


def quiet_broken_pipe() -> None:
    """After the reader of stdout went away: send further output to /dev/null, so neither our
    writes nor the interpreter's final flush raise ``BrokenPipeError``."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
