"""The probe's report: the steps, the findings and the ``Behaviour`` they add up to, as Markdown
to paste into an issue (and as JSON)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import attrs

from .._version import __version__
from ._analysis import Finding
from ._script import Step

__all__ = ["ProbeReport"]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


@attrs.frozen(kw_only=True)
class ProbeReport:
    """What a probe run saw. ``behaviour`` is the simulator's ``Behaviour`` settings the
    service matched (only the points the run settled)."""

    model: str
    endpoint: str
    created: str
    steps: tuple[Step, ...]
    findings: tuple[Finding, ...]
    trace: str
    """The directory of the session logs (``main/``, ``bad_voice/``; the simulator replays each)."""
    sdk_version: str = __version__
    python: str = platform.python_version()

    @property
    def behaviour(self) -> Mapping[str, Any]:
        """``{setting: value}`` for every finding that settles a ``Behaviour`` setting."""
        return {
            f.setting: f.value
            for f in self.findings
            if f.setting is not None and f.value is not None
        }

    def behaviour_call(self) -> str:
        """``Behaviour(name=value, ...)``: the settings as Python."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.behaviour.items())
        return f"Behaviour({args})"

    def markdown(self) -> str:
        """The report as Markdown, ready to paste into an issue."""
        lines = [
            f"### dashscope-rt probe: `{self.model}`",
            "",
            f"dashscope_rt {self.sdk_version} · Python {self.python} · {self.created} · "
            f"`{self.endpoint}`",
            "",
            "| Step | Result |",
            "|---|---|",
        ]
        marks = {True: "ok", False: "**failed**", None: "skipped"}
        for s in self.steps:
            lines.append(f"| {_cell(s.name)} | {marks[s.ok]}: {_cell(s.detail)} |")
        lines += ["", "| Point | Observed | `Behaviour` |", "|---|---|---|"]
        for f in self.findings:
            setting = f"`{f.setting}={f.value!r}`" if f.setting and f.value is not None else "—"
            lines.append(f"| {_cell(f.point)} | {_cell(f.observed)} | {setting} |")
        lines += [
            "",
            "The service matched:",
            "",
            "```python",
            self.behaviour_call(),
            "```",
            "",
            f"Trace (redacted session logs; `Simulator(replay=DIR)` replays each): `{self.trace}`",
        ]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "created": self.created,
            "sdk_version": self.sdk_version,
            "python": self.python,
            "steps": [attrs.asdict(s) for s in self.steps],
            "findings": [attrs.asdict(f) for f in self.findings],
            "behaviour": dict(self.behaviour),
            "trace": self.trace,
        }
