"""The simulator's WebSocket server: handshake checks, one engine per connection, inspection."""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from ..errors import Timeout
from ..events import ErrorDetail, ErrorEvent, ServerEvent, new_event_id
from ..models import get_model
from ._audio_input import Transcriber, default_transcriber
from ._behaviour import Behaviour
from ._engine import SimulatedSession
from ._faults import Faults, close_frame
from ._outbox import Outgoing
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


class _Engine(Protocol):
    @property
    def closing(self) -> bool: ...

    def receive(self, frame: str | bytes, now: float) -> None: ...

    def poll(self, now: float) -> list[Outgoing]: ...

    def next_due(self) -> float | None: ...


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


class ConnectionRecord:
    """One client connection: what it sent and received, and controls to break it.

    ``received`` and ``sent`` are ``(seconds since the connection opened, event)`` pairs in order;
    an event is the decoded dict, or the raw ``str``/``bytes`` frame when it was not JSON.
    """

    def __init__(self, sim: Simulator, ws: ServerConnection, info: dict[str, Any]) -> None:
        self._sim = sim
        self._ws = ws
        self.id: int = info["id"]
        self.path: str = info["path"]
        self.model: str = info["model"]
        self.headers: dict[str, str] = info["headers"]
        self.workspace: str | None = info["workspace"]
        self.faults: Faults = copy.deepcopy(sim.faults)
        self.received: list[tuple[float, Any]] = []
        self.sent: list[tuple[float, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: str | None = None
        """"server", "client" or "drop" (TCP cut without a close frame)."""
        self.closed = threading.Event()
        self.engine: _Engine | None = None
        self._t0 = time.monotonic()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._events_sent = 0
        self._dead = False

    def __repr__(self) -> str:
        return (
            f"<ConnectionRecord #{self.id} model={self.model!r} received={len(self.received)} "
            f"sent={len(self.sent)} close={self.close_code}>"
        )

    # ------------------------------------------------------------ inspection
    def received_types(self) -> list[str]:
        return [e.get("type", "") if isinstance(e, dict) else "<raw>" for _, e in self.received]

    def sent_types(self) -> list[str]:
        return [e.get("type", "") if isinstance(e, dict) else "<raw>" for _, e in self.sent]

    def sent_events(self, etype: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for _, e in list(self.sent)
            if isinstance(e, dict) and (etype is None or e.get("type") == etype)
        ]

    def received_events(self, etype: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for _, e in list(self.received)
            if isinstance(e, dict) and (etype is None or e.get("type") == etype)
        ]

    @property
    def session(self) -> dict[str, Any] | None:
        """The effective session config (None in replay mode)."""
        eng = self.engine
        return copy.deepcopy(eng.config) if isinstance(eng, SimulatedSession) else None

    # ------------------------------------------------------------ controls
    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _log_sent(self, item: Any) -> None:
        if self._sim.record:
            self.sent.append((self._now(), item))
        self._sim._changed()

    def send_raw(self, data: str | bytes) -> None:
        """Send a text (str) or binary (bytes) frame as is: malformed JSON, unknown types, ..."""
        with self._send_lock:
            self._ws.send(data)
            self._log_sent(data)

    def send_event(self, event: ServerEvent | dict[str, Any]) -> None:
        """Send a server event now: a typed event, or a wire dict sent as it is (an
        ``event_id`` is added to either if missing)."""
        if isinstance(event, dict):
            ev = event if "event_id" in event else {"event_id": new_event_id(), **event}
        else:
            ev = event.to_wire(event_id=new_event_id() if event.event_id is None else None)
        with self._send_lock:
            self._ws.send(json.dumps(ev, ensure_ascii=False))
            self._log_sent(ev)

    def inject_error(
        self,
        message: str = "Internal service error: null",
        *,
        type: str = "server_error",
        code: str | None = "internal_error",
        param: str | None = None,
    ) -> None:
        """Send an ``error`` event."""
        self.send_event(
            ErrorEvent(error=ErrorDetail(type=type, code=code, message=message, param=param))
        )

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``/``reason``; a reason over 123 bytes goes out as a raw frame."""
        with self._send_lock:
            self._close_locked(code, reason)

    def _close_locked(self, code: int, reason: str) -> None:
        if self._dead:
            return
        self._dead = True
        self.close_code, self.close_reason, self.closed_by = code, reason, "server"
        if len(reason.encode("utf-8")) <= 123:
            try:
                self._ws.close(code, reason)
            except Exception:  # already gone
                log.debug("close failed", exc_info=True)
            return
        try:
            with self._ws.protocol_mutex:
                self._ws.socket.sendall(close_frame(code, reason))
            self._ws.socket.shutdown(socket.SHUT_WR)
        except OSError:
            log.debug("raw close failed", exc_info=True)

    def ping(self, data: bytes = b"") -> threading.Event:
        """Send a WebSocket ping; the returned event is set when the client's pong arrives."""
        with self._send_lock:
            return self._ws.ping(data)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (the client sees 1006)."""
        with self._send_lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        if self._dead:
            return
        self._dead = True
        self.closed_by = "drop"
        self.close_code = 1006
        with contextlib.suppress(OSError):
            self._ws.socket.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        """Stop sending events (they queue up) until :meth:`resume`."""
        with self._cond:
            self.faults.stall = True

    def resume(self) -> None:
        with self._cond:
            self.faults.stall = False
            self._cond.notify_all()

    # ------------------------------------------------------------ loop
    def _send_outgoing(self, out: Outgoing) -> bool:
        """Send one engine output; False when the connection is finished."""
        f = self.faults
        if out.event is None:
            code, reason = out.close or (1000, "")
            with self._send_lock:
                self._close_locked(code, reason)
            return False
        if f.event_delay_s > 0 and self._sim._stopping.wait(f.event_delay_s):
            return False
        with self._send_lock:
            if self._dead:
                return False
            try:
                self._ws.send(json.dumps(out.event, ensure_ascii=False))
            except ConnectionClosed:
                return False
            self._events_sent += 1
            self._log_sent(out.event)
            if f.drop_after_events is not None and self._events_sent >= f.drop_after_events:
                self._drop_locked()
                return False
            etype = str(out.event.get("type", ""))
            if f.drop_mid_response and etype.startswith("response.") and etype.endswith(".delta"):
                self._drop_locked()
                return False
        return True

    def _sender(self) -> None:
        engine = self.engine
        assert engine is not None
        while True:
            with self._cond:
                while True:
                    if self._sim._stopping.is_set() or self._dead or self.closed.is_set():
                        return
                    if not self.faults.stall:
                        outs = engine.poll(time.monotonic())
                        if outs:
                            break
                        due = engine.next_due()
                    else:
                        due = None
                    timeout = 0.5 if due is None else max(0.0, min(0.5, due - time.monotonic()))
                    self._cond.wait(timeout)
            for out in outs:
                if not self._send_outgoing(out):
                    return

    def _feed(self, frame: str | bytes) -> None:
        parsed: Any = frame
        if isinstance(frame, str):
            try:
                parsed = json.loads(frame)
            except ValueError:
                parsed = frame
        if self._sim.record:
            self.received.append((self._now(), parsed))
        self._sim._changed()
        etype = parsed.get("type") if isinstance(parsed, dict) else None
        if etype in self.faults.close_on:
            code, reason = self.faults.close_on[str(etype)]
            self.close(code, reason)
            return
        if etype in self.faults.error_on:
            error = ErrorDetail.from_wire(dict(self.faults.error_on[str(etype)]))
            self.send_event(ErrorEvent(error=error))
            return
        with self._cond:
            assert self.engine is not None
            self.engine.receive(frame, time.monotonic())
            self._cond.notify_all()

    def _run(self) -> None:
        sender = threading.Thread(target=self._sender, name=f"sim-send-{self.id}", daemon=True)
        sender.start()
        dead_since: float | None = None
        try:
            if self.faults.on_connect_frames:
                self._sim.wait_for(lambda: self._events_sent >= 1, timeout=5.0)
                for data in self.faults.on_connect_frames:
                    self.send_raw(data)
            if self.faults.close_after_created is not None:
                self._sim.wait_for(lambda: self._events_sent >= 1, timeout=5.0)
                self.close(*self.faults.close_after_created)
            while not self._sim._stopping.is_set():
                try:
                    frame = self._ws.recv(timeout=0.25)
                except TimeoutError:
                    if self._dead:
                        # A raw close or a drop: give the client a moment to answer, then go.
                        dead_since = dead_since or time.monotonic()
                        if time.monotonic() - dead_since > 2.0:
                            break
                    continue
                except ConnectionClosed:
                    break
                self._feed(frame)
        except Exception:
            log.exception("simulator connection #%d failed", self.id)
        finally:
            if self.closed_by is None:
                rcvd = self._ws.protocol.close_rcvd
                if self._sim._stopping.is_set():
                    self.closed_by, self.close_code = "server", 1001
                elif rcvd is not None:
                    self.closed_by, self.close_code = "client", rcvd.code
                    self.close_reason = rcvd.reason
                else:
                    self.closed_by, self.close_code = "client", 1006
            with self._cond:
                self.closed.set()
                self._cond.notify_all()
            sender.join()
            self._ws.close_socket()
            self._sim._changed()


class Simulator:
    """A local stand-in for the DashScope realtime service, on a real WebSocket server.

    >>> with Simulator() as sim:                    # doctest: +SKIP
    ...     ws = websocket.create_connection(sim.url + "?model=qwen3-omni-flash-realtime",
    ...                                      header=[f"Authorization: Bearer {sim.api_key}"])

    ``url`` has no query string: add ``?model=...`` (or use :meth:`url_for`).
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
        self._thread: threading.Thread | None = None
        self._next_id = 0
        self._handler_threads: set[threading.Thread] = set()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = serve(
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
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sim-server", daemon=True
        )
        self._thread.start()
        log.info("simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Close every connection (1001) and the listening socket; joins every thread."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for conn in self.connections:
            with conn._cond:
                conn._cond.notify_all()
        server.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        # websockets runs each connection in a thread of its own that shutdown() does not join.
        with self._lock:
            handlers, self._handler_threads = self._handler_threads, set()
        deadline = time.monotonic() + self.close_timeout + 5.0
        for thread in handlers - {threading.current_thread()}:
            thread.join(max(0.0, deadline - time.monotonic()))

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
        self._track_connection_thread()  # rejected handshakes run in a thread of their own too
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

    def _track_connection_thread(self) -> None:
        """Remember the calling websockets connection thread, for :meth:`stop` to join."""
        with self._lock:
            alive = {t for t in self._handler_threads if t.is_alive()}
            self._handler_threads = alive | {threading.current_thread()}

    def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            info = self._pending.pop(id(ws))
        record = ConnectionRecord(self, ws, info)
        record.engine = self._make_engine(record.model)
        with self._lock:
            self._connections.append(record)
        self._changed()
        record._run()
