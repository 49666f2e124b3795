"""The session's settings: the config it asks for and what the server says it applied.

:class:`SessionSettings` keeps the user's :class:`~dashscope_rt.config.SessionConfig` (changed
only under a lock, by :meth:`SessionSettings.propose`), the declared tools that go with it, and
the server's echo (``session.created``/``session.updated``): the session id and the effective
config. The rates, the turn-detection mode and the VAD's silence follow from both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import attrs

from . import events as ev
from . import limits
from .config import UNSET, SessionConfig
from .errors import RealtimeError
from .history import with_context
from .models import ModelInfo
from .tools import Tool

__all__ = ["SessionSettings"]

log = logging.getLogger("dashscope_rt.session")

_DEFAULT_SILENCE_MS: int = limits.SERVER_VAD_DEFAULTS["silence_duration_ms"]


class SessionSettings:
    """Requested and effective configuration of one session. Thread-safe."""

    def __init__(self, model: ModelInfo, config: SessionConfig, tools: Sequence[Tool]) -> None:
        self.model = model
        self.tools = {t.name: t for t in tools}
        self._lock = threading.Lock()
        self._config = config
        self.session_id: str | None = None
        self.info: ev.SessionInfo | None = None
        self.effective: SessionConfig | None = None
        self.context_text = ""  # the conversation carried over to this server session

    @property
    def config(self) -> SessionConfig:
        """The user's config (without the declared tools)."""
        return self._config

    def full_config(self, base: SessionConfig | None = None) -> SessionConfig:
        """The config to send: the user's config plus the declared tools."""
        cfg = self._config if base is None else base
        if self.tools:
            declared = tuple(t.to_wire() for t in self.tools.values())
            existing = () if cfg.tools is UNSET else tuple(cfg.tools)
            kept = tuple(t for t in existing if t.get("function", {}).get("name") not in self.tools)
            cfg = attrs.evolve(cfg, tools=declared + kept)
        return cfg

    def wire_session(self) -> dict[str, Any]:
        """The ``session`` object of ``session.update``; raises for what the model can't do."""
        return self._with_context(self.full_config().to_wire(self.model))

    def _with_context(self, wire: dict[str, Any]) -> dict[str, Any]:
        if self.context_text:
            wire["instructions"] = with_context(wire.get("instructions"), self.context_text)
        return wire

    def propose(self, change: SessionConfig) -> tuple[SessionConfig, dict[str, Any]]:
        """Merge ``change`` in and return (the previous config, the wire form to send).

        Raises before changing anything when the model cannot take the result.
        """
        with self._lock:
            old = self._config
            new = old.merge(change)
            wire = self._with_context(self.full_config(new).to_wire(self.model))
            self._config = new
            return old, wire

    def restore(self, old: SessionConfig, refused: dict[str, Any]) -> None:
        """The server refused ``refused``: go back to ``old`` unless it changed again since."""
        with self._lock:
            if self.wire_session() == refused:
                self._config = old

    @property
    def input_rate(self) -> int:
        return self._config.input_rate(self.model)

    @property
    def output_rate(self) -> int:
        return self._config.output_rate(self.model)

    def speaks(self) -> bool:
        """Whether replies have audio: ``modalities`` as configured, else as the server says."""
        mods = self._config.modalities
        if mods is UNSET:
            effective = self.effective
            mods = effective.modalities if effective is not None else UNSET
        return mods is UNSET or "audio" in mods

    def manual_mode(self) -> bool:
        """True when turn detection is off: as configured, else as the server reports it."""
        if self._config.turn_detection is not UNSET:
            return self._config.turn_detection is None
        info = self.info
        return (
            info is not None and "turn_detection" in info.raw and info.raw["turn_detection"] is None
        )

    def vad_silence_ms(self) -> int:
        """The server VAD's end-of-turn silence (server echo, local config, else 800 ms)."""
        info = self.info
        td = info.turn_detection if info is not None else None
        value = td.get("silence_duration_ms") if td else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return int(value)
        local = getattr(self._config.turn_detection, "silence_duration_ms", UNSET)
        return local if isinstance(local, int) else _DEFAULT_SILENCE_MS

    def apply(self, info: ev.SessionInfo | None) -> None:
        """Take the server's ``session`` payload (``session.created`` / ``session.updated``)."""
        if info is None:
            return
        self.info = info
        if info.id:
            self.session_id = info.id
        try:
            self.effective = SessionConfig.from_wire(info.raw)
        except RealtimeError:
            log.debug("could not read the effective session config", exc_info=True)
