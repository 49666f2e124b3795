"""Live conversation: microphone in, speaker out, and barge-in (talk over the model to stop it).

Needs the audio extra: ``pip install 'dashscope-rt[audio]'`` (sounddevice + PortAudio). Use
headphones, or the model hears itself through the speaker and interrupts its own answers.

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
from dashscope_rt.audio import Microphone, Player, StreamFactory, check_device

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
) -> list[Reply]:
    """Converse until ``stop`` is set (or the session ends); returns the finished replies.

    ``mic_stream`` / ``speaker_stream`` replace the sound card (tests pass fakes).
    """
    replies: list[Reply] = []
    config = SessionConfig(
        voice="Cherry",
        instructions="You are a friendly voice assistant. Keep answers short.",
        turn_detection=ServerVAD(silence_duration_ms=600),
    )
    with Session(MODEL, config=config, **session_kwargs) as session:
        speaker = Player(session.output_rate, stream_factory=speaker_stream)

        @session.on_audio_delta
        def play(event: Any) -> None:
            speaker.write(event.audio)

        @session.on_speech_started
        def barge_in(event: Any) -> None:
            dropped = speaker.clear()  # the user talks: stop playing the old answer at once
            print(f"[listening{f', cut {dropped:.0f} ms of reply' if dropped else ''}]")

        @session.on_input_transcript
        def heard(event: Any) -> None:
            print(f"you:       {event.transcript}")

        @session.on_response_done
        def answered(reply: Reply) -> None:
            replies.append(reply)
            print(f"assistant: {reply.transcript or reply.text}  [{reply.status}]")

        session.on_close(lambda closed: stop.set())
        mic = Microphone(session, sample_rate=mic_rate, stream_factory=mic_stream)
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
    args = parser.parse_args()
    try:  # no sound card (a server, Docker, WSL) or no sounddevice: say so before connecting
        check_device("input")
        check_device("output")
    except (AudioDeviceError, ImportError) as exc:
        sys.exit(f"microphone.py: {exc}")
    stop = threading.Event()
    try:
        run(connection(args.url, args.region), stop)
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
