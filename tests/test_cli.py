"""The ``dashscope-rt`` command, run as a subprocess: demo, chat (--wav, --text, interactive),
simulate, config profiles, and the exit codes and messages of common failures."""

from __future__ import annotations

import base64
import io
import re
import signal
import stat
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_rt.audio import write_wav

pytest.importorskip("websockets")

from cli_run import cli
from cli_run import cli_env as _env

from dashscope_rt.testing import Simulator, silence, synthesize

QUESTION = "What time is it in Tokyo right now?"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def question_wav(tmp_path: Path) -> Path:
    path = tmp_path / "question.wav"
    write_wav(path, synthesize(QUESTION, 44100) + silence(300, 44100), 44100)
    return path


def _wav_frames(path: Path) -> tuple[int, int]:
    with wave.open(io.BytesIO(path.read_bytes())) as w:
        return w.getframerate(), w.getnframes()


# -- demo ------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_demo(tmp_path: Path) -> None:
    r = cli(tmp_path, "demo", "--out", "out/reply.wav", "--speed", "0")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "speech started" in out and "speech stopped" in out
    assert "you said   “Hello! What is the weather like in Hangzhou today?”" in out
    assert re.search(r"assistant  Hi, simulator here", out)
    assert re.search(r"metrics    speech end → first audio \d+ ms", out)
    assert re.search(r"usage      \d+ tokens \(in \d+", out)
    rate, frames = _wav_frames(tmp_path / "out" / "reply.wav")
    assert rate == 24000 and frames > 24000
    assert f"saved      out/reply.wav ({frames / rate:.1f} s" in out


@pytest.mark.timeout(60)
def test_demo_default_pacing_and_output(tmp_path: Path) -> None:
    r = cli(tmp_path, "demo")
    assert r.returncode == 0, r.stderr
    assert "2× real time" in r.stdout
    assert (tmp_path / "reply.wav").is_file()


@pytest.mark.timeout(30)
def test_demo_without_websockets_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "from dashscope_rt.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert r.returncode == 5
    assert "pip install 'dashscope-rt[testing]'" in r.stderr


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("dashscope-rt")
    if not script.exists():
        pytest.skip("the dashscope-rt console script is not installed in this environment")
    r = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=30, env=_env(tmp_path)
    )
    assert r.returncode == 0 and r.stdout.startswith("dashscope-rt ")


def test_help_lists_every_command(tmp_path: Path) -> None:
    r = cli(tmp_path, "--help")
    assert r.returncode == 0
    for command in ("demo", "chat", "probe", "simulate", "config", "--profile"):
        assert command in r.stdout


# -- chat ------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_chat_wav(tmp_path: Path, sim: Simulator, question_wav: Path) -> None:
    sim.script_transcripts([QUESTION])
    r = cli(
        tmp_path,
        "chat",
        "--url",
        sim.url,
        "--wav",
        str(question_wav),
        "--out",
        "answer.wav",
        "--speed",
        "4",
        DASHSCOPE_API_KEY=sim.api_key or "",
    )
    assert r.returncode == 0, r.stderr
    assert f"you: {QUESTION}" in r.stdout
    assert f"assistant: You said: {QUESTION}" in r.stdout
    assert re.search(r"── turn 1 · completed · [\d.]+ s audio · speech end → first audio", r.stdout)
    assert "saved answer.wav" in r.stdout
    assert _wav_frames(tmp_path / "answer.wav")[0] == 24000
    # 44.1 kHz in, 16 kHz on the wire: the whole file arrived, resampled (plus trailing silence).
    sent = sum(
        len(base64.b64decode(e["audio"]))
        for e in sim.last.received_events("input_audio_buffer.append")
    )
    rate, frames = _wav_frames(question_wav)
    assert sent >= frames / rate * 16000 * 2


@pytest.mark.timeout(60)
def test_chat_text_picks_a_text_model(tmp_path: Path, sim: Simulator) -> None:
    r = cli(
        tmp_path,
        "chat",
        "--url",
        sim.url,
        "--text",
        "Hello, who are you?",
        "--out",
        "hi.wav",
        DASHSCOPE_API_KEY=sim.api_key or "",
    )
    assert r.returncode == 0, r.stderr
    assert "qwen3.5-omni-flash-realtime" in r.stdout
    assert "assistant: You said: Hello, who are you?" in r.stdout
    assert (tmp_path / "hi.wav").is_file()


def test_chat_text_refuses_a_model_without_text_input(tmp_path: Path) -> None:
    r = cli(
        tmp_path,
        "chat",
        "--model",
        "qwen3-omni-flash-realtime",
        "--text",
        "hi",
        DASHSCOPE_API_KEY="sk-x",
    )
    assert r.returncode == 2
    assert "does not take text input" in r.stderr and "--model qwen3.5" in r.stderr


@pytest.mark.timeout(60)
def test_chat_interactive(tmp_path: Path, sim: Simulator, question_wav: Path) -> None:
    sim.script_transcripts([QUESTION])
    commands = f"Hi there\n/wav {question_wav}\n/voice Tina\n/nope\n/clear\n/exit\n"
    r = cli(
        tmp_path,
        "chat",
        "--url",
        sim.url,
        "--model",
        "qwen3.5-omni-flash-realtime",
        "--speed",
        "0",
        stdin=commands,
        DASHSCOPE_API_KEY=sim.api_key or "",
    )
    assert r.returncode == 0, r.stderr
    assert "assistant: You said: Hi there" in r.stdout
    assert f"assistant: You said: {QUESTION}" in r.stdout
    assert "── turn 2" in r.stdout
    assert "voice: Tina" in r.stdout
    assert "unknown command /nope" in r.stderr
    assert "new conversation" in r.stdout
    assert len(sim.connections) == 2  # /clear opened a fresh session


@pytest.mark.timeout(30)
def test_chat_bad_key_names_the_problem(tmp_path: Path, sim: Simulator) -> None:
    r = cli(tmp_path, "chat", "--url", sim.url, "--text", "hi", DASHSCOPE_API_KEY="sk-wrong")
    assert r.returncode == 3
    assert "API key was rejected (HTTP 401)" in r.stderr
    assert "sk-wrong" not in r.stdout + r.stderr


def test_chat_without_key(tmp_path: Path) -> None:
    r = cli(tmp_path, "chat", "--text", "hi")
    assert r.returncode == 3
    assert "no API key" in r.stderr and "dashscope-rt demo" in r.stderr


@pytest.mark.timeout(30)
def test_chat_connection_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli(
        tmp_path,
        "chat",
        "--url",
        f"ws://127.0.0.1:{port}/api-ws/v1/realtime",
        "--text",
        "hi",
        DASHSCOPE_API_KEY="sk-x",
    )
    assert r.returncode == 4
    assert "connection refused" in r.stderr


@pytest.mark.timeout(30)
def test_chat_wav_without_speech(tmp_path: Path, sim: Simulator) -> None:
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, silence(1000, 16000), 16000)
    r = cli(
        tmp_path,
        "chat",
        "--url",
        sim.url,
        "--wav",
        str(quiet),
        "--speed",
        "0",
        DASHSCOPE_API_KEY=sim.api_key or "",
    )
    assert r.returncode == 1
    assert "heard no speech" in r.stderr


@pytest.mark.timeout(60)
def test_chat_ctrl_c_ends_cleanly(tmp_path: Path, sim: Simulator) -> None:
    long_wav = tmp_path / "long.wav"
    write_wav(long_wav, synthesize("Let me tell you a long story. " * 6, 16000), 16000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashscope_rt", "chat", "--url", sim.url, "--wav", str(long_wav)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=_env(tmp_path, DASHSCOPE_API_KEY=sim.api_key or ""),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("streaming long.wav"):
            break
    sim.wait_for(lambda: "input_audio_buffer.append" in sim.last.received_types() or None, 10)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "Interrupted." in out
    assert "Traceback" not in err
    # The session was ended (finish or close), not left hanging.
    assert sim.last.closed.wait(10)


def test_chat_missing_wav(tmp_path: Path) -> None:
    r = cli(tmp_path, "chat", "--wav", "nope.wav", DASHSCOPE_API_KEY="sk-x")
    assert r.returncode == 2 and "no such file: nope.wav" in r.stderr


# -- simulate --------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_simulate_serves_chat(tmp_path: Path, question_wav: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashscope_rt", "simulate", "--port", "0", "--fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            m = re.match(r"Simulator listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url is not None
        r = cli(
            tmp_path,
            "chat",
            "--url",
            url,
            "--wav",
            str(question_wav),
            "--speed",
            "0",
            DASHSCOPE_API_KEY="sk-test",
        )
        assert r.returncode == 0, r.stderr
        assert "assistant: You said: [" in r.stdout  # the simulator's own transcriber
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Simulator stopped." in out


# -- config ----------------------------------------------------------------------------------------

KEY = "sk-0123456789abcdef0123"


def test_config_profiles(tmp_path: Path) -> None:
    r = cli(tmp_path, "config", "list")
    assert r.returncode == 0 and "No profiles yet" in r.stdout
    r = cli(tmp_path, "config", "add", "work", "--api-key", KEY, "--region", "intl")
    assert r.returncode == 0, r.stderr
    assert "sk-…0123" in r.stdout and KEY not in r.stdout
    path = tmp_path / "config" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    r = cli(
        tmp_path,
        "config",
        "add",
        "home",
        "--api-key",
        "-",
        "--model",
        "qwen3.5-omni-plus",
        stdin="sk-home-key-987654321\n",
    )
    assert r.returncode == 0, r.stderr
    listing = cli(tmp_path, "config", "list").stdout
    assert KEY not in listing and "sk-home-key-987654321" not in listing
    lines = {
        ln.split()[1] if ln.startswith("*") else ln.split()[0]: ln for ln in listing.splitlines()
    }
    assert lines["work"].startswith("*")  # the first profile becomes the current one
    assert "intl" in lines["work"] and "qwen3.5-omni-plus" in lines["home"]
    assert cli(tmp_path, "config", "use", "home").returncode == 0
    shown = cli(tmp_path, "config", "show").stdout
    assert "profile:   home" in shown and "sk-…4321" in shown
    shown = cli(tmp_path, "--profile", "work", "config", "show").stdout
    assert "profile:   work" in shown and "region:    intl" in shown
    assert cli(tmp_path, "config", "delete", "home").returncode == 0
    listing = cli(tmp_path, "config", "list").stdout
    assert "home" not in listing
    assert not any(ln.startswith("*") for ln in listing.splitlines())  # the current one went
    r = cli(tmp_path, "config", "use", "nope")
    assert r.returncode == 2 and "no profile named 'nope'" in r.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli(tmp_path, "config", "path").stdout.strip() == str(path)


@pytest.mark.timeout(60)
def test_profile_supplies_key_and_url(tmp_path: Path) -> None:
    with Simulator(api_key="sk-profile-key-123456") as sim:
        r = cli(
            tmp_path,
            "config",
            "add",
            "local",
            "--api-key",
            "sk-profile-key-123456",
            "--url",
            sim.url,
            "--model",
            "qwen3.5-omni-flash-realtime",
        )
        assert r.returncode == 0, r.stderr
        r = cli(tmp_path, "chat", "--text", "ping", "--profile", "local")
        assert r.returncode == 0, r.stderr
        assert "from profile 'local'" in r.stdout
        assert "assistant: You said: ping" in r.stdout
        r = cli(tmp_path, "chat", "--profile", "missing", "--text", "ping")
        assert r.returncode == 2 and "no profile named 'missing'" in r.stderr


class _FakeMic:
    """Stands in for sounddevice.RawInputStream: speech, then silence, at 8 × real time."""

    def __init__(self, pcm: bytes, **kw: Any) -> None:
        self.pcm, self.block, self.rate = pcm, int(kw["blocksize"]), int(kw["samplerate"])
        self.callback = kw["callback"]
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        pos = 0
        while not self.halt.wait(self.block / self.rate / 8):
            chunk = self.pcm[pos : pos + self.block * 2]
            pos += len(chunk)
            self.callback(chunk + bytes(self.block * 2 - len(chunk)), self.block, None, None)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(5)

    def close(self) -> None:
        self.stop()


def _chat_mic(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    speaker_stream: Any = None,
) -> tuple[list[int], str, bool]:
    """Run ``chat --mic FLAGS`` in process with a fake sound card until the first turn ends:
    (exit codes, screen text, whether echo cancellation was on)."""
    from dashscope_rt._cli_chat import ChatClient
    from dashscope_rt._cli_common import Console
    from dashscope_rt._cli_config import resolve
    from dashscope_rt.cli import build_parser

    monkeypatch.setenv("DASHSCOPE_RT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("DASHSCOPE_API_KEY", sim.api_key or "")
    sim.script_transcripts(["Hello from the microphone"])
    pcm = synthesize("Hello from the microphone", 16000) + silence(1500, 16000)
    args = build_parser().parse_args(["chat", "--mic", "--url", sim.url, *flags])
    out = io.StringIO()
    client = ChatClient(
        resolve(args),
        "qwen3-omni-flash-realtime",
        args,
        Console(out),
        mic_stream=lambda **kw: _FakeMic(pcm, **kw),
        speaker_stream=speaker_stream,
    )
    result: list[int] = []
    try:
        client.open()
        cancelling = client.aec is not None
        worker = threading.Thread(target=lambda: result.append(client.run_mic()))
        worker.start()
        sim.wait_for(lambda: client.turns >= 1 or None, 20)
        client.stop.set()
        worker.join(10)
    finally:
        client.close()
    return result, out.getvalue(), cancelling


@pytest.mark.timeout(30)
def test_chat_mic_mode(tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """``chat --mic`` in process, with a fake sound card: level, transcript, one line per turn."""
    result, text, _ = _chat_mic(tmp_path, sim, monkeypatch, [])
    assert result == [0]
    assert "listening at 16000 Hz" in text
    assert "you: Hello from the microphone" in text
    assert "assistant: You said: Hello from the microphone" in text
    assert "── turn 1 · completed" in text


class _SilentSpeaker:
    """A sounddevice.RawOutputStream stand-in that never asks for audio."""

    def __init__(self, **kw: Any) -> None:
        self.callback = kw["callback"]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flag", [[], ["--no-aec"]])
def test_chat_mic_play_cancels_echo_or_says_it_is_half_duplex(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch, flag: list[str]
) -> None:
    from dashscope_rt.audio import aec_available

    flags = ["--play", *flag]
    result, text, cancelling = _chat_mic(tmp_path, sim, monkeypatch, flags, _SilentSpeaker)
    assert result == [0]
    assert "you: Hello from the microphone" in text
    if flag or not aec_available():
        assert not cancelling and "half duplex: the mic is muted while the reply plays" in text
    else:
        assert cancelling and "echo cancellation on" in text
