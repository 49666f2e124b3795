"""Live conversation: microphone in, speaker out, and barge-in (talk over the model to stop it).

Needs the audio extra: ``pip install 'dashscope-rt[audio]'`` (sounddevice + PortAudio). No
headphones needed with the aec extra (``pip install 'dashscope-rt[audio,aec]'``): the speaker's
echo is cancelled, so the model does not hear itself and you can talk over it. Without it (or
with --no-aec) the microphone is muted while the model speaks (half duplex).

Against the local simulator (no key, no network; it answers with synthesized babble):
    dashscope-rt simulate --any-key &
    python samples/microphone.py --url ws://127.0.0.1:8765/api-ws/v1/realtime

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/microphone.py            # speak; Ctrl+C to stop
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

from dashscope_rt import AudioDeviceError, Reply, ServerVAD, Session, SessionConfig
from dashscope_rt.audio import (
    AEC_EXTRA_HINT,
    EchoCanceller,
    Microphone,
    Player,
    StreamFactory,
    aec_available,
    check_device,
)
from dashscope_rt.conversation import ReplyInterrupted

MODEL = "qwen3-omni-flash-realtime"


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}


def run(
    session_kwargs: dict[str, Any],
    stop: threading.Event,
    *,
    mic_stream: StreamFactory | None = None,
    speaker_stream: StreamFactory | None = None,
    mic_rate: int | None = None,
    echo_cancellation: bool = True,
) -> list[Reply]:
    """Converse until ``stop`` is set (or the session ends); returns the finished replies.

    ``mic_stream`` / ``speaker_stream`` replace the sound card (tests pass fakes).
    ``echo_cancellation`` (when the aec extra is installed) lets you talk over the model;
    otherwise the microphone is muted while it speaks.
    """
    replies: list[Reply] = []
    config = SessionConfig(
        voice="Cherry",
        instructions="You are a friendly voice assistant. Keep answers short.",
        turn_detection=ServerVAD(silence_duration_ms=600),
    )
    with Session(MODEL, config=config, **session_kwargs) as session:
        aec = EchoCanceller(session.input_rate) if echo_cancellation and aec_available() else None
        speaker = Player(session.output_rate, stream_factory=speaker_stream, echo_canceller=aec)
        # The session plays each reply and stops it the moment you talk over it.
        session.attach_player(speaker)

        @session.on_speech_started
        def listening(event: Any) -> None:
            print("[listening]")

        @session.on(ReplyInterrupted)
        def cut(notice: ReplyInterrupted) -> None:
            reply = notice.reply
            print(
                f"[cut after {reply.played_ms or 0:.0f} ms; you heard: {reply.heard_transcript!r}]"
            )

        @session.on_input_transcript
        def heard(event: Any) -> None:
            print(f"you:       {event.transcript}")

        @session.on_response_done
        def answered(reply: Reply) -> None:
            replies.append(reply)
            print(f"assistant: {reply.transcript or reply.text}  [{reply.status}]")

        session.on_close(lambda closed: stop.set())
        mic = Microphone(
            session,
            sample_rate=mic_rate,
            stream_factory=mic_stream,
            echo_canceller=aec,
            mute_while=None if aec else (lambda: speaker.playing),
        )
        if aec is not None:
            print("Echo cancellation on: no headphones needed, talk over the answer to stop it.")
        else:
            why = (
                "--no-aec" if not echo_cancellation else f"for echo cancellation: {AEC_EXTRA_HINT}"
            )
            print(f"Half duplex: the microphone is muted while the assistant speaks ({why}).")
        with speaker, mic:
            print("Speak now (Ctrl+C to stop).")
            stop.wait()
    return replies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    parser.add_argument(
        "--no-aec", action="store_true", help="no echo cancellation: mute the mic while it speaks"
    )
    args = parser.parse_args()
    try:  # no sound card (a server, Docker, WSL) or no sounddevice: say so before connecting
        check_device("input")
        check_device("output")
    except (AudioDeviceError, ImportError) as exc:
        sys.exit(f"microphone.py: {exc}")
    stop = threading.Event()
    try:
        run(connection(args.url, args.region), stop, echo_cancellation=not args.no_aec)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
