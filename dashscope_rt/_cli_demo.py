"""``dashscope-rt demo``: one spoken turn against the embedded simulator (no key, no sound card)."""

from __future__ import annotations

import argparse
import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

from ._cli_common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MISSING_EXTRA,
    EXIT_OK,
    TESTING_EXTRA_HINT,
    CliError,
    Console,
    explain,
    format_metrics,
    format_usage,
    level_dbfs,
    meter,
    non_negative,
)
from ._cli_config import add_profile_argument, resolve

__all__ = ["DEFAULT_QUESTION", "add_parser", "cmd_demo"]

DEFAULT_MODEL = "qwen3-omni-flash-realtime"
DEFAULT_QUESTION = "Hello! What is the weather like in Hangzhou today?"
_ANSWER = "Hi, simulator here, so no real forecast: say it is sunny and mild by West Lake."
_CHUNK_MS = 100


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``demo``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="one spoken turn against the embedded simulator (no key, no sound card)",
        description="Start the embedded simulator, stream a few seconds of synthesized "
        "speech-like audio to it as a live session would, print the transcripts as they "
        "stream, save the spoken reply to a WAV file and print the turn's metrics. Needs "
        f"the testing extra ({TESTING_EXTRA_HINT}); no API key, no network, no sound card.",
    )
    p.add_argument("--out", default="reply.wav", help="where to save the reply (reply.wav)")
    p.add_argument("--model", help=f"model the simulator plays (default {DEFAULT_MODEL})")
    p.add_argument("--voice", help="voice (default: the model's)")
    p.add_argument("--question", default=DEFAULT_QUESTION, help="the words of the spoken turn")
    p.add_argument(
        "--speed",
        type=non_negative,
        default=2.0,
        help="stream audio both ways at N × real time; 0 = as fast as possible (default 2)",
    )
    add_profile_argument(p)
    p.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    con = Console()
    if importlib.util.find_spec("websockets") is None:
        con.error(
            "the demo runs a local simulator, which needs the 'websockets' package. "
            f"Install the testing extra: {TESTING_EXTRA_HINT}"
        )
        return EXIT_MISSING_EXTRA
    from .errors import RealtimeError

    try:
        return _run(args, con)
    except CliError as exc:
        con.error(exc.message)
        return exc.code
    except RealtimeError as exc:  # e.g. a voice or setting the model refuses, before connecting
        failure = explain(exc, region=None, url=None)
        con.error(failure.message)
        return failure.code
    except KeyboardInterrupt:
        con.line("Interrupted.")
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, con: Console) -> int:
    from .config import SessionConfig
    from .errors import RealtimeError
    from .reply import Reply
    from .session import Session
    from .testing import Simulator, speech_duration_s, synthesize

    settings = resolve(args)
    model = args.model or settings.model or DEFAULT_MODEL
    voice = args.voice or settings.voice
    speed = max(0.0, float(args.speed))
    out = Path(args.out)
    label = con.dim

    con.line(con.bold("dashscope-rt demo") + " — one spoken turn, offline, against the simulator")
    sim = Simulator(api_key="sk-local-demo", realtime=speed if speed > 0 else False)
    sim.script_transcripts([args.question])
    sim.script_replies([_ANSWER])
    done = threading.Event()
    stopped = threading.Event()
    replies: list[Reply] = []
    t0 = time.monotonic()

    with sim:
        con.line(f"{label('simulator')}  {sim.url}  (local test key; nothing leaves this machine)")
        config = SessionConfig(voice=voice) if voice else SessionConfig()
        session = Session(model, api_key=sim.api_key, url=sim.url, config=config)

        @session.on_speech_started
        def _started(ev: Any) -> None:
            con.line(f"{label('vad')}        speech started at {ev.audio_start_ms / 1000:.2f} s")

        @session.on_speech_stopped
        def _stopped(ev: Any) -> None:
            con.line(
                f"{label('vad')}        speech stopped at {ev.audio_end_ms / 1000:.2f} s"
                " → the server commits the turn and answers"
            )
            stopped.set()

        @session.on_input_transcript
        def _heard(ev: Any) -> None:
            con.line(f"{label('you said')}   “{ev.transcript}”")

        @session.on_transcript_delta
        def _delta(ev: Any) -> None:
            con.stream(f"{label('assistant')}  ", ev.delta)

        @session.on_response_done
        def _done(reply: Reply) -> None:
            con.end_line()
            replies.append(reply)
            done.set()

        try:
            started = time.monotonic()
            session.connect()
        except RealtimeError as exc:
            raise explain(exc, region=None, url=sim.url) from None
        try:
            ms = (time.monotonic() - started) * 1000
            con.line(
                f"{label('connected')}  {model}, session {session.session_id} "
                f"({ms:.0f} ms: handshake, session.created, session.update → session.updated)"
            )
            rate = session.input_rate
            pcm = synthesize(args.question, rate)
            pace = f"{speed:g}× real time" if speed > 0 else "as fast as possible"
            con.line(
                f"{label('you')}        streaming {speech_duration_s(args.question):.1f} s of "
                f"synthesized speech ({rate // 1000} kHz PCM16, {_CHUNK_MS} ms chunks, {pace})"
            )
            _stream(session, pcm, rate, speed, con)
            # The server VAD ends a turn only on silence it receives: keep the line "live".
            silence = b"\x00\x00" * (rate * _CHUNK_MS // 1000)
            deadline = time.monotonic() + 10.0
            sent_tail = 0
            while not stopped.is_set() and time.monotonic() < deadline:
                if speed > 0 or sent_tail < 30:  # unpaced: 3 s of silence is plenty
                    session.append_audio(silence)
                    sent_tail += 1
                stopped.wait(_CHUNK_MS / 1000 / speed if speed > 0 else 0.01)
            if not done.wait(30.0):
                raise CliError("no reply from the simulator within 30 s", EXIT_ERROR)
        except RealtimeError as exc:
            raise explain(exc, region=None, url=sim.url) from None
        finally:
            session.close()

    reply = replies[0]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(reply.to_wav())
    except OSError as exc:
        raise CliError(f"cannot save the reply to {out}: {exc}", EXIT_ERROR) from None
    con.line(
        f"{label('saved')}      {out} ({reply.duration:.1f} s, {reply.sample_rate // 1000} kHz "
        "mono 16-bit)"
    )
    con.line(f"{label('metrics')}    {format_metrics(reply.metrics)}")
    con.line("           (the simulator answers at once; the real service adds the model's time)")
    con.line(f"{label('usage')}      {format_usage(reply.usage)}")
    con.line(f"{label('elapsed')}    {time.monotonic() - t0:.1f} s")
    con.line()
    con.line("The simulator cannot understand speech (it was told this turn's words) and its")
    con.line("voice is synthesized babble. For the real model, set DASHSCOPE_API_KEY and run:")
    con.line(
        f"  dashscope-rt chat --wav {_sample_question()} --out answer.wav    (or --mic --play)"
    )
    return EXIT_OK


def _sample_question() -> str:
    """The bundled question's path from here (in a clone of the repository), else a placeholder."""
    bundled = Path("samples") / "assets" / "question.wav"
    return bundled.as_posix() if bundled.is_file() else "YOUR_QUESTION.wav"


def _stream(session: Any, pcm: bytes, rate: int, speed: float, con: Console) -> None:
    """Send ``pcm`` in 100 ms chunks, paced at ``speed`` × real time, with a level meter."""
    step = rate * _CHUNK_MS // 1000 * 2
    start = time.monotonic()
    sent_ms = 0.0
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        session.append_audio(chunk)
        sent_ms += len(chunk) / 2 / rate * 1000
        db = level_dbfs(chunk)
        con.status(f"  level {meter(db)} {db:6.1f} dBFS  {sent_ms / 1000:4.1f} s sent")
        if speed > 0:
            delay = start + sent_ms / 1000 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    con.status("")
