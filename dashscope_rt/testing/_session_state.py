"""The session configuration as the simulated service holds it.

``session.update`` is read and checked by the core (:meth:`SessionConfig.from_wire` with
``strict=True``, then :meth:`SessionConfig.to_wire` for the model's rules); the effective values are
:meth:`SessionConfig.with_defaults`. What stays here is what only a server does: keep the state,
word its errors, apply the rules that depend on what already happened (voice after audio, input
rate after audio), and the :class:`Behaviour` switches that accept what the SDK refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import attrs

from ..config import (
    SAMPLING_FIELDS,
    UNSET,
    SemanticVAD,
    ServerVAD,
    SessionConfig,
    UnsetType,
    audio_format_object,
    transcription_object,
)
from ..errors import InvalidInput, UnsupportedByModel
from ..events import SessionInfo, new_id
from ..limits import DEFAULT_AUDIO_FORMAT, LEGACY_AUDIO_FORMATS, MODALITIES
from ..models import ModelInfo
from ._behaviour import Behaviour
from ._echo import partial_echo, server_defaults

__all__ = ["Refusal", "SessionState", "modalities_message"]

SESSION_OBJECT: Final = "realtime.session"
MAX_RESPONSE_OUTPUT_TOKEN: Final = "inf"
"""What the service echoes for ``max_response_output_token``."""


@attrs.frozen
class Refusal:
    """A refused client request: the ``error`` event to send, and whether to close after it."""

    code: str
    message: str
    param: str | None = None
    close: bool = False
    type: str = "invalid_request_error"


def modalities_message(value: Any) -> str:
    """The service's wording for refused modalities."""
    supported = " and ".join(repr(sorted(c)) for c in MODALITIES)
    return f"Invalid modalities: {value!r}. Supported combinations are: {supported}."


_T = TypeVar("_T")


def _value(v: Any) -> Any:
    return None if v is UNSET else v


def _known(value: _T | UnsetType, default: _T) -> _T:
    return default if isinstance(value, UnsetType) else value


class SessionState:
    """The client's requested config (all ``session.update`` patches merged), checked against
    the model, and the effective config the service reports."""

    def __init__(self, model: ModelInfo, behaviour: Behaviour) -> None:
        self.model = model
        self.behaviour = behaviour
        self.id = new_id("sess_")
        self.server = server_defaults(model)
        self.requested = SessionConfig()
        self.effective = self._effective(self.requested)
        self.sent: dict[str, Any] = {}
        """Every key the updates sent (what a partial echo repeats)."""

    def _effective(self, requested: SessionConfig) -> SessionConfig:
        """``requested`` with the service's defaults (the captured ones where they differ)."""
        eff = requested.with_defaults(self.model)
        server: dict[str, Any] = {
            "voice": self.server.voice,
            "input_audio_format": self.server.input_audio_format,
            "output_audio_format": self.server.output_audio_format,
        }
        unset = {k: v for k, v in server.items() if v and getattr(requested, k) is UNSET}
        return attrs.evolve(eff, **unset)

    # --- effective values ---------------------------------------------------------------

    @property
    def input_rate(self) -> int:
        return _known(self.effective.input_sample_rate, self.model.input_rate)

    @property
    def output_rate(self) -> int:
        return _known(self.effective.output_sample_rate, self.model.output_rate)

    @property
    def input_is_wav(self) -> bool:
        return self.effective.input_audio_format == "wav"

    @property
    def vad(self) -> ServerVAD | SemanticVAD | None:
        """The turn detection with every field set, or None in manual mode."""
        vad = self.effective.turn_detection
        return None if vad is UNSET else vad

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(_value(self.effective.modalities) or ())

    @property
    def voice(self) -> str:
        return str(_value(self.effective.voice) or "")

    @property
    def instructions(self) -> str:
        return str(_value(self.effective.instructions) or "")

    @property
    def output_audio_format(self) -> str:
        return self._legacy(self.effective.output_audio_format)

    @property
    def transcribe(self) -> bool:
        return self.effective.input_transcription is True

    @property
    def max_tokens(self) -> int | None:
        return _known(self.effective.max_tokens, None)

    @property
    def tools(self) -> tuple[Mapping[str, Any], ...]:
        """The declared tools (also on models that never call them)."""
        return tuple(_value(self.effective.tools) or ())

    @property
    def idle_timeout_ms(self) -> int | None:
        vad = self.vad
        return _known(vad.idle_timeout_ms, None) if isinstance(vad, ServerVAD) else None

    # --- session.update -----------------------------------------------------------------

    def update(
        self, patch: Mapping[str, Any], *, audio_in: bool, audio_out: bool
    ) -> Refusal | None:
        """Apply a ``session.update``; a :class:`Refusal` leaves the state unchanged.

        ``audio_in``/``audio_out``: the client has sent audio / the service has spoken.
        """
        try:
            parsed = SessionConfig.from_wire(patch, strict=True)
            base = self.requested if self.behaviour.update_mode == "merge" else SessionConfig()
            requested = self._check_model(base.merge(attrs.evolve(parsed, extra={})))
        except InvalidInput as exc:
            return self._refusal(exc, patch)
        effective = self._effective(requested)
        if (
            effective.voice != self.effective.voice
            and audio_out
            and self.behaviour.reject_voice_change_after_audio
        ):
            return Refusal(
                "cannot_update_voice",
                "Cannot update voice after audio has been generated.",
                "session.voice",
            )
        if audio_in and effective.input_sample_rate != self.effective.input_sample_rate:
            return Refusal(
                "invalid_value",
                "The input sample rate cannot be changed after audio has been sent.",
                "session.audio.input.format.sample_rate",
            )
        self.requested, self.effective = requested, effective
        merged = self.behaviour.update_mode == "merge"
        self.sent = {**self.sent, **patch} if merged else dict(patch)
        return None

    def _check_model(self, config: SessionConfig) -> SessionConfig:
        """``config`` if the model takes it, with what the behaviour lets the model ignore
        removed; raises :class:`UnsupportedByModel` otherwise."""
        b, m = self.behaviour, self.model
        checked = config
        while True:
            try:
                checked.to_wire(m)
                return config
            except UnsupportedByModel as exc:
                if exc.feature in SAMPLING_FIELDS and not m.sampling_params:
                    if not b.ignore_fixed_sampling_params:
                        raise
                    unset: dict[str, Any] = dict.fromkeys(SAMPLING_FIELDS, UNSET)
                    config, checked = attrs.evolve(config, **unset), attrs.evolve(checked, **unset)
                elif exc.feature == "tools" and b.accept_tools_without_support:
                    checked = attrs.evolve(checked, tools=UNSET)  # kept, never called
                elif exc.feature == "voice" and b.voice_check == "response":
                    checked = attrs.evolve(checked, voice=UNSET)  # refused at the response
                else:
                    raise

    def _refusal(self, exc: InvalidInput, patch: Mapping[str, Any]) -> Refusal:
        param = f"session.{exc.param}" if exc.param else "session"
        if exc.param == "voice":
            message = f"Voice '{patch.get('voice')}' is not supported."
            return Refusal("invalid_value", message, param, close=self.behaviour.close_on_bad_voice)
        if isinstance(exc, UnsupportedByModel):
            message = f"Parameter '{param}' is not supported by {self.model.name}: {exc}"
            return Refusal("unsupported_parameter", message, param)
        if exc.param == "modalities":
            return Refusal("invalid_value", modalities_message(patch.get("modalities")), param)
        return Refusal("invalid_value", f"Invalid value for '{param}': {exc}", param)

    # --- the echo -----------------------------------------------------------------------

    def info(self, *, created: bool = False) -> SessionInfo:
        """The session object of ``session.created`` (``created``) or ``session.updated``:
        partial as captured, or every field (``Behaviour.session_echo``)."""
        full = self._full_info()
        if self.behaviour.session_echo == "full":
            return full
        return SessionInfo.from_wire(partial_echo(full.to_wire(), self.sent, created=created))

    def _full_info(self) -> SessionInfo:
        eff, m = self.effective, self.model
        vad = self.vad
        audio = None
        if m.audio_format_object:
            audio = {
                "input": audio_format_object(str(eff.input_audio_format), self.input_rate),
                "output": audio_format_object(str(eff.output_audio_format), self.output_rate),
            }
        return SessionInfo(
            id=self.id,
            object=SESSION_OBJECT,
            model=m.name,
            modalities=self.modalities,
            voice=self.voice,
            instructions=self.instructions,
            input_audio_format=self._legacy(eff.input_audio_format),
            output_audio_format=self.output_audio_format,
            audio=audio,
            input_audio_transcription=self._transcription(),
            turn_detection=None if vad is None else attrs.evolve(vad, extra={}).to_wire(),
            enable_search=_value(eff.enable_search),
            search_options=_value(eff.search_options),
            tools=self.tools,
            smooth_output=_value(eff.smooth_output) if m.smooth_output else None,
            temperature=_value(eff.temperature),
            top_p=_value(eff.top_p),
            top_k=_value(eff.top_k),
            max_tokens=self.max_tokens,
            max_response_output_token=MAX_RESPONSE_OUTPUT_TOKEN,
            repetition_penalty=_value(eff.repetition_penalty),
            presence_penalty=_value(eff.presence_penalty),
            seed=_value(eff.seed),
        ).with_nulls("turn_detection", "input_audio_transcription")

    def _transcription(self) -> dict[str, Any] | None:
        if not self.transcribe:
            return None
        server_model = self.server.transcription_model
        if server_model and "input_audio_transcription" not in self.sent:
            return {"model": server_model}
        return transcription_object(self.model)

    @staticmethod
    def _legacy(fmt: Any) -> str:
        """The top-level format string (which has no ``wav``: that is in ``audio`` only)."""
        return str(fmt) if fmt in LEGACY_AUDIO_FORMATS else DEFAULT_AUDIO_FORMAT
