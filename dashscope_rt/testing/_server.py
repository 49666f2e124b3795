"""The simulator's WebSocket server: handshake checks, one engine per connection, inspection."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import attrs
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..errors import Timeout
from ..models import get_model
from ._audio_input import Transcriber, default_transcriber
from ._behaviour import Behaviour
from ._connection import ConnectionRecord, _Engine
from ._engine import SimulatedSession
from ._faults import Faults
from ._replay import ReplayEngine
from ._responder import Responder, ScriptedReply, Turn, default_responder

__all__ = ["PATH", "ConnectionRecord", "Rejection", "Simulator"]

log = logging.getLogger("dashscope_rt.testing")


class _RedactCredentials(logging.Filter):
    """websockets logs each request header at DEBUG; keep the Authorization value out."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and str(args[0]).lower() in ("authorization", "x-api-key")
        ):
            record.args = (args[0], "[redacted]")
        return True


_wire_log = logging.getLogger("dashscope_rt.testing.wire")
_wire_log.addFilter(_RedactCredentials())

PATH = "/api-ws/v1/realtime"
_MAX_FRAME = 32 * 1024 * 1024
_T = TypeVar("_T")


@attrs.frozen
class Rejection:
    """A handshake the simulator refused (HTTP status before the upgrade)."""

    status: int
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def _redact(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.raw_items():
        if k.lower() == "authorization":
            scheme, _, secret = v.partition(" ")
            v = f"{scheme} {secret[:3]}…" if secret else "…"
        out[k] = v
    return out


class Simulator:
    """A local stand-in for the DashScope realtime service, on a real WebSocket server.

    >>> with Simulator() as sim:                    # doctest: +SKIP
    ...     ws = websocket.create_connection(sim.url + "?model=qwen3-omni-flash-realtime",
    ...                                      header=[f"Authorization: Bearer {sim.api_key}"])

    ``url`` has no query string: add ``?model=...`` (or use :meth:`url_for`). Every connection
    is served from one event loop in one thread: a ``responder`` or ``transcriber`` runs on it,
    so a slow one delays every connection.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "sk-test",
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: Behaviour | None = None,
        realtime: bool | float = False,
        responder: Responder | None = None,
        transcriber: Transcriber | None = None,
        faults: Faults | None = None,
        replay: str | Path | None = None,
        replay_realtime: bool = False,
        close_timeout: float = 0.5,
        record: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.api_key = api_key
        self.ssl_context = ssl_context
        """Serve ``wss://`` with this server-side TLS context (e.g. from ``trustme``)."""
        self.host = host
        self._port = port
        self.behaviour = behaviour or Behaviour()
        if realtime is not False:
            self.behaviour = attrs.evolve(
                self.behaviour, speed=1.0 if realtime is True else float(realtime)
            )
        self.responder: Responder = responder or default_responder
        self.transcriber: Transcriber = transcriber or default_transcriber
        self.faults = faults or Faults()
        self.replay = Path(replay) if replay is not None else None
        self.replay_realtime = replay_realtime
        self.close_timeout = close_timeout
        self.record = record
        """Keep every event of every connection for inspection (off for long-running servers)."""
        self.rejected: list[Rejection] = []
        self._connections: list[ConnectionRecord] = []
        self._pending: dict[int, dict[str, Any]] = {}
        self._scripted: collections.deque[str] = collections.deque()
        self._scripted_replies: collections.deque[ScriptedReply | str] = collections.deque()
        self._lock = threading.RLock()  # predicates of wait_for may use the properties below
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._next_id = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Simulator:
        """Listen, serving every connection from one event loop in a thread of its own."""
        if self._server is not None:
            return self
        self._stopping.clear()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="sim-server", daemon=True)
        thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(self._serve(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("simulator listening on %s", self.url)
        return self

    async def _serve(self) -> Server:
        server = await serve(
            self._handler,
            self.host,
            self._port,
            process_request=self._process_request,
            compression=None,
            max_size=_MAX_FRAME,
            ping_interval=None,
            close_timeout=self.close_timeout,
            server_header="dashscope-rt-simulator",
            logger=_wire_log,
            ssl=self.ssl_context,
        )
        assert isinstance(server, Server)
        return server

    def stop(self) -> None:
        """Close every connection (1001) and the listening socket; joins the server's thread."""
        server, self._server = self._server, None
        loop, thread = self._loop, self._thread
        if server is None or loop is None or thread is None:
            return
        self._stopping.set()
        self._changed()
        asyncio.run_coroutine_threadsafe(self._shutdown(server), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    async def _shutdown(self, server: Server) -> None:
        server.close()  # closes the connections with 1001
        try:
            await asyncio.wait_for(server.wait_closed(), self.close_timeout + 5.0)
        except asyncio.TimeoutError:  # not TimeoutError before Python 3.11
            log.warning("simulator connections still open after stop(); cancelled")
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://host:port/api-ws/v1/realtime`` (``wss://`` with TLS; append ``?model=...``)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self._port}{PATH}"

    def url_for(self, model: str) -> str:
        return f"{self.url}?{urllib.parse.urlencode({'model': model})}"

    # ------------------------------------------------------------ scripting
    def script_transcripts(self, transcripts: Iterable[str]) -> None:
        """Transcripts for the next committed audio turns, in order (then the transcriber)."""
        with self._lock:
            self._scripted.extend(transcripts)

    def script_replies(self, replies: Iterable[ScriptedReply | str]) -> None:
        """Replies for the next responses, in order (then the responder)."""
        with self._lock:
            self._scripted_replies.extend(replies)

    def _transcribe(self, pcm: bytes, rate: int) -> str:
        with self._lock:
            if self._scripted:
                return self._scripted.popleft()
        return self.transcriber(pcm, rate)

    def _respond(self, turn: Turn) -> ScriptedReply | str:
        with self._lock:
            if self._scripted_replies:
                return self._scripted_replies.popleft()
        return self.responder(turn)

    # ------------------------------------------------------------ inspection
    @property
    def connections(self) -> list[ConnectionRecord]:
        with self._lock:
            return list(self._connections)

    def clear_connections(self) -> None:
        """Forget the records of finished connections (live ones stay listed)."""
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed.is_set()]

    @property
    def last(self) -> ConnectionRecord:
        """The most recent connection (waits up to 5 s for one)."""
        return self.wait_for(lambda: self._connections[-1] if self._connections else None, 5.0)

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], _T | None], timeout: float = 5.0) -> _T:
        """Wait until ``predicate()`` is truthy (re-checked on every event); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"simulator condition not met within {timeout} s")
                self._cond.wait(min(left, 0.1))

    # ------------------------------------------------------------ server side
    def _reject(
        self, status: int, reason: str, path: str, headers: Headers, body: dict[str, Any]
    ) -> Response:
        body = {**body, "request_id": str(uuid.uuid4())}
        data = json.dumps(body).encode("utf-8")
        hdrs = Headers(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Connection", "close"),
            ]
        )
        with self._lock:
            self.rejected.append(Rejection(status, path, body, _redact(headers)))
        self._changed()
        return Response(status, reason, hdrs, data)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urllib.parse.urlsplit(request.path)
        query = urllib.parse.parse_qs(parts.query)
        if parts.path.rstrip("/") != PATH:
            return self._reject(
                404,
                "Not Found",
                request.path,
                request.headers,
                {"code": "NotFound", "message": f"No such endpoint: {parts.path}"},
            )
        auth = request.headers.get("Authorization")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return self._reject(
                401,
                "Unauthorized",
                request.path,
                request.headers,
                {"code": "InvalidApiKey", "message": "Invalid API-key provided."},
            )
        models = query.get("model") or [""]
        if not models[0]:
            return self._reject(
                400,
                "Bad Request",
                request.path,
                request.headers,
                {"code": "InvalidParameter", "message": "Missing required parameter: 'model'."},
            )
        with self._lock:
            self._next_id += 1
            self._pending[id(connection)] = {
                "id": self._next_id,
                "path": request.path,
                "model": models[0],
                "headers": _redact(request.headers),
                "workspace": request.headers.get("X-DashScope-WorkSpace"),
            }
        return None

    def _make_engine(self, model_name: str) -> _Engine:
        if self.replay is not None:
            return ReplayEngine(self.replay, now=time.monotonic(), realtime=self.replay_realtime)
        info = get_model(model_name)
        return SimulatedSession(
            info,
            behaviour=self.behaviour,
            responder=self._respond,
            transcriber=self._transcribe,
            now=time.monotonic(),
            known_model=info.known,
        )

    async def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            info = self._pending.pop(id(ws))
        record = ConnectionRecord(self, ws, info)
        record.engine = self._make_engine(record.model)
        with self._lock:
            self._connections.append(record)
        self._changed()
        await record._run()
