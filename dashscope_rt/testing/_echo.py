"""What ``session.created`` and ``session.updated`` carry, as captured on the service.

docs/protocol.md §4.2–§4.3: ``session.created`` is a short object (``object, model, modalities,
voice, input_audio_format, output_audio_format, input_audio_transcription, turn_detection, id``
with ``id`` last), without instructions, tools, sampling, search or seed; ``session.updated``
echoes a base set plus the keys the updates sent, and leaves ``turn_detection`` out after it was
sent as null. The server's own defaults differ per model (:data:`SERVER_DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..models import ModelInfo

__all__ = ["SERVER_DEFAULTS", "ServerDefaults", "partial_echo", "server_defaults"]

_BASE: Final = (
    "object",
    "model",
    "modalities",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "turn_detection",
)


@attrs.frozen
class ServerDefaults:
    """What ``session.created`` reports for what the client has not chosen; None: the model
    table's value (``default_voice``, ``transcription_model``)."""

    voice: str | None = None
    input_audio_format: str = "pcm"
    output_audio_format: str = "pcm"
    transcription_model: str | None = None


SERVER_DEFAULTS: Final[Mapping[str, ServerDefaults]] = {
    # Captured 2026-09 [T2]: a voice refused when used, pcm16/pcm24, gummy transcription.
    "qwen3.8-omni": ServerDefaults("Chelsie", "pcm16", "pcm24", "gummy-realtime-v1"),
}
"""Per model family prefix; other models: ``pcm`` and the table's values (captured on 3.5)."""


def server_defaults(model: ModelInfo) -> ServerDefaults:
    """The captured server defaults of ``model``'s family."""
    for prefix, defaults in SERVER_DEFAULTS.items():
        if model.family.startswith(prefix):
            return defaults
    return ServerDefaults()


def partial_echo(
    full: Mapping[str, Any], sent: Mapping[str, Any], *, created: bool
) -> dict[str, Any]:
    """The captured echo, from the full one: the base set and the keys ``sent`` by updates;
    no ``turn_detection`` while it is off; ``id`` last in ``session.created``, first after."""
    out = {k: full[k] for k in _BASE if k in full}
    out.update((k, full[k]) for k in sent if k in full and k not in out)
    if out.get("turn_detection", 0) is None:
        del out["turn_detection"]
    if out.get("input_audio_transcription", 0) is None and "input_audio_transcription" not in sent:
        del out["input_audio_transcription"]
    sid = full.get("id")
    return {**out, "id": sid} if created else {"id": sid, **out}
