"""Frames reconstructed from traffic captured on the real service (tests/fixtures/real/).

Every received frame must decode to its typed class with every field intact: a field the class
has must hold the wire value, and every wire key must survive in ``raw``. The sequence tests pin
what the captures show about the protocol (docs/protocol.md, "Simulator vs service").
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from dashscope_rt.errors import ConnectionClosed
from dashscope_rt.events import (
    SERVER_EVENT_TYPES,
    ErrorEvent,
    ResponseAudioDelta,
    SessionUpdated,
    decode,
)
from dashscope_rt.transport import Transport

REAL = Path(__file__).parent / "fixtures" / "real"
FILES = sorted(REAL.glob("*.jsonl"))


def _lines(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows[0], rows[1:]


def _frames(name: str, direction: str | None = None) -> list[dict[str, Any]]:
    _, rows = _lines(REAL / name)
    return [r for r in rows if "frame" in r and direction in (None, r["dir"])]


def _recv_cases() -> list[Any]:
    cases = []
    for path in FILES:
        _, rows = _lines(path)
        for n, row in enumerate(rows, start=2):
            if row["dir"] == "recv" and "frame" in row:
                cases.append(pytest.param(row, id=f"{path.stem}:{n}:{row['frame']['type']}"))
    return cases


OMUGW = "omugw_qwen3.5-omni-flash.jsonl"
AI = "ai-interviewer_qwen3.8-omni-flash.jsonl"


# -- the files themselves -----------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_file_names_its_source(path: Path) -> None:
    header, rows = _lines(path)
    source = header["source"]
    assert source["repo"] and source["paths"]
    assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", header["captured"])
    assert header["model"] and header["reconstruction"]
    for ref in source["paths"].values():
        assert ref["path"]
        assert ref["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", ref["commit"])
    assert rows and all(r["from"] in source["paths"] for r in rows)
    assert all(
        r["shape"] in {"captured", "session-captured", "type-only", "assumed", "reported"}
        for r in rows
    )


def test_ids_keep_the_service_prefixes() -> None:
    """Our ids replace the captured ones but keep their style (prefix + 21 characters)."""
    seen = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for prefix in ("event", "sess", "item", "resp", "conv"):
            for found in re.findall(rf'": "({prefix}_[A-Za-z0-9]+)"', text):
                assert len(found) == len(prefix) + 22, found
                seen += 1
        for found in re.findall(r'": "(call_[0-9a-f]+)"', text):
            assert len(found) == 29, found
    assert seen > 100


# -- decoding: every field intact ---------------------------------------------------------------


def _same(typed: Any, wire: Any, where: str) -> None:
    """``typed`` (a decoded value) carries ``wire`` without loss."""
    if attrs.has(type(typed)):
        assert isinstance(wire, dict), where
        _fields_intact(typed, wire, where)
    elif isinstance(typed, tuple):
        assert isinstance(wire, list) and len(typed) == len(wire), where
        for n, (t, w) in enumerate(zip(typed, wire, strict=True)):
            _same(t, w, f"{where}[{n}]")
    else:
        assert typed == wire and type(typed) is type(wire), f"{where}: {typed!r} != {wire!r}"


def _fields_intact(obj: Any, wire: Mapping[str, Any], where: str) -> None:
    names = {f.name for f in attrs.fields(type(obj))} - {"raw"}
    raw = obj.raw
    for key, value in wire.items():
        path = f"{where}.{key}"
        if key == "delta" and isinstance(obj, ResponseAudioDelta):
            assert obj.audio == base64.b64decode(value), path  # raw drops the base64 text
            continue
        assert raw.get(key) == value, f"{path} lost from raw"
        if key in names:
            _same(getattr(obj, key), value, path)
    if isinstance(obj, ResponseAudioDelta):
        assert "delta" not in raw  # the documented exception: raw is the frame without delta
    else:
        assert dict(raw) == dict(wire), f"{where}: raw differs from the frame"


@pytest.mark.parametrize("row", _recv_cases())
def test_every_frame_decodes_to_its_class_with_every_field_intact(row: dict[str, Any]) -> None:
    frame = row["frame"]
    event = decode(json.dumps(frame, ensure_ascii=False))
    assert type(event) is SERVER_EVENT_TYPES[frame["type"]]
    assert event.type == frame["type"]
    _fields_intact(event, frame, frame["type"])


def test_audio_deltas_keep_their_captured_length() -> None:
    """qwen3.8 sent 320 ms per delta: 15360 bytes of 24 kHz mono PCM16."""
    rows = [r for r in _frames(AI, "recv") if r["frame"]["type"] == "response.audio.delta"]
    assert len(rows) == 6
    for row in rows:
        event = decode(json.dumps(row["frame"]))
        assert isinstance(event, ResponseAudioDelta)
        assert len(event.audio) == row["bytes"] == 15360
        assert len(event.audio) / 2 / 24000 == pytest.approx(0.32)


def test_error_events_with_empty_fields_keep_them_empty() -> None:
    rows = _frames("reported_error-events.jsonl", "recv")
    events = [decode(json.dumps(r["frame"])) for r in rows]
    assert all(isinstance(e, ErrorEvent) for e in events)
    empty_id, _, no_id = events
    assert isinstance(empty_id, ErrorEvent) and isinstance(no_id, ErrorEvent)
    assert empty_id.event_id == "" and empty_id.error.code == "" and empty_id.error.param == ""
    assert "Voice 'Chelsie' is not supported." in (empty_id.error.message or "")
    assert no_id.event_id is None and no_id.error.param is None and no_id.error.event_id is None


# -- what the captured sequences show -----------------------------------------------------------


def _types_after(rows: list[dict[str, Any]], start: int) -> list[str]:
    return [r["frame"]["type"] for r in rows[start:] if r["dir"] == "recv"]


def test_qwen38_cancel_sequence() -> None:
    """After response.cancel: one more audio delta, then the done chain, status cancelled."""
    rows = _frames(AI)
    cancel = next(n for n, r in enumerate(rows) if r["frame"]["type"] == "response.cancel")
    before = [r for r in rows[:cancel] if r["frame"]["type"] == "response.audio.delta"]
    after = _types_after(rows, cancel + 1)
    assert len(before) == 5
    assert after == [
        "response.audio.delta",
        "response.audio_transcript.done",
        "response.audio.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    done = decode(json.dumps(rows[-1]["frame"]))
    assert done.type == "response.done" and done.response.status == "cancelled"  # type: ignore[union-attr]


def test_client_item_id_is_replaced_by_the_server() -> None:
    rows = [r for r in _frames(OMUGW) if r["from"] == "identity"]
    sent, created = rows[0]["frame"], decode(json.dumps(rows[1]["frame"]))
    assert sent["item"]["id"] == "record_user_1"
    assert created.item is not None  # type: ignore[union-attr]
    assert created.item.id.startswith("item_")  # type: ignore[union-attr]
    assert created.item.id != sent["item"]["id"]  # type: ignore[union-attr]


def _updated_after(name: str, sent_null: bool) -> list[SessionUpdated]:
    rows = _frames(name)
    out = []
    for n, row in enumerate(rows):
        session = row["frame"].get("session")
        if row["dir"] != "send" or row["frame"]["type"] != "session.update":
            continue
        if ("turn_detection" in session and session["turn_detection"] is None) == sent_null:
            event = decode(json.dumps(rows[n + 1]["frame"]))
            assert isinstance(event, SessionUpdated)
            out.append(event)
    return out


def test_updated_omits_turn_detection_when_null_was_sent() -> None:
    nulled = _updated_after(OMUGW, True) + _updated_after(AI, True)
    kept = _updated_after(OMUGW, False)
    assert len(nulled) == 2 and kept
    for event in nulled:
        assert "turn_detection" not in event.session.raw and event.session.turn_detection is None
    for event in kept:  # not sent: the echo shows the unchanged default
        assert event.session.turn_detection is not None
        assert event.session.turn_detection["type"] == "server_vad"


def test_session_echoes_carry_no_sampling_or_search_fields() -> None:
    absent = {
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "enable_search",
        "search_options",
        "tool_choice",
        "max_response_output_token",
        "repetition_penalty",
        "presence_penalty",
    }
    sessions = [
        r["frame"]["session"]
        for r in _frames(OMUGW, "recv") + _frames(AI, "recv")
        if r["frame"]["type"].startswith("session.")
    ]
    assert len(sessions) == 8
    for session in sessions:
        assert not absent & set(session)
        assert "audio" not in session  # flat formats on qwen3.5-flash and qwen3.8
    created38 = _frames(AI, "recv")[0]["frame"]["session"]
    assert (
        created38["voice"],
        created38["input_audio_format"],
        created38["output_audio_format"],
    ) == (
        "Chelsie",
        "pcm16",
        "pcm24",
    )
    assert created38["input_audio_transcription"] == {"model": "gummy-realtime-v1"}


def test_conversation_items_chain_with_previous_item_id() -> None:
    created = [
        decode(json.dumps(r["frame"]))
        for r in _frames(OMUGW, "recv")
        if r["from"] == "recording" and r["frame"]["type"] == "conversation.item.created"
    ]
    assert created[0].previous_item_id is None  # type: ignore[union-attr]
    for prev, cur in itertools.pairwise(created):
        assert cur.previous_item_id == prev.item.id  # type: ignore[union-attr]


# -- the close frame of "Internal service error: null" ------------------------------------------


@pytest.mark.timeout(15)
def test_internal_error_close_frame_reaches_the_sdk_as_1011() -> None:
    websockets_sync = pytest.importorskip("websockets.sync.server")
    row = _lines(REAL / "bailian-speech-demo_issue46.jsonl")[1][0]
    payload = bytes.fromhex(row["close"]["payload_hex"])
    assert int.from_bytes(payload[:2], "big") == row["close"]["code"] == 1011
    reason = payload[2:].decode()

    def handler(conn: Any) -> None:
        conn.close(1011, reason)

    with websockets_sync.serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        tr = Transport.connect(f"ws://127.0.0.1:{port}/", headers={}, timeout=5)
        try:
            with pytest.raises(ConnectionClosed) as info:
                tr.recv()
        finally:
            tr.release()
            server.shutdown()
        thread.join(5)
    assert (info.value.code, info.value.reason, info.value.by_server) == (1011, reason, True)
