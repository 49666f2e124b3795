"""Run a command on a pseudo-terminal, as a user at a terminal would: type, press Ctrl+C, read."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


class PtyProcess:
    """A child process whose stdin/stdout/stderr is a terminal (its controlling terminal, so
    Ctrl+C sends SIGINT as it would for a user)."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: str) -> None:
        # Not pty.fork(): forking a multi-threaded pytest process can deadlock the child (Python
        # 3.13 warns). subprocess forks safely in C; the child starts a new session, and a small
        # trampoline opens the terminal by name, which makes it the controlling terminal.
        fd, slave = pty.openpty()
        trampoline = (
            "import os, sys; t = os.open(sys.argv[1], os.O_RDWR); "
            "[os.dup2(t, n) for n in (0, 1, 2)]; os.close(t); "
            "os.execvpe(sys.argv[2], sys.argv[2:], os.environ)"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, os.ttyname(slave), *argv],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # The parent keeps the terminal open until the child is reaped: closed earlier, the
        # master could read EIO before the child has opened it.
        self.pid, self.fd, self._slave = proc.pid, fd, slave
        self._proc = proc
        self.output = ""
        self.returncode: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, pattern: str, timeout: float = 15.0, *, after: int = 0) -> re.Match[str]:
        """Wait until ``pattern`` appears in the output (from offset ``after``)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.output, after)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.1)):
                m = rx.search(self.output, after)
                if m:
                    return m
                raise AssertionError(f"{pattern!r} not seen; output so far:\n{self.output}")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def ctrl_c(self) -> None:
        """What a user's Ctrl+C does: the terminal sends SIGINT to the foreground job."""
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float = 20.0) -> int:
        """Read until the child exits; returns its exit status (killing it after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05):
                    if not select.select([self.fd], [], [], 0)[0]:
                        break
                self.returncode = os.waitstatus_to_exitcode(status)
                self._proc.returncode = self.returncode  # reaped here, not by Popen
                os.close(self.fd)
                os.close(self._slave)
                return self.returncode
            self._read(0.05)
        os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        os.close(self.fd)
        os.close(self._slave)
        raise AssertionError(f"still running after {timeout} s; output:\n{self.output}")
