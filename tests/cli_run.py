"""Run the ``dashscope-rt`` command as a user would: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without any DASHSCOPE_* variable, with its own config folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE")}
    env["DASHSCOPE_RT_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def cli(
    tmp_path: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """``dashscope-rt ARGS`` in ``tmp_path``; ``env`` replaces the environment, else ``extra``
    variables are added to :func:`cli_env`."""
    return subprocess.run(
        [sys.executable, "-m", "dashscope_rt", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        cwd=tmp_path,
        env=env if env is not None else cli_env(tmp_path, **extra),
    )
