"""Registering handlers: the typed ``on_*`` decorators of ``Session`` and ``AsyncSession``.

Each decorator takes a callable of its event's type and returns it unchanged, so that a type
checker catches ``ev.nonexistent`` in a handler. :class:`HandlerMethods` holds the decorators
once for both session classes; each class supplies where a handler goes. A ``Session``'s
handlers run on its dispatcher thread (see :mod:`dashscope_rt._dispatch`), an
``AsyncSession``'s on its event loop.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import events as ev
from ._dispatch import check_callable
from .errors import BlockingCallInHandler, InvalidType
from .events import Closed, SessionEvent
from .reply import Reply, ToolCall

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["HandlerMethods", "HandlerRegistration"]

E = TypeVar("E")
R = TypeVar("R")


def _positional_params(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 1
    return sum(1 for p in params if p.kind in kinds)


class HandlerMethods(abc.ABC):
    """The handler methods of a session, typed (a base of ``Session`` and ``AsyncSession``).

    Handlers run one at a time, in arrival order. A subclass says where they go by
    implementing the four ``_add_handler``, ``_remove_handlers``, ``_add_error_handler`` and
    ``_set_tool_handler`` hooks.
    """

    @abc.abstractmethod
    def _add_handler(
        self, event: str | type[Any], fn: Callable[[Any], Any], orig: Any = None
    ) -> None:
        """Call ``fn`` for each ``event`` (``"*"``: every event); ``orig`` is what
        ``off()`` knows it by when ``fn`` wraps the user's function."""

    @abc.abstractmethod
    def _remove_handlers(self, event: str | type[Any] | None, fn: Any) -> int:
        """Remove the handlers of ``event`` (None: any), of ``fn`` (None: any); a count."""

    @abc.abstractmethod
    def _add_error_handler(self, fn: Callable[[Exception], Any]) -> None:
        """Call ``fn(exc)`` for each error reported."""

    @abc.abstractmethod
    def _set_tool_handler(self, fn: Callable[[ToolCall], Any]) -> None:
        """Answer the tool calls that no declared tool covers with ``fn(call)``."""

    @overload
    def on(self, event: type[E]) -> Callable[[Callable[[E], R]], Callable[[E], R]]: ...
    @overload
    def on(self, event: type[E], fn: Callable[[E], R]) -> Callable[[E], R]: ...
    @overload
    def on(self, event: str) -> Callable[[Callable[[Any], R]], Callable[[Any], R]]: ...
    @overload
    def on(self, event: str, fn: Callable[[Any], R]) -> Callable[[Any], R]: ...

    def on(self, event: str | type[Any], fn: Callable[[Any], Any] | None = None) -> Any:
        """Call ``fn(ev)`` for each event of a class or a wire type (``"response.done"``).

        Also accepts the SDK's own classes (:class:`~dashscope_rt.events.Closed`,
        ``Reconnecting``, ``Reconnected``, ``SessionExpiring``), :class:`Reply` and the
        conversation's notices. Use as a decorator or a call; ``fn`` is returned unchanged.
        """
        if not isinstance(event, (str, type)):
            raise InvalidType(f"event must be a wire type string or a class, got {event!r}")

        def register(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
            check_callable(f)
            self._add_handler(event, f)
            return f

        return register if fn is None else register(fn)

    def on_event(self, fn: Callable[[SessionEvent], R]) -> Callable[[SessionEvent], R]:
        """Call ``fn(ev)`` for every server event and every SDK event (Closed, Reconnecting...)."""
        check_callable(fn)
        self._add_handler("*", fn)
        return fn

    def off(self, event: str | type[Any] | Callable[..., Any] | None = None, fn: Any = None) -> int:
        """Unregister: ``off(fn)``, ``off("response.done")``, ``off(key, fn)``; returns a count.

        ``off()`` removes every handler.
        """
        if event is None or isinstance(event, (str, type)):
            return self._remove_handlers(event, fn)
        if fn is None:
            return self._remove_handlers(None, event)
        raise InvalidType(f"off(event, fn): event must be a wire type or a class, got {event!r}")

    def on_audio_delta(
        self, fn: Callable[[ev.ResponseAudioDelta], R]
    ) -> Callable[[ev.ResponseAudioDelta], R]:
        """``fn(ev)`` for each ``response.audio.delta``: ``ev.audio`` is PCM16LE mono bytes."""
        return self.on(ev.ResponseAudioDelta, fn)

    def on_text_delta(
        self, fn: Callable[[ev.ResponseTextDelta], R]
    ) -> Callable[[ev.ResponseTextDelta], R]:
        """``fn(ev)`` for each ``response.text.delta`` (text-only output): ``ev.delta``."""
        return self.on(ev.ResponseTextDelta, fn)

    def on_transcript_delta(
        self, fn: Callable[[ev.ResponseAudioTranscriptDelta], R]
    ) -> Callable[[ev.ResponseAudioTranscriptDelta], R]:
        """``fn(ev)`` for each ``response.audio_transcript.delta``: text of the spoken answer."""
        return self.on(ev.ResponseAudioTranscriptDelta, fn)

    def on_input_transcript(
        self, fn: Callable[[ev.ConversationItemInputAudioTranscriptionCompleted], R]
    ) -> Callable[[ev.ConversationItemInputAudioTranscriptionCompleted], R]:
        """``fn(ev)`` with the final transcript of the user's speech (``ev.transcript``)."""
        return self.on(ev.ConversationItemInputAudioTranscriptionCompleted, fn)

    def on_speech_started(
        self, fn: Callable[[ev.InputAudioBufferSpeechStarted], R]
    ) -> Callable[[ev.InputAudioBufferSpeechStarted], R]:
        """``fn(ev)`` when the server VAD hears the user start; flush your playback here."""
        return self.on(ev.InputAudioBufferSpeechStarted, fn)

    def on_speech_stopped(
        self, fn: Callable[[ev.InputAudioBufferSpeechStopped], R]
    ) -> Callable[[ev.InputAudioBufferSpeechStopped], R]:
        """``fn(ev)`` when the server VAD hears the user stop."""
        return self.on(ev.InputAudioBufferSpeechStopped, fn)

    def on_response_done(self, fn: Callable[[Reply], R]) -> Callable[[Reply], R]:
        """``fn(reply)`` when a response ends, with the whole :class:`Reply` (text, audio...)."""
        return self.on(Reply, fn)

    def on_tool_call(self, fn: Callable[[ToolCall], R]) -> Callable[[ToolCall], R]:
        """``fn(call) -> result`` for tool calls not covered by ``tools=``; runs in the pool.

        The result (a string, or anything JSON-serialisable) is sent to the model; when every
        call of the response has its result, one ``response.create`` follows.
        """
        check_callable(fn)
        self._set_tool_handler(fn)
        return fn

    def on_error(self, fn: Callable[[Exception], R]) -> Callable[[Exception], R]:
        """``fn(exc)`` for handler and tool exceptions, malformed frames and server errors."""
        check_callable(fn)
        self._add_error_handler(fn)
        return fn

    @overload
    def on_close(self, fn: Callable[[Closed], R]) -> Callable[[Closed], R]: ...
    @overload
    def on_close(
        self, fn: Callable[[int | None, str, bool], R]
    ) -> Callable[[int | None, str, bool], R]: ...

    def on_close(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn`` once when the session ends, after every other handler.

        ``fn(closed)`` with a :class:`~dashscope_rt.events.Closed` (``code``, ``reason``,
        ``by_server`` and ``error``, the error that ended the session), or
        ``fn(code, reason, by_server)``.
        """
        if callable(fn) and _positional_params(fn) >= 3:

            def three(c: Closed) -> Any:
                return fn(c.code, c.reason, c.by_server)

            self._add_handler(Closed, three, orig=fn)
        else:
            check_callable(fn)
            self._add_handler(Closed, fn)
        return fn


class HandlerRegistration(HandlerMethods):
    """:class:`HandlerMethods` on a ``Session``'s dispatcher, and its pull-style ``events()``."""

    _engine: Engine

    def _add_handler(
        self, event: str | type[Any], fn: Callable[[Any], Any], orig: Any = None
    ) -> None:
        self._engine.dispatcher.add(event, fn, orig)

    def _remove_handlers(self, event: str | type[Any] | None, fn: Any) -> int:
        removed = self._engine.dispatcher.remove(event, fn)
        if event is None or event == "tool_call":
            removed += self._engine.tools.remove_handler(fn)
        return removed

    def _add_error_handler(self, fn: Callable[[Exception], Any]) -> None:
        self._engine.dispatcher.add_error_handler(fn)  # type: ignore[arg-type]

    def _set_tool_handler(self, fn: Callable[[ToolCall], Any]) -> None:
        self._engine.tools.set_handler(fn)

    def events(
        self, timeout: float | None = None, *, maxsize: int = 4096
    ) -> Iterator[SessionEvent]:
        """Iterate over events as they arrive (pull style; handlers still run).

        Yields every server event and the SDK's own (``Closed``, ``Reconnecting``, ...). Ends
        when the session closes, or when no event came for ``timeout`` seconds. Only events
        arriving while the iterator exists are seen; if the consumer falls more than ``maxsize``
        events behind, newer events are dropped for it (with a warning). From a handler it
        raises :class:`~dashscope_rt.errors.BlockingCallInHandler` at once: the events it would
        wait for are delivered by the very thread it would block.
        """
        if self._engine.on_dispatcher():
            raise BlockingCallInHandler(
                "events() cannot be iterated in a handler: it waits for events that this thread "
                "delivers (register a handler for them instead)"
            )
        return self._engine.dispatcher.iterate(timeout, maxsize)
