"""``dashscope_rt.probe``: a scripted conformance session against the real service.

::

    from dashscope_rt import probe
    report = probe.run("qwen3.8-omni-flash-realtime", workspace="ws-...", out_dir="probe-out")
    print(report.markdown())   # paste into an issue; attach probe-out/trace.zip

It runs the script of :mod:`dashscope_rt.probe._script` (two sessions), writes each session's
log (redacted: no key, no workspace id) under ``out_dir``, then reads the logs back and reports,
point by point, what the service did and which setting of the simulator's ``Behaviour``
matches it (docs/protocol.md §15). ``dashscope-rt probe`` runs the same from the command line.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..models import ModelInfo, get_model
from ..recording import LogReader
from . import _analysis as an
from ._analysis import Finding, Frame
from ._report import ProbeReport
from ._script import BAD_VOICE, FINISH_WAIT_S, Outcome, Script, Step, bundled_speech

__all__ = ["BAD_VOICE", "Finding", "Frame", "Outcome", "ProbeReport", "Step", "analyse", "run"]

_REDACTED = "<redacted>"


def run(
    model: str | ModelInfo,
    *,
    out_dir: str | Path = "dashscope-rt-probe",
    api_key: str | None = None,
    region: str = "cn",
    workspace: str | None = None,
    url: str | None = None,
    speech: tuple[bytes, int] | None = None,
    timeout: float = 30.0,
    finish_wait: float = FINISH_WAIT_S,
    progress: Callable[[str], None] | None = None,
    **session_options: Any,
) -> ProbeReport:
    """Run the probe and return its report (also written as ``report.md``/``report.json``).

    ``speech``: ``(PCM16 mono bytes, rate)`` for the spoken turns (default: a bundled question;
    your own recorded speech is more reliable with the service's VAD). ``timeout`` bounds each
    turn; ``finish_wait`` is how long to wait for an answer to ``session.finish``.
    ``progress`` receives a line per step. Other options go to each
    :class:`~dashscope_rt.Session`.
    """
    info = model if isinstance(model, ModelInfo) else get_model(model)
    out = Path(out_dir)
    trace = out / "trace"
    if trace.exists():
        shutil.rmtree(trace)
    options = dict(session_options, api_key=api_key, region=region, workspace=workspace, url=url)
    script = Script(
        info,
        trace,
        speech=speech or bundled_speech(),
        timeout=timeout,
        finish_wait=finish_wait,
        progress=progress or (lambda _: None),
        options=options,
    )
    script.run_main()
    script.run_bad_voice()
    key = api_key if api_key is not None else os.environ.get("DASHSCOPE_API_KEY")
    secrets = [s for s in (key, workspace) if s]
    _redact(trace, secrets)
    endpoint = script.outcome.endpoint
    for secret in secrets:
        endpoint = endpoint.replace(secret, _REDACTED)
    report = analyse(trace, script.outcome, model=info.name, endpoint=endpoint)
    (out / "report.md").write_text(report.markdown(), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
    shutil.make_archive(str(out / "trace"), "zip", trace)
    return report


def analyse(
    trace: str | Path, outcome: Outcome, *, model: str = "", endpoint: str = ""
) -> ProbeReport:
    """The report for a probe trace directory (``main/`` and ``bad_voice/`` session logs)."""
    trace = Path(trace)
    main, rate = _frames(trace / "main")
    bad, _ = _frames(trace / "bad_voice")
    findings = [
        an.session_echo(main),
        an.error_ids(main + bad),
        an.voice_check(bad, BAD_VOICE, outcome.voice_refused_at),
        an.client_item_id(main),
        *an.after_cancel(main),
        an.chunk_ms(main, rate),
        an.finish(main, outcome.finish_closed_after_s, outcome.finish_waited_s),
    ]
    return ProbeReport(
        model=model,
        endpoint=endpoint,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        steps=tuple(outcome.steps),
        findings=tuple(findings),
        trace=str(trace),
    )


def _frames(log_dir: Path) -> tuple[list[Frame], int]:
    if not (log_dir / "events.jsonl").is_file():
        return [], 24000
    reader = LogReader(log_dir)
    frames = [Frame(e.dir, e.event, len(e.audio) if e.audio is not None else None) for e in reader]
    return frames, reader.header.output_rate


def _redact(trace: Path, secrets: list[str]) -> None:
    """Replace every secret string in the logs (the logs never hold the key; this makes sure)."""
    for path in trace.glob("*/events.jsonl"):
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            text = text.replace(secret, _REDACTED)
            text = text.replace(json.dumps(secret)[1:-1], _REDACTED)
        path.write_text(text, encoding="utf-8")
