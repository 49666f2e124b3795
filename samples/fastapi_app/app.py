"""FastAPI relay: the browser records from its microphone, this server runs one ``AsyncSession``
per browser WebSocket and streams the transcript (JSON) and the reply audio (binary PCM) back.

Everything runs on the server's event loop: no handler blocks it, and the key stays on the
server. The page and its JavaScript are the Flask sample's (``samples/flask_app``), with the
same wire format on ``/ws``. Needs ``pip install fastapi uvicorn`` (both in the ``dev`` extra).

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/fastapi_app/app.py --url ws://127.0.0.1:8765/api-ws/v1/realtime
    # open http://127.0.0.1:8000 and click Start

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/fastapi_app/app.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from dashscope_rt import AsyncSession, RealtimeError, Reply, ServerVAD, SessionClosed, SessionConfig

MODEL = "qwen3-omni-flash-realtime"
FLASK_SAMPLE = Path(__file__).resolve().parent.parent / "flask_app"
log = logging.getLogger("fastapi_app")

SessionFactory = Callable[[], AsyncSession]


def page() -> str:
    """The Flask sample's page, with its one template expression filled in."""
    html = (FLASK_SAMPLE / "templates" / "index.html").read_text(encoding="utf-8")
    return html.replace("{{ url_for('static', filename='app.js') }}", "/static/app.js")


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
) -> FastAPI:
    """The FastAPI app. ``session_factory`` makes an unconnected AsyncSession per browser
    connection (default: ``MODEL`` against ``url``, else the real service in ``region``)."""
    if session_factory is None:
        kwargs = connection(url, region)
        config = SessionConfig(
            voice="Cherry",
            instructions="You are a friendly voice assistant. Keep answers short.",
            turn_detection=ServerVAD(silence_duration_ms=600),
        )

        def session_factory() -> AsyncSession:
            return AsyncSession(MODEL, config=config, **kwargs)

    factory = session_factory
    app = FastAPI(title="dashscope_rt voice chat")
    app.mount("/static", StaticFiles(directory=FLASK_SAMPLE / "static"), name="static")
    index = page()

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return index

    @app.websocket("/ws")
    async def relay(ws: WebSocket) -> None:
        await relay_browser(ws, factory)

    return app


async def relay_browser(ws: WebSocket, factory: SessionFactory) -> None:
    """Serve one browser WebSocket: browser audio in, transcript and reply audio out."""
    await ws.accept()
    lock = asyncio.Lock()

    async def send(message: Any) -> None:
        async with lock:
            try:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(json.dumps(message))
            except Exception:  # the browser left; the receive loop below notices
                log.debug("browser gone, dropping a message")

    try:
        start = json.loads(await asyncio.wait_for(ws.receive_text(), 30) or "{}")
        rate = int(start.get("sampleRate", 16000))
    except (ValueError, TypeError, asyncio.TimeoutError, WebSocketDisconnect):
        await send({"type": "error", "message": "expected a start message first"})
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
    async def done(reply: Reply) -> None:
        first_audio = reply.metrics.speech_end_to_first_audio_ms
        await send(
            {
                "type": "done",
                "status": reply.status,
                "text": reply.transcript or reply.text,
                "audioSeconds": round(reply.duration, 2),
                "firstAudioMs": None if first_audio is None else round(first_audio),
            }
        )

    try:
        await session.connect()
    except RealtimeError as exc:
        await send({"type": "error", "message": str(exc)})
        await ws.close()
        return
    await send(
        {"type": "ready", "inputRate": session.input_rate, "outputRate": session.output_rate}
    )
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                session.append_audio(message["bytes"], sample_rate=rate)  # never blocks
            elif message.get("text") and json.loads(message["text"]).get("type") == "stop":
                break
    except SessionClosed:
        pass
    except Exception as exc:  # mostly the browser closing its socket
        log.debug("relay ends: %r", exc)
    finally:
        await session.close()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(url=args.url, region=args.region), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
