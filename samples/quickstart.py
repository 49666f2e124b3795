"""Quick start: one spoken turn from a WAV file, the reply saved to a WAV file.

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/quickstart.py --url ws://127.0.0.1:8765/api-ws/v1/realtime

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/quickstart.py samples/assets/question.wav --out reply.wav
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from dashscope_rt import Reply, Session, SessionConfig
from dashscope_rt.audio import read_wav

MODEL = "qwen3-omni-flash-realtime"
QUESTION = Path(__file__).parent / "assets" / "question.wav"


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}  # the key comes from $DASHSCOPE_API_KEY


def run(session_kwargs: dict[str, Any], wav_path: Path, out_path: Path) -> Reply:
    """Send ``wav_path`` as one turn, print the transcripts as they stream, save the reply."""
    wav = read_wav(wav_path)
    config = SessionConfig(voice="Cherry", instructions="Answer in one or two sentences.")
    with Session(MODEL, config=config, **session_kwargs) as session:

        @session.on_input_transcript
        def heard(event: Any) -> None:
            print(f"you:       {event.transcript}")

        started: list[bool] = []

        @session.on_transcript_delta
        def speaking(event: Any) -> None:
            if not started:
                started.append(True)
                print("assistant: ", end="")
            print(event.delta, end="", flush=True)

        # ask() streams the audio (resampled to 16 kHz for you), adds the trailing silence the
        # server's voice detection needs to end the turn, and blocks until the reply is done.
        reply = session.ask(audio=wav.pcm, sample_rate=wav.sample_rate, channels=wav.channels)
    print()
    out_path.write_bytes(reply.to_wav())
    tokens = reply.usage.total_tokens if reply.usage else "?"
    print(f"saved {out_path}: {reply.duration:.1f} s of audio, {tokens} tokens")
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wav", nargs="?", type=Path, default=QUESTION, help="a WAV file to send")
    parser.add_argument("--out", type=Path, default=Path("reply.wav"))
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    args = parser.parse_args()
    run(connection(args.url, args.region), args.wav, args.out)


if __name__ == "__main__":
    main()
