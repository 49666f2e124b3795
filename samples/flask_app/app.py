"""Flask relay: the browser records from its microphone, this server runs one ``Session`` per
browser connection and streams the transcript (JSON) and the reply audio (binary PCM) back.

The key stays on the server: the browser only talks to Flask. WebSockets come from flask-sock
(``pip install flask flask-sock``; both are in the ``dev`` extra).

Wire format between the page and this server (``/ws``):
    page → server  {"type": "start", "sampleRate": 48000}, then binary PCM16LE mono frames
    server → page  {"type": "ready" | "speech_started" | "user" | "delta" | "done" | "error" |
                    "closed", ...} and binary PCM16LE mono reply audio at ``outputRate``

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/flask_app/app.py --url ws://127.0.0.1:8765/api-ws/v1/realtime
    # open http://127.0.0.1:5000 and click Start

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/flask_app/app.py
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

try:
    from flask import Flask, render_template
    from flask_sock import Sock
except ImportError as exc:
    raise SystemExit(
        f"flask_app needs Flask and flask-sock: pip install flask flask-sock ({exc})"
    ) from None

from dashscope_rt import RealtimeError, Reply, ServerVAD, Session, SessionClosed, SessionConfig

MODEL = "qwen3-omni-flash-realtime"
log = logging.getLogger("flask_app")

SessionFactory = Callable[[], Session]


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}


def create_app(
    session_factory: SessionFactory | None = None,
    *,
    url: str | None = None,
    region: str = "cn",
) -> Flask:
    """The Flask app. ``session_factory`` makes an unconnected Session per browser connection
    (default: ``MODEL`` against ``url``, else the real service in ``region``)."""
    if session_factory is None:
        kwargs = connection(url, region)
        config = SessionConfig(
            voice="Cherry",
            instructions="You are a friendly voice assistant. Keep answers short.",
            turn_detection=ServerVAD(silence_duration_ms=600),
        )

        def session_factory() -> Session:
            return Session(MODEL, config=config, **kwargs)

    factory = session_factory
    app = Flask(__name__)
    sock = Sock(app)

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    def relay(ws: Any) -> None:
        relay_browser(ws, factory)

    sock.route("/ws")(relay)
    return app


def relay_browser(ws: Any, factory: SessionFactory) -> None:
    """Serve one browser WebSocket: browser audio in, transcript and reply audio out."""
    lock = threading.Lock()

    def send(message: Any) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message)
        with lock:
            try:
                ws.send(data)
            except Exception:  # the browser left; the receive loop below notices
                log.debug("browser gone, dropping a message")

    try:
        start = json.loads(ws.receive(timeout=30) or "{}")
        rate = int(start.get("sampleRate", 16000))
    except (ValueError, TypeError):
        send({"type": "error", "message": "expected a start message first"})
        return

    session = factory()
    session.on_speech_started(lambda ev: send({"type": "speech_started"}))
    session.on_input_transcript(lambda ev: send({"type": "user", "text": ev.transcript}))
    session.on_transcript_delta(lambda ev: send({"type": "delta", "text": ev.delta}))
    session.on_text_delta(lambda ev: send({"type": "delta", "text": ev.delta}))
    session.on_audio_delta(lambda ev: send(ev.audio))
    session.on_error(lambda exc: send({"type": "error", "message": str(exc)}))
    session.on_close(lambda closed: send({"type": "closed", "code": closed.code}))

    @session.on_response_done
    def done(reply: Reply) -> None:
        first_audio = reply.metrics.speech_end_to_first_audio_ms
        send(
            {
                "type": "done",
                "status": reply.status,
                "text": reply.transcript or reply.text,
                "audioSeconds": round(reply.duration, 2),
                "firstAudioMs": None if first_audio is None else round(first_audio),
            }
        )

    try:
        session.connect()
    except RealtimeError as exc:
        send({"type": "error", "message": str(exc)})
        return
    send({"type": "ready", "inputRate": session.input_rate, "outputRate": session.output_rate})
    try:
        while True:
            message = ws.receive()
            if isinstance(message, (bytes, bytearray)):
                session.append_audio(bytes(message), sample_rate=rate)
            elif message is not None and json.loads(message).get("type") == "stop":
                break
    except SessionClosed:
        pass
    except Exception as exc:  # mostly the browser closing its socket
        log.debug("relay ends: %r", exc)
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    create_app(url=args.url, region=args.region).run(args.host, args.port, threaded=True)


if __name__ == "__main__":
    main()
