"""Token accounting of a simulated session: what its context holds, and each response's usage.

The rates are the model table's (audio tokens per second, pixels per image token); how text is
counted (4 characters a token) and the 20-token overhead of the first turn are the simulator's
own estimates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..events import Usage
from ..models import ModelInfo
from ._behaviour import Behaviour
from ._responder import Turn

__all__ = ["TokenMeter", "audio_tokens", "text_tokens"]

_FIRST_TURN_OVERHEAD = 20
"""Text tokens of the system prompt, billed with the first turn."""
_CALL_OVERHEAD = 5
"""Text tokens of one function call besides its arguments."""


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def audio_tokens(seconds: float, per_s: float) -> int:
    """Audio is billed by the second, at least one second."""
    if seconds <= 0:
        return 0
    return math.ceil(max(1.0, seconds) * per_s)


class TokenMeter:
    """Counts what the model has in its context; input usage is the whole context each turn."""

    def __init__(self, model: ModelInfo, behaviour: Behaviour) -> None:
        self.model = model
        self.behaviour = behaviour
        self.context = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}

    def add_turn(self, turn: Turn) -> dict[str, int]:
        """Add the user's turn to the context; returns the input usage of its response."""
        ctx = self.context
        text = (
            text_tokens(turn.instructions)
            + text_tokens(turn.user_text)
            + sum(text_tokens(o.output) for o in turn.tool_outputs)
        )
        if not ctx["text_tokens"]:
            text += _FIRST_TURN_OVERHEAD
        ctx["text_tokens"] += text
        ctx["audio_tokens"] += audio_tokens(turn.audio_seconds, self.model.input_audio_tokens_per_s)
        ctx["image_tokens"] += sum(self.model.image_tokens(i.width, i.height) for i in turn.images)
        return dict(ctx)

    def usage(
        self,
        input_usage: dict[str, int],
        text: str,
        call_arguments: Iterable[str],
        audio_seconds: float,
    ) -> Usage:
        """The ``usage`` of a response that said ``text`` (and ``audio_seconds`` of it), and
        made function calls with ``call_arguments``; its output joins the context."""
        out_text = text_tokens(text) + sum(text_tokens(a) + _CALL_OVERHEAD for a in call_arguments)
        out_audio = audio_tokens(audio_seconds, self.model.output_audio_tokens_per_s)
        # The service lists only the kinds the context holds (text only for text turns).
        in_details = {"text_tokens": input_usage.get("text_tokens", 0)}
        if input_usage.get("audio_tokens"):
            in_details["audio_tokens"] = input_usage["audio_tokens"]
        if self.behaviour.image_tokens_in_details and input_usage.get("image_tokens"):
            in_details["image_tokens"] = input_usage["image_tokens"]
        in_total = sum(input_usage.values())
        out_details = {"text_tokens": out_text}
        if out_audio:
            out_details["audio_tokens"] = out_audio
        self.context["text_tokens"] += out_text
        self.context["audio_tokens"] += out_audio
        return Usage(
            total_tokens=in_total + out_text + out_audio,
            input_tokens=in_total,
            output_tokens=out_text + out_audio,
            input_tokens_details=in_details,
            output_tokens_details=out_details,
        )
