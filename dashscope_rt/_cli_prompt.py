"""``dashscope-rt chat``'s interactive prompt: text lines, and the slash commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._cli_common import EXIT_OK, EXIT_USAGE, CliError, read_wav_arg

if TYPE_CHECKING:
    from ._cli_chat import ChatClient

__all__ = ["HELP", "run_prompt"]

HELP = """\
Type a message (models that take text), or a command:
  /wav FILE      send a WAV file as a spoken turn
  /voice NAME    change the voice
  /clear         start a new conversation (fresh session)
  /exit          leave (also Ctrl+D or Ctrl+C)"""


def run_prompt(client: ChatClient) -> int:
    """A prompt: text lines, ``/wav``, ``/voice``, ``/clear``, ``/exit``."""
    client.con.line(HELP)
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            client.con.line()
            return EXIT_OK
        except KeyboardInterrupt:
            client.con.line("\nBye.")
            return EXIT_OK
        if not line:
            continue
        try:
            if not _command(client, line):
                return EXIT_OK
        except CliError as exc:
            client.con.error(exc.message)
        except KeyboardInterrupt:
            client.interrupt()
            client.con.line("(interrupted)")
            client.settle()


def _command(client: ChatClient, line: str) -> bool:
    """Run one line; False means leave."""
    if not line.startswith("/"):
        client.reopen_if_closed()
        client.send_text(line)
        return True
    cmd, _, rest = line.partition(" ")
    rest = rest.strip()
    if cmd in ("/exit", "/quit"):
        return False
    if cmd == "/help":
        client.con.line(HELP)
    elif cmd == "/wav":
        if not rest or not Path(rest).is_file():
            raise CliError(f"/wav needs an existing WAV file, got {rest!r}", EXIT_USAGE)
        wav = read_wav_arg(Path(rest))
        client.reopen_if_closed()
        client.send_wav(Path(rest), speed=client.args.speed, wav=wav)
    elif cmd == "/voice":
        if not rest:
            raise CliError("/voice needs a name, e.g. /voice Cherry", EXIT_USAGE)
        client.reopen_if_closed()
        client.change_voice(rest)
    elif cmd == "/clear":
        client.close()
        client.open()
        client.con.line(client.con.dim("new conversation"))
    else:
        raise CliError(f"unknown command {cmd}; /help lists them", EXIT_USAGE)
    return True
