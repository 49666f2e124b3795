"""The public surface is typed for the user: ``mypy --strict`` catches a misused handler.

Each test writes a small user script to a temporary directory and runs mypy on it in a
subprocess (with the installed package, whose ``py.typed`` makes it checked).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

pytestmark = pytest.mark.timeout(180)


ROOT = Path(__file__).resolve().parent.parent

# Only the user's script is reported on; the package is read like an installed library.
CONFIG = """
[mypy]
follow_imports = silent
[mypy-soxr.*,websocket.*,pybase64.*]
ignore_missing_imports = True
"""


def _mypy(tmp_path: Path, source: str) -> tuple[int, str]:
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(source))
    config = tmp_path / "mypy.ini"
    config.write_text(CONFIG)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--config-file",
            str(config),
            str(script),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


CORRECT = """
    from __future__ import annotations

    from collections.abc import Iterator

    import dashscope_rt as rt
    from dashscope_rt import events


    def build() -> rt.Session:
        s = rt.Session("qwen3-omni-flash-realtime", api_key="sk-x", url="ws://127.0.0.1:9/")
        chunks: list[bytes] = []
        s.on_audio_delta(lambda ev: chunks.append(ev.audio))

        @s.on_transcript_delta
        def show(ev: events.ResponseAudioTranscriptDelta) -> None:
            print(ev.delta)

        @s.on_response_done
        def done(reply: rt.Reply) -> None:
            print(reply.text, reply.duration)

        @s.on(events.InputAudioBufferSpeechStarted)
        def barge(ev: events.InputAudioBufferSpeechStarted) -> None:
            print(ev.item_id)

        s.on("response.done", lambda ev: print(ev))

        @s.on_tool_call
        def call(c: rt.ToolCall) -> dict[str, object]:
            return c.parsed_arguments()

        @s.on_close
        def bye(code: int | None, reason: str, by_server: bool) -> None:
            print(code, reason, by_server)

        s.on_close(lambda c: print(c.code, c.error))
        s.on_error(lambda e: print(e))
        show(events.ResponseAudioTranscriptDelta(delta="x"))  # still the user's function
        return s


    def pull(s: rt.Session) -> Iterator[str]:
        for ev in s.events(timeout=1):
            if isinstance(ev, events.ResponseAudioDelta):
                yield str(len(ev.audio))
            elif isinstance(ev, events.Closed):
                yield str(ev.code)


    def turn(s: rt.Session) -> rt.Reply:
        return s.ask(text="hello", timeout=5)
"""


def test_a_correct_user_script_passes_strict_mypy(tmp_path: Path) -> None:
    code, out = _mypy(tmp_path, CORRECT)
    assert code == 0, out


SYNC = "def use(s: rt.Session) -> None:\n"
ASYNC = "async def use(s: rt.AsyncSession) -> None:\n"


@pytest.mark.parametrize(
    ("use", "snippet", "expected"),
    [
        (
            SYNC,
            "s.on_audio_delta(lambda ev: ev.nonexistent)",
            '"ResponseAudioDelta" has no attribute',
        ),
        (
            SYNC,
            "@s.on_audio_delta\ndef f(ev: events.ResponseTextDelta) -> None: ...",
            "incompatible type",
        ),
        (SYNC, "s.on(events.ResponseDone, lambda ev: ev.audio)", '"ResponseDone" has no attribute'),
        (SYNC, "s.on_response_done(lambda r: r.nonexistent)", '"Reply" has no attribute'),
        (SYNC, "s.on_tool_call(lambda c: c.arguments.nope)", '"str" has no attribute'),
        (SYNC, "for e in s.events():\n    print(e.audio)", 'has no attribute "audio"'),
        (SYNC, 's.ask("positional text")', "Too many positional arguments"),
        # AsyncSession shares the typed decorators: the same mistakes are caught there too.
        (
            ASYNC,
            "s.on_audio_delta(lambda ev: ev.nonexistent)",
            '"ResponseAudioDelta" has no attribute',
        ),
        (
            ASYNC,
            "@s.on_audio_delta\nasync def f(ev: events.ResponseTextDelta) -> None: ...",
            "incompatible type",
        ),
        (
            ASYNC,
            "s.on(events.ResponseDone, lambda ev: ev.audio)",
            '"ResponseDone" has no attribute',
        ),
        (ASYNC, "s.on_response_done(lambda r: r.nonexistent)", '"Reply" has no attribute'),
        (ASYNC, "s.on_tool_call(lambda c: c.arguments.nope)", '"str" has no attribute'),
        (ASYNC, "async for e in s.events():\n    print(e.audio)", 'has no attribute "audio"'),
        (ASYNC, 'await s.ask("positional text")', "Too many positional arguments"),
    ],
)
def test_a_misused_handler_fails_strict_mypy(
    tmp_path: Path, use: str, snippet: str, expected: str
) -> None:
    body = textwrap.indent(snippet, "    ")
    source = "import dashscope_rt as rt\nfrom dashscope_rt import events\n\n" + use + body + "\n"
    code, out = _mypy(tmp_path, source)
    assert code == 1, out
    assert expected in out, out


CORRECT_ASYNC = """
    from __future__ import annotations

    import dashscope_rt as rt
    from dashscope_rt import events


    async def run() -> rt.Reply:
        url = "ws://127.0.0.1:9/"
        async with rt.AsyncSession("qwen3-omni-flash-realtime", api_key="sk-x", url=url) as s:
            chunks: list[bytes] = []
            s.on_audio_delta(lambda ev: chunks.append(ev.audio))

            @s.on_transcript_delta
            async def show(ev: events.ResponseAudioTranscriptDelta) -> None:
                print(ev.delta)

            @s.on(events.InputAudioBufferSpeechStarted)
            async def barge(ev: events.InputAudioBufferSpeechStarted) -> None:
                print(ev.item_id)

            @s.on_response_done
            async def done(reply: rt.Reply) -> None:
                print(reply.text, reply.interrupted)

            @s.on_tool_call
            async def call(c: rt.ToolCall) -> dict[str, object]:
                return c.parsed_arguments()

            @s.on_close
            def bye(code: int | None, reason: str, by_server: bool) -> None:
                print(code, reason, by_server)

            s.on_error(lambda e: print(e))
            s.append_audio(b"\\x00\\x00" * 1600, 16000)
            s.report_interruption(120.0)
            print(len(s.history), s.last_reply, s.total_cost, s.input_rate)
            async for ev in s.events():
                if isinstance(ev, events.ResponseAudioDelta):
                    print(len(ev.audio))
                elif isinstance(ev, events.Closed):
                    break
            return await s.ask(text="hello", timeout=5)
"""


def test_a_correct_async_user_script_passes_strict_mypy(tmp_path: Path) -> None:
    code, out = _mypy(tmp_path, CORRECT_ASYNC)
    assert code == 0, out
