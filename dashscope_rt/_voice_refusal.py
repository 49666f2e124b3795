"""A voice the service refused, recognised in whatever shape it came, made into a clear error.

docs/protocol.md §9.2: ``<400> InternalError.Algo.InvalidParameter: Voice 'X' is not supported.``
comes at the first response (as an ``error`` event with an empty or ``COMMON_ERROR`` code and
no event id), or in answer to ``session.update`` on other servers, or as a close reason; the
connection does not recover after it. No I/O: the engine calls :func:`voice_refusal`.
"""

from __future__ import annotations

import re

from .errors import ConnectionClosed, ServerError, VoiceNotSupported
from .models import ModelInfo

__all__ = ["refused_voice", "voice_choices", "voice_refusal"]

_REFUSAL = re.compile(
    r"""\bvoice\s*[:=]?\s*['"‘“]?(?P<voice>[^'"’”]{0,80}?)['"’”]?\s+is\s+not\s+supported""",
    re.IGNORECASE,
)


def refused_voice(text: str) -> str | None:
    """The voice a refusal message names (``Voice 'X' is not supported.``), else None."""
    match = _REFUSAL.search(text)
    return match.group("voice").strip() if match else None


def voice_choices(model: ModelInfo) -> tuple[str, ...]:
    """Voices to suggest: the model's list, else its default and the ones known to work."""
    if model.voices is not None:
        return model.voices
    names = (model.default_voice, *model.known_voices)
    return tuple(dict.fromkeys(n for n in names if n))


def voice_refusal(exc: BaseException | None, model: ModelInfo) -> VoiceNotSupported | None:
    """``exc`` as a :class:`VoiceNotSupported` if it is a refused voice, else None."""
    if isinstance(exc, VoiceNotSupported) or exc is None:
        return exc
    if isinstance(exc, ServerError):
        text = exc.message
    elif isinstance(exc, ConnectionClosed):
        text = exc.reason
    else:
        return None
    voice = refused_voice(text)
    if voice is None:
        return None
    choices = voice_choices(model)
    if model.voices is not None:
        advice = f"choose one of: {', '.join(choices)}"
    else:
        advice = (
            f"voices known to work: {', '.join(choices)} (leave voice unset for "
            f"{model.default_voice!r})"
        )
    message = (
        f"voice {voice!r} is not supported by {model.name} (the service said: {text.strip()}); "
        f"this connection cannot go on: open a new session with another voice; {advice}"
    )
    server = exc if isinstance(exc, ServerError) else None
    return VoiceNotSupported(
        message,
        voice=voice,
        model=model.name,
        voices=choices,
        type=server.type if server else "",
        code=server.code if server else None,
        param=server.param if server else None,
        event_id=server.event_id if server else None,
    )
