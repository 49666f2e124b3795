"""Issue #13, "the first hour": what a new user trips over, each run as the real command in a
subprocess (on a terminal where that matters), with the exit codes the README documents and no
traceback for any user mistake. Sound devices are simulated by a stand-in sounddevice module."""

from __future__ import annotations

import base64
import os
import re
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("websockets")

import fake_sound
from cli_run import cli
from cli_run import cli_env as _env
from pty_run import PtyProcess

from dashscope_rt import Session
from dashscope_rt._cli_common import explain
from dashscope_rt.audio import write_wav
from dashscope_rt.errors import HandshakeError, InvalidInput, NameResolutionError
from dashscope_rt.testing import Simulator, silence, synthesize

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What time is it in Tokyo right now?"
LONG = "Let me tell you a long story about a cat and a dog. " * 3


def pty_cli(tmp_path: Path, *args: str, **extra: str) -> PtyProcess:
    env = _env(tmp_path, **extra)
    env["TERM"] = "dumb"
    env["NO_COLOR"] = "1"
    return PtyProcess([sys.executable, "-m", "dashscope_rt", *args], env=env, cwd=str(tmp_path))


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout, r.stderr


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    no_traceback(r)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def open_sim() -> Iterator[Simulator]:
    """A simulator that takes any key, or none (``dashscope-rt simulate --any-key``)."""
    with Simulator(api_key=None) as s:
        yield s


def _wav(tmp_path: Path, name: str, words: str, rate: int = 16000) -> Path:
    path = tmp_path / name
    write_wav(path, synthesize(words, rate) + silence(200, rate), rate)
    return path


def _heard_seconds(transcript: str | None) -> float:
    m = re.fullmatch(r"\[([\d.]+) s of speech\]", transcript or "")
    assert m is not None, transcript
    return float(m.group(1))


# -- 1. interactive chat -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_interactive_text_works_with_the_default_model(tmp_path: Path, open_sim: Simulator) -> None:
    p = pty_cli(tmp_path, "chat", "--url", open_sim.url)
    p.expect(r"connected")
    p.expect(r"\n> ")
    p.send("Hello there\n")
    p.expect(r"assistant: You said: Hello there")
    p.expect(r"── turn 1 · completed")
    p.send("/exit\n")
    assert p.wait() == 0
    assert "qwen3.5-omni-flash-realtime" in p.output  # a model that takes text and audio
    assert "Traceback" not in p.output


@pytest.mark.timeout(90)
def test_interactive_ctrl_c_during_wav_leaves_nothing_for_the_next_turn(
    tmp_path: Path, open_sim: Simulator
) -> None:
    long_wav = _wav(tmp_path, "long.wav", LONG)
    short_wav = _wav(tmp_path, "short.wav", "Hello there")
    p = pty_cli(tmp_path, "chat", "--url", open_sim.url, "--speed", "2")
    p.expect(r"\n> ")
    p.send(f"/wav {long_wav}\n")
    p.expect(r"streaming long\.wav")
    open_sim.wait_for(
        lambda: len(open_sim.last.received_events("input_audio_buffer.append")) >= 15, 20
    )
    mark = len(p.output)
    p.ctrl_c()
    p.expect(r"\(interrupted\)", after=mark)
    p.expect(r"\n> ", after=mark)
    p.send(f"/wav {short_wav}\n")
    p.expect(r"── turn 1 · completed", after=mark)
    p.send("/exit\n")
    assert p.wait() == 0
    assert "input_audio_buffer.clear" in open_sim.last.received_types()
    heard = _heard_seconds(_last_user_transcript(open_sim))
    # Only the short turn: "Hello there" and the VAD's padding, not 1.5 s of the long file.
    assert heard < len(synthesize("Hello there", 16000)) / 2 / 16000 + 1.0


def _last_user_transcript(sim: Simulator) -> str | None:
    done = sim.last.sent_events("conversation.item.input_audio_transcription.completed")
    return done[-1]["transcript"] if done else None


@pytest.mark.timeout(60)
def test_interactive_ctrl_c_during_a_reply_shows_its_summary_before_the_prompt(
    tmp_path: Path,
) -> None:
    with Simulator(api_key=None, realtime=True) as sim:
        sim.script_replies(["Once upon a time there was a very long answer. " * 8])
        p = pty_cli(tmp_path, "chat", "--url", sim.url)
        p.expect(r"\n> ")
        p.send("Tell me a story\n")
        p.expect(r"assistant: Once upon")
        mark = len(p.output)
        p.ctrl_c()
        summary = p.expect(r"── turn 1 · cancelled", after=mark)
        prompt = p.expect(r"\n> ", after=mark)
        assert summary.start() < prompt.start()
        p.send("/exit\n")
        assert p.wait() == 0
        assert "response.cancel" in sim.last.received_types()


# -- 2. no sound device ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("no-device", "--mic: no audio input device"),
        ("no-portaudio", "PortAudio library"),
        ("missing", "pip install 'dashscope-rt[audio]'"),
    ],
)
def test_chat_mic_without_a_sound_device(
    tmp_path: Path, open_sim: Simulator, mode: str, expected: str
) -> None:
    env = fake_sound.env(tmp_path / "fake", mode, _env(tmp_path))
    r = cli(tmp_path, "chat", "--mic", "--url", open_sim.url, env=env)
    assert r.returncode == 5
    assert expected in one_error_line(r)
    assert open_sim.connections == []  # it failed before connecting


@pytest.mark.timeout(30)
def test_chat_play_without_a_sound_device(tmp_path: Path, open_sim: Simulator) -> None:
    wav = _wav(tmp_path, "q.wav", QUESTION)
    env = fake_sound.env(tmp_path / "fake", "no-device", _env(tmp_path))
    r = cli(tmp_path, "chat", "--wav", str(wav), "--play", "--url", open_sim.url, env=env)
    assert r.returncode == 5
    line = one_error_line(r)
    assert "--play: no audio output device" in line and "--out FILE" in line
    assert "Error querying device" not in r.stdout
    assert open_sim.connections == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sample", ["microphone.py", "desktop_tk.py"])
def test_samples_without_a_sound_device(tmp_path: Path, open_sim: Simulator, sample: str) -> None:
    env = fake_sound.env(tmp_path / "fake", "no-device", _env(tmp_path))
    env["PYTHONPATH"] += os.pathsep + str(ROOT)
    r = subprocess.run(
        [sys.executable, str(ROOT / "samples" / sample), "--url", open_sim.url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 1
    assert f"{sample}: no audio input device" in one_error_line(r)
    assert open_sim.connections == []


@pytest.mark.timeout(30)
def test_chat_play_with_a_working_device(tmp_path: Path, open_sim: Simulator) -> None:
    open_sim.script_transcripts([QUESTION])
    wav = _wav(tmp_path, "q.wav", QUESTION)
    env = fake_sound.env(tmp_path / "fake", "working", _env(tmp_path))
    args = ("chat", "--wav", str(wav), "--play", "--speed", "0", "--url", open_sim.url)
    r = cli(tmp_path, *args, env=env)
    assert r.returncode == 0, r.stderr
    assert f"assistant: You said: {QUESTION}" in r.stdout


# -- 3. DASHSCOPE_RT_URL and key-less loopback -----------------------------------------------------


@pytest.mark.timeout(30)
def test_chat_takes_the_url_from_the_environment_and_needs_no_key(
    tmp_path: Path, open_sim: Simulator
) -> None:
    r = cli(tmp_path, "chat", "--text", "ping", DASHSCOPE_RT_URL=open_sim.url)
    assert r.returncode == 0, r.stderr
    assert f"connecting to {open_sim.url}" in r.stdout and "no key" in r.stdout
    assert "assistant: You said: ping" in r.stdout
    assert "Authorization" not in open_sim.last.headers


@pytest.mark.timeout(30)
def test_loopback_simulator_that_wants_a_key(tmp_path: Path, sim: Simulator) -> None:
    r = cli(tmp_path, "chat", "--text", "ping", "--url", sim.url)
    assert r.returncode == 3
    assert "wants the key it printed" in one_error_line(r)


@pytest.mark.timeout(30)
def test_session_honours_the_url_variable(
    open_sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("DASHSCOPE_RT_URL", open_sim.url)
    with Session("qwen3.5-omni-flash-realtime") as session:
        assert session.ask(text="ping").text == "You said: ping"
    assert "Authorization" not in open_sim.last.headers
    monkeypatch.delenv("DASHSCOPE_RT_URL")
    with pytest.raises(InvalidInput, match="no API key"):
        Session("qwen3.5-omni-flash-realtime", url="wss://example.com/api-ws/v1/realtime")
    with pytest.raises(InvalidInput, match="no API key"):
        Session("qwen3.5-omni-flash-realtime")


# -- 4. errors, not tracebacks ---------------------------------------------------------------------


def test_demo_with_a_bad_voice(tmp_path: Path) -> None:
    r = cli(tmp_path, "demo", "--voice", "Bogus")
    assert r.returncode == 2
    assert "voice 'Bogus' is not available" in one_error_line(r)


def _without_websockets(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['websockets'] = None\n" + code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=_env(tmp_path),
    )


def test_simulate_without_websockets(tmp_path: Path) -> None:
    code = "from dashscope_rt.cli import main\nsys.exit(main(['simulate', '--port', '0']))"
    r = _without_websockets(tmp_path, code)
    assert r.returncode == 5
    assert "pip install 'dashscope-rt[testing]'" in one_error_line(r)


def test_testing_import_without_websockets_names_the_extra(tmp_path: Path) -> None:
    code = (
        "from dashscope_rt.testing import synthesize\n"
        "assert synthesize('hi', 16000)\n"
        "try:\n"
        "    from dashscope_rt.testing import Simulator\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    r = _without_websockets(tmp_path, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "dashscope_rt.testing.Simulator needs the 'websockets' package: "
        "pip install 'dashscope-rt[testing]'"
    )


@pytest.mark.parametrize("args", [("config", "show"), ("config", "list"), ("--help",)])
def test_output_to_a_closed_pipe(tmp_path: Path, args: tuple[str, ...]) -> None:
    """``dashscope-rt config show | head -2``: the reader may go before we write."""
    for _ in range(3):
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run(
            [sys.executable, "-m", "dashscope_rt", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            env=_env(tmp_path),
        )
        os.close(write)
        assert proc.returncode == 0
        assert proc.stderr == ""


# -- 5. README vs reality --------------------------------------------------------------------------


def test_config_show_takes_a_profile_name(tmp_path: Path) -> None:
    for name, region in (("sg", "intl"), ("bj", "cn")):
        assert cli(tmp_path, "config", "add", name, "--region", region).returncode == 0
    shown = cli(tmp_path, "config", "show", "sg")
    assert shown.returncode == 0 and "profile:   sg" in shown.stdout
    assert "region:    intl" in shown.stdout


@pytest.mark.timeout(30)
def test_profile_voice_and_a_text_model(tmp_path: Path, open_sim: Simulator) -> None:
    """The README's profile sets Cherry; --text picks a qwen3.5 model, which has no Cherry."""
    r = cli(tmp_path, "config", "add", "sg", "--region", "intl", "--voice", "Cherry")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "--profile", "sg", "chat", "--text", "hi", "--url", open_sim.url)
    assert r.returncode == 0, r.stderr
    assert "has no voice 'Cherry' (the profile's default); using its default, Tina" in r.stdout
    assert "assistant: You said: hi" in r.stdout
    r = cli(tmp_path, "chat", "--text", "hi", "--voice", "Cherry", "--url", open_sim.url)
    assert r.returncode == 2
    assert "Leave voice unset for the model's default, 'Tina'" in one_error_line(r)


# -- 6. audio files --------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_chat_with_a_float_wav(tmp_path: Path, open_sim: Simulator) -> None:
    open_sim.script_transcripts([QUESTION])
    pcm = np.frombuffer(synthesize(QUESTION, 44100), "<i2").astype("<f4") / 32768
    fmt = struct.pack("<HHIIHHH", 3, 1, 44100, 44100 * 4, 4, 32, 0)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", pcm.nbytes) + pcm.tobytes()
    path = tmp_path / "audacity.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    r = cli(tmp_path, "chat", "--wav", str(path), "--speed", "0", "--url", open_sim.url)
    assert r.returncode == 0, r.stderr
    assert "streaming audacity.wav: 2.7 s, 44100 Hz, 1 ch" in r.stdout
    assert f"assistant: You said: {QUESTION}" in r.stdout


@pytest.mark.parametrize(
    ("name", "head", "what"),
    [("song.mp3", b"ID3\x04", "an MP3 file"), ("notes.wav", b"hello", "not a WAV file")],
)
def test_chat_refuses_other_files_before_connecting(
    tmp_path: Path, open_sim: Simulator, name: str, head: bytes, what: str
) -> None:
    (tmp_path / name).write_bytes(head + bytes(200))
    r = cli(tmp_path, "chat", "--wav", name, "--url", open_sim.url)
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"{name} is {what}" in line and "ffmpeg -i" in line and "sox" in line
    assert open_sim.connections == []


# -- 7. Ctrl+C during the reply of chat --wav ------------------------------------------------------


@pytest.mark.timeout(60)
def test_chat_wav_ctrl_c_during_the_reply_stops_it(tmp_path: Path) -> None:
    with Simulator(api_key=None, realtime=True) as sim:
        sim.script_transcripts([QUESTION])
        sim.script_replies(["A long answer that goes on and on and on. " * 8])
        wav = _wav(tmp_path, "q.wav", QUESTION)
        p = pty_cli(
            tmp_path, "chat", "--wav", str(wav), "--speed", "0", "--out", "a.wav", "--url", sim.url
        )
        p.expect(r"assistant: A long")
        p.ctrl_c()
        assert p.wait() == 130
        before, after = p.output.split("Interrupted.", 1)
        assert after.strip() == ""
        assert "── turn 1 · cancelled" in before  # the turn's summary, then nothing more
        assert "Traceback" not in p.output
        assert not (tmp_path / "a.wav").exists()
        assert sim.wait_for(lambda: "response.cancel" in sim.last.received_types(), 5)


# -- 8. wording ------------------------------------------------------------------------------------


def test_dns_failure_says_it_once() -> None:
    exc = NameResolutionError(
        "cannot resolve the host of wss://nohost.invalid/x (WebSocketAddressException: [Errno -2] "
        "Name or service not known)"
    )
    failure = explain(exc, region=None, url="wss://nohost.invalid/x")
    assert failure.code == 4
    assert failure.message.count("resolve") == 1 and "nohost.invalid" in failure.message
    handshake = explain(HandshakeError("HTTP 404", status=404), region=None, url="ws://h/x")
    assert handshake.code == 1 and "HTTP 404" in handshake.message


@pytest.mark.timeout(30)
def test_wrong_url_path_is_a_handshake_error(tmp_path: Path, open_sim: Simulator) -> None:
    url = open_sim.url.replace("/api-ws/v1/realtime", "/api/v1/realtime")
    r = cli(tmp_path, "chat", "--text", "hi", "--url", url)
    assert r.returncode == 1
    line = one_error_line(r)
    assert "answered the WebSocket handshake with HTTP 404" in line and "check the URL" in line
    assert "refused" not in line


@pytest.mark.timeout(60)
def test_voice_refused_after_audio_is_reported_once(tmp_path: Path, open_sim: Simulator) -> None:
    wav = _wav(tmp_path, "q.wav", QUESTION)
    commands = f"/wav {wav}\n/voice Ethan\n/exit\n"
    r = cli(
        tmp_path,
        "chat",
        "--model",
        "qwen3-omni-flash-realtime",
        "--speed",
        "0",
        "--url",
        open_sim.url,
        stdin=commands,
    )
    assert r.returncode == 0, r.stderr
    no_traceback(r)
    both = r.stdout + r.stderr
    assert both.count("Cannot update voice after audio has been generated") == 1
    assert "voice 'Ethan' refused" in r.stderr


@pytest.mark.timeout(60)
def test_level_meter_names_the_file(tmp_path: Path, open_sim: Simulator) -> None:
    wav = _wav(tmp_path, "q.wav", QUESTION)
    p = pty_cli(tmp_path, "chat", "--wav", str(wav), "--speed", "2", "--url", open_sim.url)
    p.expect(r"  file [█·]{24} +-?[\d.]+ dBFS")
    p.expect(r"── turn 1")
    assert p.wait() == 0
    assert " mic " not in p.output


@pytest.mark.timeout(60)
def test_demo_warns_once_and_its_hint_names_the_bundled_file(tmp_path: Path) -> None:
    r = cli(tmp_path, "demo", "--model", "nope", "--speed", "0")
    assert r.returncode == 1  # the simulator, like the service, knows no such model
    no_traceback(r)
    assert r.stderr.count("is not in the dashscope_rt table") == 1
    assert "Model not found: nope" in r.stderr
    r = cli(tmp_path, "demo", "--speed", "0")
    assert r.returncode == 0, r.stderr
    assert "dashscope-rt chat --wav YOUR_QUESTION.wav" in r.stdout
    out = tmp_path / "reply.wav"
    r = subprocess.run(
        [sys.executable, "-m", "dashscope_rt", "demo", "--speed", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert "dashscope-rt chat --wav samples/assets/question.wav" in r.stdout
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/reply.wav" in ignored  # the demo's default output is not offered to git


# -- 9. out-of-range input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("chat", "--speed", "-1", "--text", "hi"),
        ("demo", "--speed", "-1"),
        ("demo", "--speed", "nan"),
        ("simulate", "--speed", "-2"),
    ],
)
def test_negative_speed_is_refused(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = cli(tmp_path, *args)
    assert r.returncode == 2
    no_traceback(r)
    assert "must be a number >= 0" in r.stderr


@pytest.mark.parametrize("fps", ["5", "0", "-1", "abc"])
def test_camera_fps_is_limited_to_the_service_rate(tmp_path: Path, fps: str) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "camera.py"), "--fps", fps],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(tmp_path, PYTHONPATH=str(ROOT)),
    )
    assert r.returncode == 2
    no_traceback(r)
    assert "at most 2" in r.stderr


# -- 12. package metadata, bench output ------------------------------------------------------------


def test_package_metadata() -> None:
    import importlib.metadata

    meta = importlib.metadata.metadata("dashscope-rt")
    assert meta["Author"]
    home = meta["Home-page"] or ""
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert home.startswith("https://") and {"Source", "Issues", "Changelog"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())


@pytest.mark.timeout(60)
def test_bench_output_json_writes_that_file(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--only", "none", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.read_text().startswith("{")


# -- wire check: a chat turn sends the whole file --------------------------------------------------


@pytest.mark.timeout(30)
def test_chat_wav_sends_the_whole_file_then_silence(tmp_path: Path, open_sim: Simulator) -> None:
    open_sim.script_transcripts([QUESTION])
    wav = _wav(tmp_path, "q.wav", QUESTION, rate=44100)
    r = cli(tmp_path, "chat", "--wav", str(wav), "--speed", "0", "--url", open_sim.url)
    assert r.returncode == 0, r.stderr
    sent = sum(
        len(base64.b64decode(e["audio"]))
        for e in open_sim.last.received_events("input_audio_buffer.append")
    )
    frames = (len(synthesize(QUESTION, 44100)) // 2) + 44100 * 200 // 1000
    assert sent >= frames / 44100 * 16000 * 2 + 0.8 * 16000 * 2


def test_sigint_exit_code_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{128 + signal.SIGINT} interrupted" in readme
