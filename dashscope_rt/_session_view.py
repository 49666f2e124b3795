"""What a session shows of its state: model, config, history, metrics, cost, backlog.

Shared by :class:`~dashscope_rt.Session` and :class:`~dashscope_rt.AsyncSession`; each read
is a consistent snapshot, safe from any thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import events as ev
from ._dial import redact_url
from ._link import State
from ._sdk_events import Closed
from .config import SessionConfig
from .history import history_to_json
from .models import ModelInfo
from .reply import HistoryEntry, Reply, TurnMetrics
from .tools import Tool

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["StateProperties"]


class StateProperties:
    """Read-only state of a session."""

    _engine: Engine

    @property
    def model_info(self) -> ModelInfo:
        """What the model supports (rates, voices, tools...)."""
        return self._engine.model

    @property
    def url(self) -> str:
        """The endpoint this session connects to (user info and secret query values masked)."""
        return redact_url(self._engine.url)

    @property
    def session_id(self) -> str | None:
        """The server's session id (changes after a reconnect)."""
        return self._engine.settings.session_id

    @property
    def config(self) -> SessionConfig | None:
        """The effective config, as the server echoed it in ``session.updated``."""
        return self._engine.settings.effective

    @property
    def requested_config(self) -> SessionConfig:
        """The config this session sends (with the tools), replayed after a reconnect."""
        return self._engine.settings.full_config()

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The tools declared with ``tools=``."""
        return tuple(self._engine.settings.tools.values())

    @property
    def state(self) -> str:
        """One of new, connecting, open, reconnecting, closing, closed."""
        return self._engine.state.value

    @property
    def closed(self) -> bool:
        """True once the session has ended (or failed to connect)."""
        return self._engine.state is State.CLOSED

    @property
    def close_info(self) -> Closed | None:
        """How the session ended (code, reason, by_server, error), or None while open."""
        return self._engine.close_info

    @property
    def active_response(self) -> ev.Response | None:
        """The ``response.created`` payload of the response in progress, or None."""
        return self._engine.active_response

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        """The transcript so far: user and assistant lines, in order."""
        return self._engine.read_conversation(lambda c: tuple(c.history))

    def export_history(self, *, indent: int | None = None) -> str:
        """The transcript as JSON; give it back as ``Session(history=...)`` to carry on."""
        return history_to_json(self.history, indent=indent)

    @property
    def total_cost(self) -> float | None:
        """What the session cost so far by the ``prices`` table (None without one)."""
        meter = self._engine.conv.meter
        return meter.total if meter is not None and meter.table is not None else None

    @property
    def metrics(self) -> tuple[TurnMetrics, ...]:
        """Per-response timings (``time.monotonic()``) and usage, oldest first."""
        return self._engine.read_conversation(lambda c: tuple(c.metrics))

    @property
    def last_reply(self) -> Reply | None:
        """The most recent finished reply."""
        return self._engine.read_conversation(lambda c: c.last_reply)

    @property
    def input_rate(self) -> int:
        """Sample rate the audio is sent at (what :meth:`append_audio` converts to)."""
        return self._engine.settings.input_rate

    @property
    def output_rate(self) -> int:
        """Sample rate of the audio in ``response.audio.delta``."""
        return self._engine.settings.output_rate

    @property
    def send_backlog(self) -> int:
        """Bytes queued and not yet written to the socket."""
        return self._engine.link.backlog

    def handler_latency(self) -> tuple[float, float]:
        """p50 and p99, in seconds, of frame read → first handler call (recent events)."""
        return self._engine.lag_percentiles()
