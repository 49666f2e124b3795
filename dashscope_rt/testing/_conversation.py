"""What the simulated model hears next: the user's turns, tool results, and the history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..events import ContentPart, Item, new_id
from ..models import ModelInfo
from ._behaviour import Behaviour
from ._responder import Image, ToolOutput, Turn
from ._session_state import Refusal, SessionState

__all__ = ["ITEM_OBJECT", "Conversation", "UserTurn"]

ITEM_OBJECT: Final = "realtime.item"


@attrs.define
class UserTurn:
    """One committed audio buffer or one typed message, waiting for a response."""

    transcript: str = ""
    text: str = ""
    audio_seconds: float = 0.0
    images: list[Image] = attrs.field(factory=list)


class Conversation:
    """Pending user turns and tool results, the calls the model made, and the exchanges so far."""

    def __init__(self, model: ModelInfo, behaviour: Behaviour, state: SessionState) -> None:
        self.model = model
        self.behaviour = behaviour
        self.state = state
        self.pending: list[UserTurn] = []
        self.tool_outputs: list[ToolOutput] = []
        self.issued_calls: dict[str, str] = {}
        """call_id -> tool name, for every function call the model made."""
        self.history: list[tuple[str, str]] = []

    def add(self, turn: UserTurn) -> UserTurn:
        self.pending.append(turn)
        return turn

    def create_item(self, wire_item: Mapping[str, Any]) -> Item | Refusal:
        """``conversation.item.create``: the item to echo in ``conversation.item.created``, or
        why it is refused."""
        item = Item.from_wire(wire_item)
        keep = self.behaviour.keep_client_item_id
        item_id = item.id if item.id and keep else new_id("item_")  # the service's own (§3.8)
        text_ok = self.behaviour.text_input
        if text_ok is None:
            text_ok = self.model.text_input
        if item.type == "function_call_output":
            return self._tool_output(item, item_id)
        if item.type == "message" and text_ok:
            texts = [p.text or "" for p in item.content if p.type in ("input_text", "text")]
            if (item.role or "user") != "user" or not texts:
                return Refusal(
                    "invalid_value",
                    "Only user messages with 'input_text' content are supported.",
                    "item",
                )
            text = " ".join(texts)
            self.add(UserTurn(text=text))
            part = ContentPart(type="input_text", text=text)
            return Item(
                id=item_id,
                object=ITEM_OBJECT,
                type="message",
                status="completed",
                role="user",
                content=(part,),
            )
        supported = "'function_call_output' and 'message'" if text_ok else "'function_call_output'"
        return Refusal(
            "invalid_value",
            f"Invalid 'item.type': {wire_item.get('type')!r}. "
            f"Currently only {supported} is supported.",
            "item.type",
        )

    def _tool_output(self, item: Item, item_id: str) -> Item | Refusal:
        call_id, output = item.call_id, item.output
        if not call_id:
            return Refusal(
                "missing_required_parameter",
                "Missing required parameter: 'item.call_id'.",
                "item.call_id",
            )
        if output is None:
            return Refusal(
                "missing_required_parameter",
                "Missing required parameter: 'item.output' (a string).",
                "item.output",
            )
        if self.behaviour.check_call_id and call_id not in self.issued_calls:
            return Refusal(
                "invalid_value",
                f"Invalid 'item.call_id': no function call with id '{call_id}'.",
                "item.call_id",
            )
        self.tool_outputs.append(ToolOutput(call_id, output, self.issued_calls.get(call_id, "")))
        return Item(
            id=item_id,
            object=ITEM_OBJECT,
            type="function_call_output",
            status="completed",
            call_id=call_id,
            output=output,
        )

    def take_turn(self, response_instructions: str | None) -> Turn:
        """Everything pending, as the :class:`Turn` the responder answers."""
        turns, self.pending = self.pending, []
        outputs, self.tool_outputs = self.tool_outputs, []
        return Turn(
            transcript=" ".join(t.transcript for t in turns if t.transcript),
            text=" ".join(t.text for t in turns if t.text),
            images=tuple(img for t in turns for img in t.images),
            tool_outputs=tuple(outputs),
            tools=self.state.tools if self.model.tools else (),
            instructions=self.state.instructions,
            audio_seconds=sum(t.audio_seconds for t in turns),
            history=tuple(self.history),
            model=self.model.name,
            response_instructions=response_instructions,
        )
