"""``dashscope_rt.probe`` and ``dashscope-rt probe`` (#10 item 6).

The analysis is checked on the real captures (tests/fixtures/real): it must read from them what
docs/protocol.md says they show. The whole probe runs against the simulator under several
``Behaviour`` variants, and its report must name each variant correctly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_rt import probe
from dashscope_rt.probe import _analysis as an
from dashscope_rt.probe._analysis import Frame
from dashscope_rt.session import Session

pytest.importorskip("websockets")

from dashscope_rt.testing import Behaviour, Simulator

REAL = Path(__file__).parent / "fixtures" / "real"
KEY = "sk-test-probe-5ecret-k3y"
FLASH = "qwen3-omni-flash-realtime"
FLASH35 = "qwen3.5-omni-flash-realtime"


def _fixture(name: str, source: str | None = None) -> list[Frame]:
    rows = [json.loads(line) for line in (REAL / name).read_text(encoding="utf-8").splitlines()]
    return [
        Frame(r["dir"], r["frame"], r.get("bytes"))
        for r in rows[1:]
        if "frame" in r and source in (None, r["from"])
    ]


# -- the analysis, on captured traffic ------------------------------------------------------------


def test_the_qwen38_capture_reads_as_documented() -> None:
    frames = _fixture("ai-interviewer_qwen3.8-omni-flash.jsonl")
    audio, done = an.after_cancel(frames)
    assert (audio.setting, audio.value) == ("audio_after_cancel", 1)
    assert (done.setting, done.value) == ("cancel_sends_response_done", True)
    assert "'cancelled'" in done.observed
    assert an.chunk_ms(frames, 24000).value == 320
    echo = an.session_echo(frames)
    assert echo.value == "partial" and "omits it" in echo.observed


def test_the_qwen35_capture_reads_as_documented() -> None:
    contract = _fixture("omugw_qwen3.5-omni-flash.jsonl", "contract")
    assert an.session_echo(contract).value == "partial"
    identity = _fixture("omugw_qwen3.5-omni-flash.jsonl", "identity")
    kept = an.client_item_id(identity, "record_user_1")
    assert kept.value is False and "item_" in kept.observed


def test_reported_error_events_read_as_empty_ids() -> None:
    found = an.error_ids(_fixture("reported_error-events.jsonl"))
    assert found.value == "empty" and "empty, empty, absent" in found.observed


IDLE = "Conversation has none active response"  # a cancel that came too late, answered late


def test_finish_answers() -> None:
    finish = Frame("send", {"type": "session.finish", "event_id": "f1"})
    finished = Frame("recv", {"type": "session.finished"})
    late = Frame("recv", {"type": "error", "error": {"event_id": "c0", "message": "x"}})
    refused = Frame("recv", {"type": "error", "error": {"message": "invalid event type"}})
    cases = [
        ([finish, finished], 0.1, "finished_close"),
        ([finish, finished], None, "finished_open"),
        ([finish, late], None, "ignore"),  # an earlier request's error is no answer
        ([finish, late, refused], None, "refuse"),
        (
            [finish, Frame("recv", {"type": "error", "error": {"message": IDLE}}), finished],
            None,
            "finished_open",
        ),
        ([finish], 0.2, "close"),
        ([finish], None, "ignore"),
    ]
    for frames, closed, value in cases:
        assert an.finish(frames, closed, 5.0).value == value, (frames, closed)
    assert an.finish([], None, 5.0).value is None


# -- the whole probe against the simulator ---------------------------------------------------------


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "probe"


def _probe(sim: Simulator, model: str, out: Path, **kw: Any) -> probe.ProbeReport:
    return probe.run(model, api_key=KEY, url=sim.url, out_dir=out, timeout=20, **kw)


CAPTURED = {
    "session_echo": "partial",
    "error_ids": "empty",
    "voice_check": "response",
    "finish": "finished_open",
    "chunk_ms": 320,
}
DOCUMENTED = {
    "session_echo": "full",
    "error_ids": "present",
    "voice_check": "update",
    "finish": "finished_close",
    "chunk_ms": 100,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "expected",
    [
        CAPTURED,
        DOCUMENTED,
        {**CAPTURED, "error_ids": "absent", "finish": "refuse"},
        {**CAPTURED, "finish": "ignore", "voice_check": "update", "chunk_ms": 40},
    ],
    ids=["captured-defaults", "documented", "absent-ids-refuse", "ignore-finish"],
)
def test_the_report_names_each_variant(out: Path, expected: dict[str, Any]) -> None:
    behaviour = Behaviour(**{k: v for k, v in expected.items() if k != "finish"})
    behaviour.finish = None if expected["finish"] == "finished_open" else expected["finish"]
    with Simulator(api_key=KEY, behaviour=behaviour) as sim:
        report = _probe(sim, FLASH, out, finish_wait=0.5)
    assert report.steps[0].name == "handshake" and report.steps[0].ok
    matched = {k: report.behaviour.get(k) for k in expected}
    assert matched == expected, report.markdown()
    assert "Behaviour(session_echo=" in report.markdown()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "variant",
    [
        {"cancel_sends_response_done": True, "audio_after_cancel": 1},
        {"cancel_sends_response_done": False, "audio_after_cancel": 0},
    ],
)
def test_the_cancel_variants_are_told_apart(out: Path, variant: dict[str, Any]) -> None:
    behaviour = Behaviour(speed=2.0, keep_client_item_id=variant["audio_after_cancel"] == 0)
    for key, value in variant.items():
        setattr(behaviour, key, value)
    with Simulator(api_key=KEY, behaviour=behaviour) as sim:
        report = _probe(sim, FLASH35, out, finish_wait=0.5)
    matched = report.behaviour
    for key, value in variant.items():
        assert matched[key] == value, report.markdown()
    assert matched["keep_client_item_id"] is behaviour.keep_client_item_id
    assert matched["finish"] == "refuse"  # qwen3.5-flash refuses session.finish
    steps = {s.name: s for s in report.steps}
    assert steps["text input"].ok and steps["image turn"].ok and steps["cancel"].ok


@pytest.mark.timeout(60)
def test_files_are_written_redacted_and_the_trace_replays(out: Path) -> None:
    with Simulator(api_key=KEY) as sim:
        report = _probe(sim, FLASH, out, finish_wait=0.5)
    assert (out / "report.md").read_text(encoding="utf-8") == report.markdown()
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["behaviour"] == dict(report.behaviour) and data["model"] == FLASH
    texts = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    with zipfile.ZipFile(out / "trace.zip") as z:
        assert {"main/events.jsonl", "bad_voice/events.jsonl"} <= set(z.namelist())
        texts += [z.read(n) for n in z.namelist()]
    assert not any(KEY.encode() in t for t in texts)
    # The simulator replays the recorded session: the same session id comes back.
    recorded = [
        json.loads(line)
        for line in (out / "trace" / "main" / "events.jsonl").read_text().splitlines()[1:]
    ]
    created = next(e["event"] for e in recorded if e["event"].get("type") == "session.created")
    replay = Simulator(api_key=KEY, replay=out / "trace" / "main")
    with replay, Session(FLASH, api_key=KEY, url=replay.url) as s:
        assert s.session_id == created["session"]["id"]


def test_a_model_that_needs_a_workspace_is_refused_before_any_session(out: Path) -> None:
    from dashscope_rt.errors import InvalidInput

    with pytest.raises(InvalidInput, match="workspace="):
        probe.run("qwen3.8-omni-flash-realtime", api_key=KEY, out_dir=out)
    assert not (out / "report.md").exists()


@pytest.mark.timeout(60)
def test_cli_probe_prints_the_report(tmp_path: Path) -> None:
    env = {"DASHSCOPE_API_KEY": KEY, "DASHSCOPE_RT_CONFIG_DIR": str(tmp_path / "cfg")}
    with Simulator(api_key=KEY) as sim:
        proc = subprocess.run(
            [sys.executable, "-m", "dashscope_rt", "probe", "--url", sim.url, "--model", FLASH,
             "--out", str(tmp_path / "p"), "--timeout", "20"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=50,
            env={"PYTHONIOENCODING": "utf-8", **env},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "### dashscope-rt probe: `qwen3-omni-flash-realtime`" in proc.stdout
    assert "Behaviour(" in proc.stdout and "finish='finished_open'" in proc.stdout
    assert (tmp_path / "p" / "trace.zip").is_file()
    assert KEY not in proc.stdout + proc.stderr


def test_cli_probe_without_a_key(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dashscope_rt", "probe", "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=30,
        env={"DASHSCOPE_RT_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONIOENCODING": "utf-8"},
    )
    assert proc.returncode == 3 and "no API key" in proc.stderr


@pytest.fixture(autouse=True)
def _no_leak(no_thread_leak: Iterator[None]) -> Iterator[None]:
    yield
