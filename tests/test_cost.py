"""Cost: price tables, Reply.cost and total_cost from scripted usage, and the budget."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt import BudgetExceeded, Price, PriceTable, Session, SessionConfig
from dashscope_rt import events as ev
from dashscope_rt.conversation import Conversation
from dashscope_rt.errors import InvalidInput
from dashscope_rt.models import get_model
from dashscope_rt.pricing import CostMeter
from dashscope_rt.testing import Simulator

PLUS = "qwen3.5-omni-plus-realtime"
KEY = "sk-test-cost"
MANUAL = SessionConfig(turn_detection=None)
EXAMPLE = Path(__file__).resolve().parent.parent / "samples" / "prices_example.json"
PRICE = Price(text_in=2.0, audio_in=30.0, image_in=5.0, text_out=8.0, audio_out=60.0)
TABLE = PriceTable(prices={PLUS: PRICE}, currency="CNY", source="test", as_of="today")

# The documented response.done usage (protocol.md §4.25).
DOC_USAGE = {
    "total_tokens": 377,
    "input_tokens": 336,
    "output_tokens": 41,
    "input_tokens_details": {"text_tokens": 228, "audio_tokens": 108},
    "output_tokens_details": {"text_tokens": 9, "audio_tokens": 32},
}


def usage(d: dict[str, Any]) -> ev.Usage:
    return ev.Usage.from_wire(d)


def test_cost_of_the_documented_usage() -> None:
    expected = (228 * 2.0 + 108 * 30.0 + 9 * 8.0 + 32 * 60.0) / 1_000_000
    assert PRICE.cost(usage(DOC_USAGE)) == pytest.approx(expected)


def test_tokens_without_details_are_charged_as_text() -> None:
    u = usage(
        {"input_tokens": 100, "output_tokens": 10, "input_tokens_details": {"image_tokens": 40}}
    )
    assert PRICE.cost(u) == pytest.approx((60 * 2.0 + 40 * 5.0 + 10 * 8.0) / 1_000_000)


def test_snapshots_fall_back_to_their_model() -> None:
    assert TABLE.price_for(PLUS + "-2026-03-15") is PRICE
    assert TABLE.price_for("qwen3.5-omni-plus") is None
    assert TABLE.cost(PLUS, None) is None


@given(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=3), st.booleans()))
def test_prices_are_validated(value: Any) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and value not in (float("inf"), float("-inf"))
        and value >= 0
    )
    if ok:
        assert Price(text_in=value).text_in == float(value)
    else:
        with pytest.raises(InvalidInput, match="price"):
            Price(text_in=value)


def test_bad_tables_and_budgets_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown field"):
        PriceTable.from_dict({"prices": {PLUS: {"audio_input": 1.0}}})
    with pytest.raises(InvalidInput, match="'prices'"):
        PriceTable.from_dict({"models": {}})
    with pytest.raises(InvalidInput, match="no entry for"):
        CostMeter("qwen3-omni-flash-realtime", TABLE)
    with pytest.raises(InvalidInput, match="budget"):
        CostMeter(PLUS, TABLE, budget=-1)
    with pytest.raises(InvalidInput, match="needs prices"):
        Session(PLUS, api_key=KEY, budget=1.0)


def test_the_example_table_says_where_its_numbers_come_from() -> None:
    table = PriceTable.load(EXAMPLE)
    assert table.source and table.as_of and table.currency
    assert "placeholder" in json.loads(EXAMPLE.read_text())["note"].lower()
    for model in ("qwen3-omni-flash-realtime", "qwen-omni-turbo-realtime", PLUS):
        assert table.price_for(model) is not None
    assert Session(PLUS, api_key=KEY, prices=EXAMPLE).total_cost == 0.0  # a path works too


def _reply(conv: Conversation, rid: str, u: dict[str, Any]) -> list[Any]:
    conv.receive(ev.decode(json.dumps({"type": "response.created", "response": {"id": rid}})))
    done = {"id": rid, "status": "completed", "output": [], "usage": u}
    return conv.receive(ev.decode(json.dumps({"type": "response.done", "response": done})))


def test_conversation_prices_replies_and_reports_the_budget_once() -> None:
    meter = CostMeter(PLUS, TABLE, budget=0.008)
    conv = Conversation(get_model(PLUS), meter=meter)
    one = PRICE.cost(usage(DOC_USAGE))
    first = _reply(conv, "r1", DOC_USAGE)
    second = _reply(conv, "r2", DOC_USAGE)
    third = _reply(conv, "r3", DOC_USAGE)
    assert conv.last_reply is not None and conv.last_reply.cost == pytest.approx(one)
    assert meter.total == pytest.approx(3 * one)
    over = [n for n in first + second + third if isinstance(n, BudgetExceeded)]
    assert len(over) == 1 and over[0].response_id == "r2"  # 2 x 0.00569 passes 0.008
    assert over[0].total_cost == pytest.approx(2 * one) and over[0].budget == 0.008
    # a new server session (reconnect) keeps the meter
    assert conv.carry_over().meter is meter


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(api_key=KEY) as s:
        yield s


def make(sim: Simulator, **kw: Any) -> Session:
    return Session(PLUS, api_key=KEY, url=sim.url, config=MANUAL, close_timeout=2.0, **kw)


@pytest.mark.timeout(30)
def test_reply_cost_and_total_over_a_socket(sim: Simulator) -> None:
    wire = {
        "prices": {
            PLUS: {
                "text_in": 2.0,
                "audio_in": 30.0,
                "image_in": 5.0,
                "text_out": 8.0,
                "audio_out": 60.0,
            }
        }
    }
    with make(sim, prices=wire) as s:
        assert s.total_cost == 0.0
        a = s.ask(text="first question", timeout=10)
        b = s.ask(text="second question, a bit longer than the first", timeout=10)
        total = s.total_cost
    sent = [e["response"]["usage"] for e in sim.last.sent_events("response.done")]
    expected = [PRICE.cost(usage(u)) for u in sent]
    assert a.cost == pytest.approx(expected[0]) and b.cost == pytest.approx(expected[1])
    assert a.cost and total == pytest.approx(sum(expected))


@pytest.mark.timeout(30)
def test_budget_can_end_the_session(sim: Simulator) -> None:
    over: list[BudgetExceeded] = []
    ended = threading.Event()
    s = make(sim, prices=TABLE, budget=1e-9, budget_action="end")
    s.on(BudgetExceeded, over.append)
    s.on_close(lambda c: ended.set())
    with s:
        reply = s.ask(text="spend something", timeout=10)
        assert ended.wait(10)
    assert len(over) == 1 and over[0].total_cost == pytest.approx(reply.cost)
    assert s.close_info is not None and s.close_info.reason == "budget exceeded"


@pytest.mark.timeout(30)
def test_budget_event_only_keeps_the_session(sim: Simulator) -> None:
    over: list[BudgetExceeded] = []
    with make(sim, prices=TABLE, budget=1e-9) as s:
        s.on("sdk.budget_exceeded", over.append)
        s.ask(text="one", timeout=10)
        s.ask(text="two", timeout=10)
        assert s.state == "open"
    assert len(over) == 1 and s.total_cost is not None and s.total_cost > 1e-9


def test_no_price_table_means_no_cost(sim: Simulator) -> None:
    with make(sim) as s:
        reply = s.ask(text="free of charge?", timeout=10)
        assert s.total_cost is None
    assert reply.cost is None and reply.usage is not None
