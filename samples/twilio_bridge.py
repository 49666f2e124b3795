"""Phone calls: a Twilio Media Streams bridge, one realtime session per call.

    python samples/twilio_bridge.py --port 5050 --url WS_URL --api-key KEY --model MODEL

serves the Media Streams WebSocket at ``/media`` (flask + flask-sock, both in the ``dev``
extra: ``pip install flask flask-sock``). The caller's μ-law goes to the model (8 kHz natively on
the qwen3.5 models, resampled on the others), the spoken answer comes back as μ-law in 20 ms
frames, and talking over the bot cuts it off at once.

Point a Twilio number at it: expose the port over HTTPS (e.g. ``ngrok http 5050``) and set the
number's "A call comes in" webhook to ``https://YOUR-HOST/twiml``, which answers with::

    <?xml version="1.0" encoding="UTF-8"?>
    <Response>
      <Connect>
        <Stream url="wss://YOUR-HOST/media" />
      </Connect>
    </Response>

(or paste that TwiML into a TwiML Bin). ``<Connect><Stream>`` makes the stream bidirectional,
which the bridge needs to talk back.

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/twilio_bridge.py --port 5050 --url ws://127.0.0.1:8765/api-ws/v1/realtime \\
        --api-key sk-test --model qwen3.5-omni-flash-realtime

Against the real service: omit ``--url`` (``--region intl`` for a Singapore key) and pass
``--api-key`` or set ``$DASHSCOPE_API_KEY``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any
from xml.sax.saxutils import quoteattr

from flask import Flask, Response, request
from flask_sock import Sock

from dashscope_rt import ServerVAD, SessionConfig
from dashscope_rt.telephony import CallReport, TwilioBridge

MODEL = "qwen3.5-omni-flash-realtime"
INSTRUCTIONS = (
    "You are a friendly assistant on a phone call. Answer in one or two short sentences, "
    "in plain words that sound natural when spoken."
)
log = logging.getLogger("twilio_bridge")


def create_bridge(
    model: str = MODEL,
    *,
    url: str | None = None,
    api_key: str | None = None,
    region: str = "cn",
    config: SessionConfig | None = None,
    **session_options: Any,
) -> TwilioBridge:
    """A bridge opening a ``model`` session per call (against ``url`` if given)."""
    if config is None:
        config = SessionConfig(
            instructions=INSTRUCTIONS, turn_detection=ServerVAD(silence_duration_ms=500)
        )
    where: dict[str, Any] = {"url": url} if url else {"region": region}

    def report(call: CallReport) -> None:
        log.info(
            "call %s ended (%s): %d frames in, %d out, %d barge-in(s)",
            call.call_sid or call.stream_sid,
            call.end,
            call.frames_in,
            call.frames_out,
            call.clears,
        )

    session_options.setdefault("on_call_end", report)
    return TwilioBridge.for_model(model, config=config, api_key=api_key, **where, **session_options)


def create_app(bridge: TwilioBridge) -> Flask:
    """The Flask app: ``/media`` (the Media Streams WebSocket) and ``/twiml`` (the webhook)."""
    app = Flask(__name__)
    sock = Sock(app)

    @app.route("/twiml", methods=["GET", "POST"])
    def twiml() -> Response:
        stream = f"wss://{request.host}/media"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Connect><Stream url={quoteattr(stream)} /></Connect></Response>\n"
        )
        return Response(body, mimetype="text/xml")

    def media(ws: Any) -> None:
        bridge.serve(ws)

    sock.route("/media")(media)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="service URL")
    parser.add_argument("--api-key", default=os.environ.get("DASHSCOPE_API_KEY"))
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    bridge = create_bridge(args.model, url=args.url, api_key=args.api_key, region=args.region)
    create_app(bridge).run(args.host, args.port, threaded=True)


if __name__ == "__main__":
    main()
