"""Every command the README shows, run as written (a fresh folder, no key, no sound card): the
walk-through in README order against ``dashscope-rt simulate --any-key``, the synopses of the
command table checked against ``--help``, and an explicit reason for each command not run."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("websockets")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEFAULT_PORT = 8765

NOT_RUN = {
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && pytest': (
        "the test suite itself"
    ),
    'pip install -e ".[bench]"': "an install step (CI installs the dev extra)",
    "pip install 'dashscope-rt[audio]'": "an install step",
    "pip install 'dashscope-rt[testing]'": "an install step (part of the dev extra)",
    "pip install flask flask-sock": "an install step (part of the dev extra)",
    "pip install": "a phrase, not a command",
    "python bench/run.py": "a minute of full CPU; test_bench_output_json_writes_that_file runs it",
    "python bench/soak.py --minutes 10": "ten minutes by design",
    "python bench/bench_phone.py": "a benchmark (CPU-bound timing loops); run by hand",
    "ffmpeg -i question.mp3 -ac 1 -ar 16000 question.wav": "ffmpeg is not a dependency",
    "dashscope-rt chat --mic [--play]": "a synopsis; needs a microphone (see the no-device tests)",
}


def readme_commands() -> list[str]:
    """Each command line of the README's bash blocks and each command-like code span, once."""
    found: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                found.append(line)
    for span in re.findall(r"`([^`\n]+)`", README):
        if re.match(r"(dashscope-rt|python |pip |export |ffmpeg |sox )", span):
            found.append(span)
    return list(dict.fromkeys(found))


def is_synopsis(command: str) -> bool:
    return bool(re.search(r"\[|\bFILE\b|\bNAME\b|\"\.\.\.\"|/use/", command))


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:  # taken on this machine: the same walk-through on another port
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "dashscope-rt":
        return [sys.executable, "-m", "dashscope_rt", *words[1:]]
    if words[0] in ("python", "python3"):
        return [sys.executable, *words[1:]]
    raise AssertionError(f"not a command this test knows how to run: {command}")


class Walkthrough:
    """A user's terminal: a fresh folder (with the repository's samples), their environment."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.cwd = tmp_path / "work"
        self.cwd.mkdir()
        (self.cwd / "samples").symlink_to(ROOT / "samples")
        self.port = port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
        self.env["DASHSCOPE_RT_CONFIG_DIR"] = str(tmp_path / "config")
        self.env["PYTHONIOENCODING"] = "utf-8"
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), self.env.get("PYTHONPATH", "")])
        self.ran: list[str] = []
        self.background: list[subprocess.Popen[str]] = []

    def _as_written(self, command: str) -> str:
        return command.replace(f":{DEFAULT_PORT}/", f":{self.port}/")

    def run(
        self, command: str, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.ran.append(command)
        command = self._as_written(command)
        if command.startswith("export "):
            name, _, value = command[len("export ") :].partition("=")
            self.env[name] = value
            return subprocess.CompletedProcess(command, 0, "", "")
        r = subprocess.run(
            _argv(command),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            cwd=self.cwd,
            env=self.env,
            input=stdin if stdin is not None else "",
        )
        assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        return r

    def start(self, command: str, ready: str) -> subprocess.Popen[str]:
        """``command &``: started in the background; returns once ``ready`` was printed."""
        self.ran.append(command)
        argv = _argv(self._as_written(command).rstrip("&").strip())
        if argv[-1] == "--any-key" and self.port != DEFAULT_PORT:
            argv += ["--port", str(self.port)]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.cwd,
            env=self.env,
        )
        self.background.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if ready in line:
                return proc
            assert time.monotonic() < deadline, f"{command}: no {ready!r}"
        raise AssertionError(f"{command} ended before printing {ready!r}")

    def stop_all(self) -> None:
        for proc in self.background:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.mark.timeout(240)
def test_readme_walkthrough(tmp_path: Path) -> None:
    """The README top to bottom, as a new user would run it."""
    user = Walkthrough(tmp_path, _free_port(DEFAULT_PORT))
    try:
        setup = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[testing]"'
        user.ran.append(setup + " && dashscope-rt demo")  # CI did the install; run what follows
        out = user.run("dashscope-rt demo").stdout
        assert "you said   “Hello! What is the weather like in Hangzhou today?”" in out
        assert (user.cwd / "reply.wav").stat().st_size > 44

        user.start("dashscope-rt simulate --any-key &", "Simulator listening on")
        out = user.run(
            "python samples/quickstart.py --url ws://127.0.0.1:8765/api-ws/v1/realtime"
        ).stdout
        assert "saved reply.wav" in out
        user.run("export DASHSCOPE_RT_URL=ws://127.0.0.1:8765/api-ws/v1/realtime")
        user.ran += ["dashscope-rt", "dashscope-rt simulate", "dashscope-rt chat --wav"]

        out = user.run("dashscope-rt config add sg --region intl --voice Cherry").stdout
        assert "Saved profile 'sg'" in out
        out = user.run(
            "dashscope-rt --profile sg chat --wav samples/assets/question.wav --out answer.wav"
        ).stdout
        assert "── turn 1 · completed" in out and "saved answer.wav" in out
        assert "voice Cherry" in out
        out = user.run("dashscope-rt config show sg").stdout
        assert "profile:   sg" in out and "voice:     Cherry" in out
        out = user.run("dashscope-rt chat", stdin="Hello there\n/exit\n").stdout
        assert "assistant: You said: Hello there" in out

        _flask(user, "python samples/flask_app/app.py --url ws://127.0.0.1:8765/api-ws/v1/realtime")
    finally:
        user.stop_all()
    leftover = [
        c
        for c in readme_commands()
        if c not in user.ran and c not in NOT_RUN and not is_synopsis(c)
    ]
    assert not leftover, f"README commands neither run nor excused: {leftover}"


def _flask(user: Walkthrough, command: str) -> None:
    if importlib.util.find_spec("flask_sock") is None or _free_port(5000) != 5000:
        user.ran.append(command)  # no Flask here, or port 5000 taken: the app's own tests run it
        return
    user.start(command, "Running on")
    with urllib.request.urlopen("http://127.0.0.1:5000", timeout=10) as page:
        assert page.status == 200 and b"Talk to Qwen-Omni" in page.read()


def test_readme_synopses_match_the_help() -> None:
    """The command table's synopses: every sub-command and flag it names exists."""
    synopses = [c for c in readme_commands() if is_synopsis(c) and c.startswith("dashscope-rt")]
    assert len(synopses) >= 6
    for synopsis in synopses:
        words = synopsis.replace("[", " ").replace("]", " ").split()[1:]
        command = [w for w in words if not w.startswith("-") and w.islower() and w.isalpha()]
        variants = [command]
        if any("/" in w for w in words):  # config add/use/delete NAME
            head, alts = words[0], next(w for w in words if "/" in w)
            variants = [[head, alt] for alt in alts.split("/")]
        flags = [w for w in words if w.startswith("--")]
        for sub in variants:
            r = subprocess.run(
                [sys.executable, "-m", "dashscope_rt", *sub[:2], "--help"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert r.returncode == 0, (synopsis, r.stderr)
            for flag in flags:
                assert flag in r.stdout, (synopsis, flag)


def test_readme_links_are_absolute() -> None:
    """Relative links break on the package index page, where the README is shown."""
    links = re.findall(r"\]\(([^)]+)\)", README) + re.findall(r"<(https?://[^>]+)>", README)
    assert links
    for link in links:
        assert link.startswith(("https://", "http://127.0.0.1", "#")), link
