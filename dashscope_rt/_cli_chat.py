"""``dashscope-rt chat``: a live conversation from a WAV file, the microphone, text or a prompt."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cli_common import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_MISSING_EXTRA,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Console,
    explain,
    format_metrics,
    format_usage,
    level_dbfs,
    meter,
    non_negative,
    read_wav_arg,
)
from ._cli_config import Settings, add_profile_argument, mask_key, resolve
from ._cli_prompt import run_prompt
from ._endpoint import is_loopback
from .audio import to_int16

if TYPE_CHECKING:
    from .session import Session

__all__ = ["DEFAULT_MODEL", "TEXT_MODEL", "ChatClient", "add_parser", "cmd_chat"]

DEFAULT_MODEL = "qwen3-omni-flash-realtime"
TEXT_MODEL = "qwen3.5-omni-flash-realtime"
_CHUNK_MS = 100
_REPLY_TIMEOUT = 60.0
_NO_SPEECH_AFTER_S = 4.0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``chat``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "chat",
        help="talk to a model: --wav FILE, --mic, --text, or an interactive prompt",
        description="A real conversation with a Qwen-Omni-Realtime model. The key comes from "
        "$DASHSCOPE_API_KEY or a saved profile (dashscope-rt config). Without --wav, --mic or "
        "--text an interactive prompt opens.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--wav", metavar="FILE", help="send a WAV file, streamed at real-time pace")
    src.add_argument("--mic", action="store_true", help="talk into the microphone (audio extra)")
    src.add_argument("--text", metavar="TEXT", help="send a text message (qwen3.5 models)")
    p.add_argument("--out", metavar="FILE", help="save the reply audio to a WAV file")
    p.add_argument("--play", action="store_true", help="play the reply (needs the audio extra)")
    p.add_argument(
        "--no-aec",
        action="store_true",
        help="with --mic --play: no echo cancellation (the aec extra); mute the mic while the "
        "reply plays instead",
    )
    p.add_argument("--model", help=f"model (default {DEFAULT_MODEL}; {TEXT_MODEL} for --text)")
    p.add_argument("--voice", help="voice, e.g. Cherry (default: the model's)")
    p.add_argument("--instructions", help="system instructions")
    p.add_argument("--region", choices=("cn", "intl"), help="cn = Beijing, intl = Singapore")
    p.add_argument("--workspace", help="workspace id: connect to its own host (qwen3.8 needs one)")
    p.add_argument("--url", help="endpoint instead of the region's, e.g. a local simulator")
    p.add_argument(
        "--speed",
        type=non_negative,
        default=1.0,
        help="stream --wav at N × real time; 0 = all at once (default 1)",
    )
    p.add_argument("--record-to", metavar="DIR", help="record the session's events and audio")
    p.add_argument("-v", "--verbose", action="store_true", help="log the SDK's activity")
    add_profile_argument(p)
    p.set_defaults(func=cmd_chat)
    return p


def cmd_chat(args: argparse.Namespace) -> int:
    """Run ``chat``; returns the exit status."""
    con = Console()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    client: ChatClient | None = None
    try:
        settings = resolve(args)
        model = _pick_model(args, settings)
        voice = _pick_voice(args, settings, model, con)
        if not settings.api_key and not is_loopback(settings.url):
            raise CliError(
                "no API key: set DASHSCOPE_API_KEY (a Beijing key for --region cn, a Singapore "
                "key for --region intl) or save one with `dashscope-rt config add NAME`. "
                "To try it without a key: dashscope-rt demo",
                EXIT_AUTH,
            )
        wav = (
            read_wav_arg(Path(args.wav)) if args.wav else None
        )  # a bad file fails before connecting
        _require_devices(mic=args.mic, play=args.play)
        client = ChatClient(settings, model, args, con, voice=voice)
        client.open()
        if wav is not None:
            client.send_wav(Path(args.wav), speed=args.speed, wav=wav)
        elif args.text:
            client.send_text(args.text)
        elif args.mic:
            return client.run_mic()
        else:
            return run_prompt(client)
        client.finish()
        return EXIT_OK
    except CliError as exc:
        con.error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        if client is not None:
            client.interrupt()
            client.settle(resume=False)  # the cancelled turn's summary, then nothing more
        con.line("Interrupted.")
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()


def _pick_model(args: argparse.Namespace, settings: Settings) -> str:
    """``--model``, else the profile's; else a model that takes text for --text and the prompt."""
    from .models import get_model

    chosen = args.model or settings.model
    if args.text and chosen is not None and not get_model(chosen).text_input:
        raise CliError(
            f"{chosen} does not take text input; use --wav/--mic, or a model that takes "
            f"text: --model {TEXT_MODEL}",
            EXIT_USAGE,
        )
    if chosen is not None:
        return chosen
    interactive = not (args.wav or args.mic or args.text)
    return TEXT_MODEL if args.text or interactive else DEFAULT_MODEL


def _pick_voice(
    args: argparse.Namespace, settings: Settings, model: str, con: Console
) -> str | None:
    """``--voice``, else the profile's if this model has it (a note says when it does not)."""
    from .models import get_model

    if args.voice or not settings.voice:
        return args.voice or None  # a --voice the model lacks is refused with the valid ones
    info = get_model(model)
    if info.accepts_voice(settings.voice):
        return settings.voice
    con.line(
        con.dim(
            f"note: {model} has no voice {settings.voice!r} (the profile's default); "
            f"using its default, {info.default_voice}"
        )
    )
    return None


def _require_devices(*, mic: bool, play: bool) -> None:
    """Fail before connecting when --mic/--play cannot work on this machine."""
    from .audio import check_device
    from .errors import AudioDeviceError

    for kind, wanted in (("input", mic), ("output", play)):
        if not wanted:
            continue
        _require_sounddevice()
        try:
            check_device(kind)
        except AudioDeviceError as exc:
            flag = "--mic" if kind == "input" else "--play"
            instead = "--wav FILE" if kind == "input" else "--out FILE"
            raise CliError(f"{flag}: {exc}. Use {instead} instead", EXIT_MISSING_EXTRA) from None


class ChatClient:
    """One chat: a :class:`~dashscope_rt.session.Session` plus the live display."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        args: argparse.Namespace,
        con: Console,
        *,
        voice: str | None = None,
        mic_stream: Callable[..., Any] | None = None,
        speaker_stream: Callable[..., Any] | None = None,
    ) -> None:
        self.mic_stream = mic_stream
        self.speaker_stream = speaker_stream
        self.stop = threading.Event()
        self.settings = settings
        self.model = model
        self.args = args
        self.con = con
        self.voice: str | None = voice or args.voice
        self.interrupted = threading.Event()
        """Set by Ctrl+C: the reply being received is no longer shown, played or saved."""
        self._quiet_error = threading.Event()
        self._awaiting_cancel = False
        self.session: Any = None
        self.player: Any = None
        self.aec: Any = None
        self.turns = 0
        self.replies: list[Any] = []
        self._done = threading.Event()
        self._speech = threading.Event()
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------------

    def _session_kwargs(self) -> dict[str, Any]:
        from .config import SessionConfig

        fields: dict[str, Any] = {}
        if self.voice:
            fields["voice"] = self.voice
        if self.args.instructions:
            fields["instructions"] = self.args.instructions
        s = self.settings
        kw: dict[str, Any] = {
            "api_key": s.api_key,
            "region": s.region,
            "url": s.url,
            "workspace": s.workspace,
            "config": SessionConfig(**fields),
        }
        if self.args.record_to:
            kw["record_to"] = self.args.record_to
        return kw

    def _explain(self, exc: BaseException) -> CliError:
        return explain(exc, region=self.settings.region, url=self.settings.url)

    def open(self) -> None:
        """Connect and register the display handlers."""
        from .errors import RealtimeError
        from .session import Session

        try:
            session = Session(self.model, **self._session_kwargs())
        except RealtimeError as exc:
            raise self._explain(exc) from None
        self._wire(session)
        s = self.settings
        where = s.url or {"cn": "Beijing (cn)", "intl": "Singapore (intl)"}.get(s.region, s.region)
        if s.workspace and not s.url:
            where = f"workspace {s.workspace} in {where}"
        key = f"key {mask_key(s.api_key)} from {s.key_source}" if s.api_key else "no key"
        self.con.line(self.con.dim(f"connecting to {where} · {self.model} · {key}"))
        try:
            session.connect()
        except RealtimeError as exc:
            raise self._explain(exc) from None
        self.session = session
        if self.args.play and self.player is None:
            from .audio import EchoCanceller, Player, aec_available

            if self.args.mic and not self.args.no_aec and aec_available():
                self.aec = EchoCanceller(session.input_rate)
            self.player = Player(
                session.output_rate, stream_factory=self.speaker_stream, echo_canceller=self.aec
            )
            session.attach_player(self.player)  # plays replies, stops them at a barge-in
        voice = session.config.voice if session.config is not None else None
        self.con.line(
            self.con.dim(
                f"connected · session {session.session_id}" + (f" · voice {voice}" if voice else "")
            )
        )

    def close(self) -> None:
        """End the session politely and stop the audio."""
        session, self.session = self.session, None
        if session is not None:
            try:
                session.end(timeout=2.0)
            except Exception:  # closing must not hide the real outcome
                session.close()
        if self.player is not None:
            self.player.close()
            self.player = None
            self.aec = None

    def _wire(self, session: Session) -> None:
        con = self.con

        @session.on_speech_started
        def _started(ev: Any) -> None:
            self._speech.set()
            con.line(con.dim("● speech started"))

        @session.on_input_transcript
        def _heard(ev: Any) -> None:
            con.line(f"{con.bold('you')}: {ev.transcript}")

        def _delta(ev: Any) -> None:
            if not self.interrupted.is_set():
                con.stream(f"{con.bold('assistant')}: ", ev.delta)

        session.on_transcript_delta(_delta)
        session.on_text_delta(_delta)

        @session.on_response_done
        def _done(reply: Any) -> None:
            con.end_line()
            self._turn_done(reply)

        @session.on_error
        def _error(exc: BaseException) -> None:
            from .errors import ServerError

            if isinstance(exc, ServerError) and self._quiet_error.is_set():
                self._quiet_error.clear()  # the command that caused it reports it
                return
            con.line(f"! {exc}")

    def _turn_done(self, reply: Any) -> None:
        with self._lock:
            self.turns += 1
            n = self.turns
            self.replies.append(reply)
        bits = [f"turn {n}", reply.status]
        if reply.interrupted and reply.played_ms is not None:
            bits.append(f"cut after {reply.played_ms / 1000:.1f} s")
        if reply.audio:
            bits.append(f"{reply.duration:.1f} s audio")
        bits.append(format_metrics(reply.metrics))
        if reply.usage is not None:
            bits.append(format_usage(reply.usage))
        saved = None if self.interrupted.is_set() else self._save(reply, n)
        if saved:
            bits.append(f"saved {saved}")
        self.con.line(self.con.dim("── " + " · ".join(bits)))
        self._done.set()

    def _save(self, reply: Any, n: int) -> str | None:
        if not self.args.out or not reply.audio:
            return None
        out = Path(self.args.out)
        if n > 1:
            out = out.with_name(f"{out.stem}-{n}{out.suffix or '.wav'}")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(reply.to_wav())
        except OSError as exc:
            self.con.line(f"! cannot save {out}: {exc}")
            return None
        return str(out)

    def _check(self) -> Any:
        from .errors import VoiceNotSupported

        session = self.session
        if session is None or session.closed:
            info = session.close_info if session is not None else None
            if info is not None and isinstance(info.error, VoiceNotSupported):
                self.voice = None  # the next session starts with the model's default voice
                raise self._explain(info.error)
            why = f": {info.error or info.reason or info.code}" if info is not None else ""
            raise CliError(f"the session is closed{why}", EXIT_ERROR)
        return session

    def _wait_reply(self, timeout: float = _REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.2):
            self._check()
            if time.monotonic() > deadline:
                raise CliError(f"no reply within {timeout:.0f} s", EXIT_ERROR)

    # -- inputs -----------------------------------------------------------------------------------

    def send_wav(self, path: Path, *, speed: float = 1.0, wav: Any = None) -> None:
        """Stream a WAV file like a live speaker, then silence until the reply is in."""
        from .errors import NoSpeechHeard, RealtimeError
        from .streaming import stream_audio

        session = self._check()
        wav = wav if wav is not None else read_wav_arg(path)
        rate, ch = wav.sample_rate, wav.channels
        pace = f"{speed:g}× real time" if speed > 0 else "all at once"
        self.con.line(
            self.con.dim(f"streaming {path.name}: {wav.duration:.1f} s, {rate} Hz, {ch} ch, {pace}")
        )

        def level(chunk: Any, sent: float) -> None:
            db = level_dbfs(to_int16(chunk).tobytes())
            self.con.status(f"  file {meter(db)} {db:6.1f} dBFS  {sent:4.1f} s")

        self._done.clear()
        try:
            stream_audio(session, wav, speed=speed, timeout=_REPLY_TIMEOUT, on_chunk=level)
        except KeyboardInterrupt:
            self.interrupt(dropped=True)
            raise
        except NoSpeechHeard:
            raise CliError(
                f"the server heard no speech in {path} (too quiet, or not speech?)", EXIT_ERROR
            ) from None
        except RealtimeError as exc:
            raise self._explain(exc) from None
        finally:
            self.con.status("")
        self._done.wait(2.0)  # the turn's summary line, printed by the dispatcher

    def interrupt(self, *, dropped: bool = False) -> None:
        """Ctrl+C: stop the reply in progress and show, play and save nothing more of it.

        ``dropped``: :func:`~dashscope_rt.streaming.stream_audio` already dropped the turn on the
        server; otherwise the audio buffer is cleared and a response in progress cancelled.
        Idempotent until :meth:`settle`.
        """
        if self.interrupted.is_set():
            return
        self.interrupted.set()
        if self.player is not None:
            self.player.clear()
        session = self.session
        if session is None or session.closed:
            self._awaiting_cancel = False
            return
        self._awaiting_cancel = session.active_response is not None
        if dropped:
            return
        from .errors import RealtimeError

        try:
            session.clear_audio()
            if self._awaiting_cancel:
                session.cancel_response()
        except RealtimeError:
            pass

    def settle(self, timeout: float = 3.0, *, resume: bool = True) -> None:
        """After an interrupt: let the cancelled turn end (its summary line) before going on;
        ``resume`` shows the replies that come after it again."""
        if self._awaiting_cancel:
            self._done.wait(timeout)
        self.con.end_line()
        if resume:
            self.interrupted.clear()

    def send_text(self, text: str) -> None:
        """Send a text message and wait for the reply."""
        from .errors import RealtimeError

        session = self._check()
        if not session.model_info.text_input:
            raise CliError(
                f"{self.model} does not take text: use /wav FILE, or restart with "
                f"--model {TEXT_MODEL}",
                EXIT_USAGE,
            )
        self._done.clear()
        self.con.line(f"{self.con.bold('you')}: {text}")
        try:
            session.send_text(text)
        except RealtimeError as exc:
            raise self._explain(exc) from None
        self._wait_reply()

    def finish(self) -> None:
        """Let the player finish the last reply."""
        if self.player is not None:
            self.player.wait_done(timeout=120.0)

    def run_mic(self) -> int:
        """Talk until Ctrl+C: microphone in, transcript out (and speaker with --play)."""
        from .audio import Microphone

        session = self._check()
        if self.mic_stream is None:
            _require_sounddevice()

        def feed(data: Any, *, sample_rate: int, channels: int) -> None:
            session.append_audio(data, sample_rate=sample_rate, channels=channels)
            db = level_dbfs(bytes(data))
            self.con.status(f"  mic {meter(db)} {db:6.1f} dBFS")

        player = self.player
        mic = Microphone(
            feed,
            stream_factory=self.mic_stream,
            echo_canceller=self.aec,
            mute_while=None if player is None or self.aec else (lambda: bool(player.playing)),
        )
        if self.aec is not None:
            self.con.line(self.con.dim("echo cancellation on: talk over the reply to stop it"))
        elif player is not None:
            from .audio import AEC_EXTRA_HINT

            why = "--no-aec" if self.args.no_aec else f"for echo cancellation: {AEC_EXTRA_HINT}"
            self.con.line(
                self.con.dim(f"half duplex: the mic is muted while the reply plays ({why})")
            )
        self.con.line(self.con.dim(f"listening at {mic.sample_rate} Hz · speak; Ctrl+C to end"))
        try:
            with mic:
                while not session.closed and not self.stop.wait(0.2):
                    pass
        except KeyboardInterrupt:
            self.con.line("Bye.")
            return EXIT_OK
        self._check()
        return EXIT_OK

    def change_voice(self, name: str) -> None:
        """Ask the session for another voice; a refusal is reported once, as a ``CliError``."""
        from .config import SessionConfig
        from .errors import RealtimeError

        self._quiet_error.set()
        try:
            self._check().update(SessionConfig(voice=name))
        except RealtimeError as exc:
            self._expect_quiet_error(exc)
            raise CliError(
                f"voice {name!r} refused: {exc} (after audio was produced some models keep "
                "their voice: /clear, then /voice)",
                EXIT_ERROR,
            ) from None
        finally:
            self._quiet_error.clear()
        self.voice = name
        self.con.line(self.con.dim(f"voice: {name}"))

    def _expect_quiet_error(self, exc: BaseException, timeout: float = 1.0) -> None:
        """A refused request reaches ``on_error`` too, just after: let that one pass silently."""
        from .errors import ServerError

        if isinstance(exc, ServerError):
            deadline = time.monotonic() + timeout
            while self._quiet_error.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)

    def reopen_if_closed(self) -> None:
        """Open a new session when the last one has closed."""
        if self.session is None or self.session.closed:
            self.con.line(self.con.dim("the session had closed; opening a new one"))
            self.session = None
            self.open()


def _require_sounddevice() -> None:
    from .audio import AUDIO_EXTRA_HINT

    try:
        import sounddevice  # noqa: F401
    except ImportError:
        raise CliError(
            f"--mic and --play need the sounddevice package: {AUDIO_EXTRA_HINT}",
            EXIT_MISSING_EXTRA,
        ) from None
    except OSError as exc:
        raise CliError(
            f"--mic and --play need the PortAudio library ({exc}): on Debian/Ubuntu "
            "apt install libportaudio2, on macOS brew install portaudio",
            EXIT_MISSING_EXTRA,
        ) from None
