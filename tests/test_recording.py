"""The session log format: write, read back, thread safety, no secrets."""

from __future__ import annotations

import base64
import json
import threading
import wave
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashscope_rt.recording import FORMAT, LogReader, LogWriter


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_round_trip_with_audio_refs(tmp_path: Path) -> None:
    pcm_in = bytes(range(256)) * 10
    pcm_out = b"\x01\x02" * 1200
    with LogWriter(tmp_path, "qwen3-omni-flash-realtime", 16000, 24000) as w:
        w.record_received({"type": "session.created", "session": {"voice": "Cherry"}})
        w.record_sent({"type": "input_audio_buffer.append", "audio": b64(pcm_in)}, audio=pcm_in)
        w.record_sent({"type": "input_audio_buffer.append", "audio": b64(pcm_in[:100])})
        w.record_received({"type": "response.audio.delta", "delta": b64(pcm_out)}, audio=pcm_out)
        w.record_sent({"type": "input_image_buffer.append", "image": b64(b"\xff\xd8\xffJPEG")})
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == FORMAT and header["model"] == "qwen3-omni-flash-realtime"
    second = json.loads(lines[2])
    assert second["dir"] == "send"
    assert second["event"]["audio"] == {
        "audio_ref": {"file": "input.wav", "offset": 0, "length": len(pcm_in)}
    }
    assert json.loads(lines[3])["event"]["audio"]["audio_ref"]["offset"] == len(pcm_in)
    with wave.open(str(tmp_path / "output.wav")) as wf:
        assert wf.getframerate() == 24000 and wf.readframes(wf.getnframes()) == pcm_out
    reader = LogReader(tmp_path)
    assert reader.header.input_rate == 16000 and reader.header.output_rate == 24000
    entries = list(reader)
    assert [e.type for e in entries] == [
        "session.created",
        "input_audio_buffer.append",
        "input_audio_buffer.append",
        "response.audio.delta",
        "input_image_buffer.append",
    ]
    assert entries[1].audio == pcm_in and entries[1].event["audio"] == b64(pcm_in)
    assert entries[2].audio == pcm_in[:100]
    assert entries[3].event["delta"] == b64(pcm_out)
    assert entries[4].event["image"] == b64(b"\xff\xd8\xffJPEG")
    ts = [e.t for e in entries]
    assert ts == sorted(ts) and ts[0] >= 0


def test_never_writes_secrets(tmp_path: Path) -> None:
    with LogWriter(tmp_path, "m") as w:
        w.record_sent(
            {"type": "x", "api_key": "sk-secret", "nested": {"Authorization": "Bearer sk-secret"}}
        )
    assert "sk-secret" not in (tmp_path / "events.jsonl").read_text()


def test_reader_handles_unclosed_writer(tmp_path: Path) -> None:
    w = LogWriter(tmp_path, "m")
    w.record_sent({"type": "input_audio_buffer.append"}, audio=b"\x05\x00" * 50)
    w.flush()
    (entry,) = list(LogReader(tmp_path))
    assert entry.audio == b"\x05\x00" * 50
    w.close()
    w.close()  # idempotent
    w.record_sent({"type": "late"})  # ignored after close


def test_reader_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(ValueError):
        LogReader(tmp_path)


@pytest.mark.timeout(30)
def test_thread_safe_writes(tmp_path: Path) -> None:
    chunk = b"\x10\x00" * 160

    def work(n: int) -> None:
        for i in range(200):
            w.record_sent({"type": "input_audio_buffer.append", "n": n, "i": i}, audio=chunk)
            w.record_received({"type": "response.text.delta", "delta": f"{n}-{i}"})

    w = LogWriter(tmp_path, "m")
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    entries = list(LogReader(tmp_path))
    assert len(entries) == 1600
    appends = [e for e in entries if e.type == "input_audio_buffer.append"]
    assert all(e.audio == chunk for e in appends)
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()[1:]]
    refs = [x["event"]["audio"]["audio_ref"] for x in lines if "audio" in x["event"]]
    offsets = sorted(r["offset"] for r in refs)
    assert offsets == [i * len(chunk) for i in range(800)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=5))
@settings(
    max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
def test_arbitrary_events_round_trip(tmp_path: Path, extra: dict[str, Any]) -> None:
    from dashscope_rt.recording import _SECRET_KEYS

    extra = {
        k: v
        for k, v in extra.items()
        if k.lower() not in _SECRET_KEYS and k not in ("type", "delta")
    }
    d = tmp_path / "h"
    event = {"type": "response.text.delta", **extra}
    with LogWriter(d, "m") as w:
        w.record_received(event)
    (entry,) = list(LogReader(d))
    if any(
        isinstance(v, dict) and any(str(k).lower() in _SECRET_KEYS for k in v)
        for v in extra.values()
    ):
        return
    assert entry.event == json.loads(json.dumps(event))
