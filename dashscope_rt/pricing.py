"""What a conversation costs, from a price table you supply (the SDK states no prices as fact).

A :class:`PriceTable` maps model names to a :class:`Price`: one currency, per million tokens,
by modality (text/audio/image in, text/audio out). :class:`CostMeter` prices each finished
reply from its ``usage``, keeps the running total and says when it first reaches the budget
(the conversation then reports a ``BudgetExceeded``). Sans-IO. Prices change and differ by
region and tier: take them from your provider's price page or your bill
(``samples/prices_example.json`` shows the format, with the source and date of its numbers).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidInput
from .events import Usage

__all__ = ["CostMeter", "Price", "PriceTable", "as_price_table"]

_PER = 1_000_000.0
_FIELDS = ("text_in", "audio_in", "image_in", "text_out", "audio_out")


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"a price must be a finite number >= 0, got {value!r}")
    if value < 0:
        raise InvalidInput(f"a price must be >= 0, got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class Price:
    """Prices of one model per million tokens, by modality, in one currency.

    Input tokens that ``usage`` does not break down by modality are charged at ``text_in``
    (and output ones at ``text_out``).
    """

    text_in: float = attrs.field(default=0.0, converter=_price)
    audio_in: float = attrs.field(default=0.0, converter=_price)
    image_in: float = attrs.field(default=0.0, converter=_price)
    text_out: float = attrs.field(default=0.0, converter=_price)
    audio_out: float = attrs.field(default=0.0, converter=_price)

    def cost(self, usage: Usage) -> float:
        """The cost of one response's ``usage``."""
        din, dout = usage.input_tokens_details, usage.output_tokens_details
        audio_in, image_in = _tokens(din, "audio_tokens"), _tokens(din, "image_tokens")
        text_in = _tokens(din, "text_tokens")
        rest_in = max(0, (usage.input_tokens or 0) - text_in - audio_in - image_in)
        audio_out, text_out = _tokens(dout, "audio_tokens"), _tokens(dout, "text_tokens")
        rest_out = max(0, (usage.output_tokens or 0) - text_out - audio_out)
        total = (
            (text_in + rest_in) * self.text_in
            + audio_in * self.audio_in
            + image_in * self.image_in
            + (text_out + rest_out) * self.text_out
            + audio_out * self.audio_out
        )
        return total / _PER


def _tokens(details: Mapping[str, Any], key: str) -> int:
    value = details.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _prices(value: Mapping[str, Any]) -> dict[str, Price]:
    out: dict[str, Price] = {}
    for model, price in value.items():
        if isinstance(price, Price):
            out[str(model)] = price
            continue
        if not isinstance(price, Mapping):
            raise InvalidInput(f"prices[{model!r}] must be a Price or a dict, got {price!r}")
        unknown = set(price) - set(_FIELDS)
        if unknown:
            raise InvalidInput(
                f"prices[{model!r}]: unknown field(s) {sorted(unknown)}; accepted: {list(_FIELDS)}"
            )
        out[str(model)] = Price(**price)
    return out


@attrs.frozen(kw_only=True)
class PriceTable:
    """Prices per model; a snapshot (``...-2025-12-01``) falls back to its model's entry.

    ``currency``, ``source`` and ``as_of`` say what the numbers are and where they come from.
    """

    prices: Mapping[str, Price] = attrs.field(converter=_prices)
    currency: str = ""
    source: str = ""
    as_of: str = ""

    def price_for(self, model: str) -> Price | None:
        """The entry for ``model``, else for the longest listed name it starts with."""
        found = self.prices.get(model)
        if found is not None:
            return found
        prefixes = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, usage: Usage | None) -> float | None:
        """The cost of ``usage`` on ``model``; None without usage or without a price."""
        price = self.price_for(model)
        if price is None or usage is None:
            return None
        return price.cost(usage)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Read ``{"currency", "source", "as_of", "prices": {model: {text_in: ...}}}``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("prices"), Mapping):
            raise InvalidInput("a price table needs a 'prices' object: {model: {text_in: ...}}")
        return cls(
            prices=data["prices"],
            currency=str(data.get("currency") or ""),
            source=str(data.get("source") or ""),
            as_of=str(data.get("as_of") or ""),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """Read a JSON price table file."""
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as exc:
                raise InvalidInput(f"{os.fspath(path)}: not valid JSON ({exc})") from None
        return cls.from_dict(data)


class CostMeter:
    """Prices replies for one session (across reconnects) and watches the budget."""

    def __init__(self, model: str, table: PriceTable | None, budget: float | None = None) -> None:
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
        ):
            raise InvalidInput(f"budget must be a number > 0 or None, got {budget!r}")
        if budget is not None and table is None:
            raise InvalidInput("a budget needs prices=: a PriceTable, a dict or a JSON file path")
        if table is not None and table.price_for(model) is None:
            raise InvalidInput(
                f"the price table has no entry for {model!r}; it lists {sorted(table.prices)}"
            )
        self.model = model
        self.table = table
        self.budget = budget
        self.total = 0.0
        self.exceeded = False

    def charge(self, usage: Usage | None) -> tuple[float | None, bool]:
        """Price one response: its cost, and True the first time the budget is reached."""
        if self.table is None:
            return None, False
        cost = self.table.cost(self.model, usage)
        if cost is None:
            return None, False
        self.total += cost
        if self.budget is not None and not self.exceeded and self.total >= self.budget:
            self.exceeded = True
            return cost, True
        return cost, False


def as_price_table(value: Any) -> PriceTable | None:
    """Accept a PriceTable, its dict form, or the path of a JSON file."""
    if value is None or isinstance(value, PriceTable):
        return value
    if isinstance(value, (str, os.PathLike)):
        return PriceTable.load(value)
    if isinstance(value, Mapping):
        return PriceTable.from_dict(value)
    raise InvalidInput(
        f"prices must be a PriceTable, a dict or a JSON file path, got {type(value).__name__}"
    )
