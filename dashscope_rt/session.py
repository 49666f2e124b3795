"""``Session``: one live conversation with a Qwen-Omni-Realtime model, from plain threads.

Threads (see ``docs/architecture.md``): a *reader* reads and decodes frames, a *dispatcher*
calls your handlers one at a time in arrival order, a *sender* writes queued frames, and a small
pool runs tools. Your handlers run on the dispatcher thread, never on the reader, so a slow
handler delays later handlers but never the connection (reads, pings).
"""

from __future__ import annotations

import os
import urllib.parse
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import events as ev
from ._ask import Asker
from ._endpoint import is_loopback, resolve_endpoint
from ._engine import Engine
from ._handlers import HandlerRegistration
from ._hosts import region_key, workspace_endpoint
from ._link import SESSION_CAP_S, ReconnectPolicy, State
from ._session_send import SendMethods
from ._session_view import StateProperties
from ._version import __version__
from .config import SessionConfig
from .conversation import Conversation
from .errors import BlockingCallInHandler, InvalidInput, InvalidType, SessionClosed, Timeout
from .history import coerce_history, context_block
from .models import ModelInfo, get_model
from .pricing import CostMeter, as_price_table
from .reply import Reply
from .telemetry import make_tracer
from .tools import as_tools
from .transport import (
    DEFAULT_MAX_FRAME_BYTES,
    ProxySetting,
    build_url,
    proxy_secrets,
)

__all__ = ["Session"]


def _check_production_options(
    context_chars: int, rollover: float | None, max_duration: float, budget_action: str
) -> None:
    if isinstance(context_chars, bool) or not isinstance(context_chars, int) or context_chars < 0:
        raise InvalidInput(f"context_chars must be an int >= 0 (0: off), got {context_chars!r}")
    if not max_duration > 0:
        raise InvalidInput(f"max_duration must be > 0 seconds, got {max_duration!r}")
    if rollover is not None and not 0 < rollover < max_duration:
        raise InvalidInput(
            f"rollover must be None or seconds before the cap, between 0 and max_duration "
            f"({max_duration:g}), got {rollover!r}"
        )
    if budget_action not in ("event", "end"):
        raise InvalidInput(f"budget_action must be 'event' or 'end', got {budget_action!r}")


class _Secret(str):
    """A string that never shows itself in a repr."""

    def __repr__(self) -> str:
        return "'***'"


def _close_abandoned(engine_ref: weakref.ref[Engine]) -> None:
    """Close the engine of a Session nobody references any more (its threads keep it alive)."""
    engine = engine_ref()
    if engine is not None:
        engine.close(1000, "", 1.0)


def _check_limits(
    max_frame_bytes: int, receive_backlog_bytes: int, tool_timeout: float | None
) -> None:
    for name, value in (
        ("max_frame_bytes", max_frame_bytes),
        ("receive_backlog_bytes", receive_backlog_bytes),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1024:
            raise InvalidInput(f"{name} must be an int of at least 1024 bytes, got {value!r}")
    if receive_backlog_bytes < max_frame_bytes:
        raise InvalidInput(
            f"receive_backlog_bytes ({receive_backlog_bytes}) must be at least max_frame_bytes "
            f"({max_frame_bytes}), or one large message could never be handled"
        )
    if tool_timeout is not None and not (
        isinstance(tool_timeout, (int, float)) and not isinstance(tool_timeout, bool)
    ):
        raise InvalidType(f"tool_timeout must be a number of seconds or None, got {tool_timeout!r}")
    if tool_timeout is not None and tool_timeout <= 0:
        raise InvalidInput(f"tool_timeout must be > 0 seconds or None, got {tool_timeout!r}")


class Session(HandlerRegistration, SendMethods, StateProperties):
    """A realtime session with a Qwen-Omni model.

    ::

        with Session("qwen3-omni-flash-realtime", config=SessionConfig(voice="Cherry")) as s:
            s.on_audio_delta(lambda ev: speaker.write(ev.audio))
            reply = s.ask(audio=wav_pcm, sample_rate=16000)

    The key comes from ``api_key`` or ``$DASHSCOPE_API_KEY``; ``region`` is ``"cn"`` (Beijing)
    or ``"intl"`` (Singapore), or give the endpoint as ``url`` (default ``$DASHSCOPE_RT_URL``).
    A loopback ``url`` (a local simulator) needs no key: without one none is sent. With
    ``workspace`` the session connects to that workspace's own host in the region (and sends
    ``X-DashScope-WorkSpace``); a model that needs one (qwen3.8) is refused without it. An
    explicit ``url`` always wins. :attr:`url` shows where it connects.

    **Threads.** Every public method is thread-safe and may be called from any thread, including
    from a handler, a tool or an audio callback. Send methods (``append_audio``, ``commit``,
    ``create_response``, ...) only encode and queue: they never wait for the network. Handlers
    run one at a time, in arrival order, on the session's dispatcher thread. ``ask()``,
    ``wait()``, ``update(wait=True)`` and ``end()`` block; from a handler ``ask`` and ``wait``
    raise :class:`~dashscope_rt.errors.BlockingCallInHandler`, ``update`` and ``end`` do not wait.

    **Errors.** A handler that raises is reported to the ``on_error`` handlers (default: logged
    with its traceback) and the session goes on; ``handler_errors="raise"`` makes it end the
    session instead, and :meth:`wait` re-raises it. Server ``error`` events reach ``on_error`` as
    :class:`~dashscope_rt.errors.ServerError`; when the server closes the connection right after
    one, that error ended the session (``ServerError.fatal``) and :meth:`wait` raises it.

    **Options.** ``tools`` takes plain functions
    (schema from type hints and docstring), :func:`~dashscope_rt.tools.tool`-decorated ones or
    wire dicts. ``ping_interval``: ping when nothing was received for that long (None: never);
    no answer within ``ping_timeout`` ends the connection (1006). ``close_timeout`` bounds the
    closing handshake and each thread join. ``reconnect``: a :class:`ReconnectPolicy` (off by
    default). ``ca_file``/``ssl_context``: TLS trust (verified by default). ``proxy``: an
    ``http://[user:password@]host:port`` proxy, ``False`` for none, or None to take
    ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY`` from the environment; loopback hosts are never
    proxied. ``record_to``: a directory for a WAV of what was sent, a WAV of what came back and a
    JSONL event log. ``send_backlog_bytes``: queued-but-unsent limit, beyond which sends raise
    :class:`~dashscope_rt.errors.SendBacklogFull`. ``receive_backlog_bytes``: received events
    waiting for the handlers, beyond which the session closes with
    :class:`~dashscope_rt.errors.ReceiveBacklogFull` (everything before it is still handled).
    ``max_frame_bytes``: the largest message accepted from the server
    (:class:`~dashscope_rt.errors.FrameTooLarge`). ``tool_timeout``: seconds a tool may run
    before the model gets an error result instead (a tool's own ``timeout`` wins; None: no
    limit). ``expiry_warning``: seconds before the 120-minute cap to emit
    :class:`~dashscope_rt.events.SessionExpiring`. Threads are daemons named
    ``dashscope_rt-{reader,dispatch,sender,tool}-N``: none of them delays the interpreter's exit.

    **Production.** ``max_history``: history lines (and metrics) kept, None for all.
    ``history``: an earlier transcript (``export_history()`` JSON or entries) to continue;
    it and, after a reconnect or a rollover, the transcript so far are given to the new server
    session through its ``instructions`` (the last ``context_chars`` characters; 0: never).
    ``rollover``: seconds before the cap (``max_duration``, 120 minutes) at which, between
    turns, the session moves to a new server session (:class:`~dashscope_rt.events.RolledOver`).
    ``prices``: a :class:`~dashscope_rt.pricing.PriceTable` (or its dict, or a JSON path) for
    ``Reply.cost`` and :attr:`total_cost`; ``budget``: the total at which ``BudgetExceeded`` is
    emitted, and with ``budget_action="end"`` the session closes. With ``opentelemetry-api`` and
    a tracer provider configured (or given as ``tracer_provider``), spans are recorded per
    session, turn and tool call (:mod:`dashscope_rt.telemetry`).
    """

    def __init__(
        self,
        model: str | ModelInfo,
        *,
        api_key: str | None = None,
        region: str = "cn",
        url: str | None = None,
        workspace: str | None = None,
        config: SessionConfig | None = None,
        tools: Sequence[Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float = 20.0,
        close_timeout: float = 3.0,
        reconnect: ReconnectPolicy | None = None,
        handler_errors: str = "log",
        ca_file: str | None = None,
        ssl_context: Any = None,
        proxy: ProxySetting = None,
        record_to: str | os.PathLike[str] | None = None,
        send_backlog_bytes: int = 32 * 1024 * 1024,
        receive_backlog_bytes: int = 64 * 1024 * 1024,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        expiry_warning: float = 300.0,
        tool_workers: int = 4,
        tool_timeout: float | None = None,
        max_history: int | None = 200,
        history: Any = None,
        context_chars: int = 4000,
        rollover: float | None = None,
        max_duration: float = SESSION_CAP_S,
        prices: Any = None,
        budget: float | None = None,
        budget_action: str = "event",
        tracer_provider: Any = None,
    ) -> None:
        info = model if isinstance(model, ModelInfo) else get_model(model)
        key, url = resolve_endpoint(api_key, url)
        if key is None and not is_loopback(url):
            raise InvalidInput(
                "no API key: pass api_key=... or set the DASHSCOPE_API_KEY environment variable "
                "(keys are region-bound: a Beijing key for region='cn', a Singapore key for "
                "region='intl'); a local simulator URL (127.0.0.1) needs none"
            )
        if handler_errors not in ("log", "raise"):
            raise InvalidInput(f"handler_errors must be 'log' or 'raise', got {handler_errors!r}")
        if ping_interval is not None and ping_interval <= 0:
            raise InvalidInput(f"ping_interval must be > 0 or None, got {ping_interval!r}")
        _check_limits(max_frame_bytes, receive_backlog_bytes, tool_timeout)
        if proxy is not None and proxy is not False:
            proxy_secrets(proxy)  # refuses a URL that is not http://[user:password@]host:port
        _check_production_options(context_chars, rollover, max_duration, budget_action)
        endpoint = url
        if url is None:
            region = region_key(region)
            endpoint = workspace_endpoint(info, region=region, workspace=workspace)
        try:
            full_url = build_url(info.name, region=region, url=endpoint)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        headers: dict[str, str] = {"User-Agent": f"dashscope_rt/{__version__}"}
        if key is not None:
            headers["Authorization"] = _Secret(f"Bearer {key}")
        if workspace:
            headers["X-DashScope-WorkSpace"] = workspace
        headers.update(extra_headers or {})
        cfg = config if config is not None else SessionConfig()
        if not isinstance(cfg, SessionConfig):
            raise InvalidType(f"config must be a SessionConfig, got {type(cfg).__name__}")
        self._engine = Engine(
            model=info,
            url=full_url,
            headers=headers,
            region=None if url is not None else region,
            config=cfg,
            tools=as_tools(tools),
            connect_timeout=connect_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            reconnect=reconnect,
            handler_errors=handler_errors,
            ca_file=ca_file,
            ssl_context=ssl_context,
            proxy=proxy,
            max_frame_bytes=max_frame_bytes,
            send_backlog_bytes=send_backlog_bytes,
            receive_backlog_bytes=receive_backlog_bytes,
            record_to=os.fspath(record_to) if record_to is not None else None,
            expiry_warning=expiry_warning,
            tool_workers=tool_workers,
            tool_timeout=tool_timeout,
        )
        self._engine.settings.wire_session()  # refuse what the model cannot do now, not at connect
        self._setup_production(
            info, max_history, history, context_chars, prices, budget, tracer_provider
        )
        self._engine.link.session_cap = max_duration
        self._engine.link.rollover_lead = rollover
        self._engine.budget_ends_session = budget_action == "end"
        self._asker = Asker(self._engine)
        # Weakly: the error that ended a session holds, in its traceback, the frame of the
        # wait() that raised it, and so this Session; a strong reference from the finalizer
        # registry would keep every such session (and all it received) alive for ever.
        self._finalizer = weakref.finalize(self, _close_abandoned, weakref.ref(self._engine))

    def _setup_production(
        self,
        info: ModelInfo,
        max_history: int | None,
        history: Any,
        context_chars: int,
        prices: Any,
        budget: float | None,
        tracer_provider: Any,
    ) -> None:
        """History bound and restore, context carry-over, cost meter and tracing."""
        e = self._engine
        table = as_price_table(prices)
        meter = CostMeter(info.name, table, budget) if table is not None or budget else None
        conv = Conversation(info, max_history=max_history, meter=meter)
        seed = list(coerce_history(history))
        conv.history = seed[-max_history:] if max_history is not None else seed
        e.conv = conv
        if context_chars > 0:

            def context() -> str:
                return context_block(e.read_conversation(lambda c: tuple(c.history)), context_chars)

            e.context_builder = context
        host = urllib.parse.urlsplit(e.url).hostname or ""
        tracer = make_tracer(info.name, host, tracer_provider)
        if tracer is not None:
            e.dispatcher.observer = tracer.observe
            e.tools.observer = tracer.tool_done

    def __repr__(self) -> str:
        e = self._engine
        sid = f" id={e.settings.session_id}" if e.settings.session_id else ""
        return f"<Session {e.model.name} {e.state.value}{sid} url={self.url!r}>"

    # -- lifecycle ---------------------------------------------------------------------------------

    def connect(self) -> Session:
        """Open the connection and apply the config; returns when the session is usable.

        Waits for ``session.created``, sends ``session.update`` (config and tools) and waits for
        ``session.updated``, all within ``connect_timeout`` however slowly the server answers.
        No thread and no socket are left after a failure. Raises (all from
        :mod:`dashscope_rt.errors`):

        * ``ConnectTimeout`` — no ``session.updated`` within ``connect_timeout``;
        * ``NameResolutionError``, ``ConnectionRefused``, ``TLSError``, or another
          ``ConnectError`` — the endpoint could not be reached;
        * ``ProxyAuthenticationError`` (HTTP 407) or ``ProxyError`` — the proxy refused;
        * ``AuthenticationError`` (401/403, naming the region), ``TooManyRequests`` (429, with
          ``retry_after``) or ``HandshakeError`` — the server refused the upgrade;
        * ``ServerError`` (``fatal``) — an ``error`` event during the setup;
        * ``ConnectionClosed`` — the server closed, or broke the framing (1002), during the
          setup; ``QuotaExceeded`` and ``FrameTooLarge`` are kinds of it;
        * ``SessionClosed`` — this session was connected before, or closed meanwhile;
        * ``InvalidInput`` — the proxy from the environment is not an ``http://`` URL.
        """
        self._engine.connect()
        return self

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop the threads. Idempotent; safe from any thread.

        Frames queued before are sent first. From a handler it returns at once and
        ``on_close`` runs after that handler returns; elsewhere it waits (at most about
        ``close_timeout``) until ``on_close`` has run.
        """
        self._engine.close(code, reason)

    def __enter__(self) -> Session:
        if self._engine.state not in (State.OPEN, State.RECONNECTING):
            self.connect()  # also refuses a closed session
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the session is closed; re-raise the error that ended it, if any."""
        e = self._engine
        if e.on_dispatcher():
            raise BlockingCallInHandler(
                "wait() cannot run in a handler: the session ends after the handler returns"
            )
        if not e.closed_event.wait(timeout):
            raise Timeout(f"the session is still open after {timeout} s")
        e.close()
        if e.fatal is not None:
            raise e.fatal

    def end(self, timeout: float = 5.0) -> None:
        """Finish politely: ``session.finish`` where the model takes it, wait, then close.

        Waits for ``session.finished``, an ``error`` or the server's close, at most ``timeout``
        seconds (not from a handler). Models known to reject ``session.finish`` are simply
        closed; models known to send no ``session.finished`` (qwen3.8) get it, then the close.
        """
        e = self._engine
        if e.state in (State.OPEN, State.RECONNECTING) and e.model.session_finish is not False:
            event = ev.SessionFinish(event_id=ev.new_event_id())
            assert event.event_id is not None
            done = e.waiters.set_finish(event.event_id)
            try:
                e.send_event(event)
            except SessionClosed:
                pass
            else:
                if not e.on_dispatcher() and e.model.session_finished_ack is not False:
                    done.wait(timeout)
        self.close()

    # -- changing the session ----------------------------------------------------------------------

    def update(self, config: SessionConfig, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Change the config: merged into the current one and sent whole (with the tools).

        With ``wait`` (and not from a handler) it blocks until ``session.updated`` and raises
        the server's error if the change is refused (the local config is then left unchanged).
        """
        self._engine.update(config, wait=wait, timeout=timeout)

    # -- blocking helper ---------------------------------------------------------------------------

    def ask(
        self,
        *,
        text: str | None = None,
        audio: Any = None,
        image: bytes | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        instructions: str | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        """Send one user turn and block until the whole reply is in.

        Manual mode: text (as a message), audio and image are sent, then commit and
        ``response.create``. VAD mode: the audio is followed by enough silence for the server
        to end the turn and answer by itself (a manual commit under VAD is refused by some
        models), so the audio must contain speech; text or an image alone are sent with
        ``response.create``. Tool calls made on the way are run and included in
        ``Reply.tool_calls``. Raises :class:`~dashscope_rt.errors.Timeout`, the server's
        ``ServerError`` for a refused request, or the error that closed the session; from a
        handler, :class:`~dashscope_rt.errors.BlockingCallInHandler`.
        """
        return self._asker.ask(
            text=text,
            audio=audio,
            image=image,
            sample_rate=sample_rate,
            channels=channels,
            instructions=instructions,
            timeout=timeout,
        )

    def stream_audio(
        self,
        audio: Any,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        speed: float = 1.0,
        timeout: float = 60.0,
        no_speech_timeout: float = 4.0,
        on_chunk: Callable[[Any, float], None] | None = None,
    ) -> Reply:
        """Stream a WAV file or array as one spoken turn at real-time pace; return the reply.

        Silence follows until the server's voice detection ends the turn. Ctrl+C drops the
        half-sent turn on the server. See :func:`dashscope_rt.streaming.stream_audio`.
        """
        from .streaming import stream_audio

        return stream_audio(
            self,
            audio,
            sample_rate=sample_rate,
            channels=channels,
            speed=speed,
            timeout=timeout,
            no_speech_timeout=no_speech_timeout,
            on_chunk=on_chunk,
        )
