"""History that survives: the bound, JSON export/import, context through instructions, rollover."""

from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import HistoryEntry, ReconnectPolicy, Session, SessionConfig
from dashscope_rt import events as ev
from dashscope_rt.conversation import Conversation
from dashscope_rt.errors import InvalidInput
from dashscope_rt.events import Reconnected, RolledOver
from dashscope_rt.history import (
    CONTEXT_HEADER,
    coerce_history,
    context_block,
    history_from_json,
    history_to_json,
    with_context,
)
from dashscope_rt.models import get_model
from dashscope_rt.testing import Behaviour, Simulator

FLASH = "qwen3-omni-flash-realtime"
PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-history"
MANUAL = SessionConfig(turn_detection=None, instructions="Be brief.")
FAST = ReconnectPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, model: str = PLUS, **kw: Any) -> Session:
    kw.setdefault("config", MANUAL)
    return Session(model, api_key=KEY, url=sim.url, close_timeout=2.0, **kw)


# -- the bound (sans-IO) ------------------------------------------------------------------------


def _ev(frame: dict[str, Any]) -> Any:
    return ev.decode(json.dumps(frame))


def _turn(conv: Conversation, n: int) -> None:
    """One voice turn as the server reports it: speech, transcripts, a response with usage."""
    item, rid = f"item_u{n}", f"resp_{n}"
    conv.receive(_ev({"type": "input_audio_buffer.speech_started", "item_id": item}))
    conv.receive(_ev({"type": "input_audio_buffer.speech_stopped", "item_id": item}))
    conv.receive(_ev({"type": "input_audio_buffer.committed", "item_id": item}))
    conv.receive(
        _ev(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "transcript": f"question number {n} " * 8,
            }
        )
    )
    conv.receive(_ev({"type": "response.created", "response": {"id": rid}}))
    for piece in ("The answer ", f"to {n} ", "is long enough " * 6):
        conv.receive(
            _ev({"type": "response.audio_transcript.delta", "response_id": rid, "delta": piece})
        )
    usage = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}
    done = {"id": rid, "status": "completed", "output": [], "usage": usage}
    conv.receive(_ev({"type": "response.done", "response": done}))


def _measure(conv: Conversation, start: int, turns: int) -> int:
    for n in range(start, start + turns):
        _turn(conv, n)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_memory_stays_flat_over_2000_turns_with_a_small_bound() -> None:
    conv = Conversation(get_model(FLASH), max_history=10)
    tracemalloc.start()
    try:
        _measure(conv, 0, 100)  # warm up: the bound is reached, caches are full
        after_500 = _measure(conv, 100, 400)
        after_2000 = _measure(conv, 500, 1500)
    finally:
        tracemalloc.stop()
    assert len(conv.history) == 10 and len(conv.metrics) == 10
    assert conv.history[-1].role == "assistant" and "to 1999" in conv.history[-1].text
    assert conv.history[-2].role == "user" and "number 1999" in conv.history[-2].text
    # 1500 more turns; unbounded, that is ~4-5 KB each (megabytes): here a few KB in all.
    assert after_2000 - after_500 < 64 * 1024, (after_500, after_2000)


def test_unbounded_history_keeps_everything() -> None:
    conv = Conversation(get_model(FLASH), max_history=None)
    for n in range(50):
        _turn(conv, n)
    assert len(conv.history) == 100 and len(conv.metrics) == 50


def test_max_history_is_validated() -> None:
    with pytest.raises(InvalidInput, match="max_history"):
        Conversation(get_model(FLASH), max_history=0)


def test_trimming_keeps_late_user_transcripts_in_place() -> None:
    """A user transcript arriving after its answer started still goes before that answer."""
    conv = Conversation(get_model(FLASH), max_history=3)
    for n in range(3):
        _turn(conv, n)
    item, rid = "item_late", "resp_late"
    conv.receive(_ev({"type": "input_audio_buffer.committed", "item_id": item}))
    conv.receive(_ev({"type": "response.created", "response": {"id": rid}}))
    conv.receive(_ev({"type": "response.audio_transcript.delta", "response_id": rid, "delta": "A"}))
    conv.receive(
        _ev(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "transcript": "late question",
            }
        )
    )
    assert [(h.role, h.text) for h in conv.history[-2:]] == [
        ("user", "late question"),
        ("assistant", "A"),
    ]
    assert len(conv.history) == 3


# -- JSON and context ---------------------------------------------------------------------------

entries = st.lists(
    st.builds(
        HistoryEntry,
        role=st.sampled_from(["user", "assistant"]),
        item_id=st.none() | st.text(max_size=8),
        text=st.text(max_size=40),
        final=st.booleans(),
    ),
    max_size=20,
)


@given(entries)
def test_json_round_trip(items: list[HistoryEntry]) -> None:
    assert history_from_json(history_to_json(items)) == tuple(items)


@given(entries, st.integers(min_value=0, max_value=400))
def test_context_never_exceeds_its_cap_and_keeps_the_newest(
    items: list[HistoryEntry], cap: int
) -> None:
    block = context_block(items, cap)
    assert len(block) <= cap
    spoken = [" ".join(e.text.split()) for e in items if e.text.split()]
    if block:
        assert block.startswith(CONTEXT_HEADER)
        assert block.endswith(spoken[-1][-10:])  # the newest line is always there (maybe cut)
    elif spoken:
        assert cap <= len(CONTEXT_HEADER) + 12


def test_context_drops_oldest_lines_first() -> None:
    items = [
        HistoryEntry(role="user", item_id=None, text=f"line {i}", final=True) for i in range(9)
    ]
    block = context_block(items, len(CONTEXT_HEADER) + 1 + 3 * len("User: line 0") + 2)
    assert block.splitlines()[1:] == ["User: line 6", "User: line 7", "User: line 8"]
    assert with_context("Be brief.", block) == "Be brief.\n\n" + block
    assert with_context(None, block) == block and with_context("x", "") == "x"


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "other/9", "entries": []}', "unknown format"),
        ([{"role": "system", "text": "x"}], "entry 0: role"),
        ([{"role": "user", "text": 3}], "entry 0: text"),
        ([1], "entry 0 must be a dict"),
        (42, "history must be"),
    ],
)
def test_bad_history_is_refused_by_name(bad: Any, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        coerce_history(bad)


# -- over sockets -------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_history_restores_context_through_instructions(sim: Simulator) -> None:
    earlier = [
        HistoryEntry(role="user", item_id="i1", text="My name is Ada.", final=True),
        HistoryEntry(role="assistant", item_id="i2", text="Nice to meet you, Ada.", final=True),
    ]
    with make(sim, max_history=50) as first:
        first.ask(text="Remember the number 42.", timeout=10)
        saved = first.export_history()
    with make(sim, history=earlier + list(history_from_json(saved))) as s:
        assert [h.text for h in s.history][:2] == ["My name is Ada.", "Nice to meet you, Ada."]
        reply = s.ask(text="What do you know?", timeout=10)
    sent = sim.last.received_events("session.update")[0]["session"]["instructions"]
    assert sent.startswith("Be brief.\n\n" + CONTEXT_HEADER)
    assert "User: My name is Ada." in sent and "User: Remember the number 42." in sent
    assert reply.text and s.history[-1].role == "assistant"


@pytest.mark.timeout(30)
def test_context_is_capped_and_can_be_turned_off(sim: Simulator) -> None:
    long = [HistoryEntry(role="user", item_id=None, text="x" * 50, final=True)] * 100
    with make(sim, history=long, context_chars=500):
        pass
    sent = sim.last.received_events("session.update")[0]["session"]["instructions"]
    assert len(sent) <= len("Be brief.\n\n") + 500
    with make(sim, history=long, context_chars=0):
        pass
    assert sim.last.received_events("session.update")[0]["session"]["instructions"] == "Be brief."


@pytest.mark.timeout(30)
def test_reconnect_carries_the_transcript_over(sim: Simulator) -> None:
    got: list[Reconnected] = []
    s = make(sim, reconnect=FAST)
    s.on(Reconnected, got.append)
    with s:
        s.ask(text="The password is swordfish.", timeout=10)
        sim.last.drop()
        sim.wait_for(lambda: len(sim.connections) == 2)
        second = sim.connections[1]
        sim.wait_for(lambda: "session.update" in second.received_types())
        reply = s.ask(text="What is the password?", timeout=10)
    sent = second.received_events("session.update")[0]["session"]["instructions"]
    assert "User: The password is swordfish." in sent and "Assistant: " in sent
    assert got and reply.text
    assert [h.role for h in s.history] == ["user", "assistant"] * 2


@pytest.mark.timeout(40)
def test_rollover_before_the_cap_carries_the_context() -> None:
    """A service whose sessions last 4 s: the SDK moves to a new one between turns."""
    rolled = threading.Event()
    events: list[RolledOver] = []
    with Simulator(api_key=KEY, behaviour=Behaviour(max_duration_s=4.0)) as sim:
        s = make(sim, max_duration=4.0, rollover=2.5, ping_interval=0.1)

        @s.on(RolledOver)
        def moved(e: RolledOver) -> None:
            events.append(e)
            rolled.set()

        with s:
            first_id = s.session_id
            s.ask(text="Remember the colour teal.", timeout=10)
            assert rolled.wait(10)
            reply = s.ask(text="Which colour?", timeout=10)
            assert s.state == "open"
        old, new = sim.connections[0], sim.connections[1]
    assert events[0].previous_session_id == first_id
    assert events[0].session_id == s.session_id != first_id
    assert old.closed_by == "client" and old.close_code == 1000
    assert "session_expired" not in str(old.sent_events("error"))
    sent = new.received_events("session.update")[0]["session"]["instructions"]
    assert "User: Remember the colour teal." in sent
    assert reply.text and s.close_info is not None and s.close_info.error is None


@pytest.mark.timeout(60)
def test_session_history_is_bounded_over_many_turns(sim: Simulator) -> None:
    with make(sim, max_history=6) as s:
        for n in range(120):
            s.ask(text=f"turn {n}", timeout=10)
        assert len(s.history) == 6 and len(s.metrics) == 6
        assert s.history[-2].text == "turn 119"


def test_production_options_are_validated() -> None:
    with pytest.raises(InvalidInput, match="rollover"):
        Session(FLASH, api_key=KEY, rollover=8000.0)
    with pytest.raises(InvalidInput, match="context_chars"):
        Session(FLASH, api_key=KEY, context_chars=-1)
    with pytest.raises(InvalidInput, match="max_duration"):
        Session(FLASH, api_key=KEY, max_duration=0)
    with pytest.raises(InvalidInput, match="history"):
        Session(FLASH, api_key=KEY, history=[{"role": "bot", "text": "x"}])
