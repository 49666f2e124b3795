"""Camera frames with speech: JPEG frames at 1-2 fps while you talk, then the spoken answer.

Frames come from a webcam when OpenCV (``pip install opencv-python``) and a camera are there,
else from still images (``samples/assets/still.jpg``, or drawn with Pillow), so the sample runs
anywhere. The service takes JPEG only (at most ~190 KB) and needs audio before the first image;
``Session.append_image`` checks both and ``to_jpeg`` scales a frame down to fit.

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/camera.py --url ws://127.0.0.1:8765/api-ws/v1/realtime

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/camera.py --wav samples/assets/question.wav --webcam
"""

from __future__ import annotations

import argparse
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashscope_rt import Reply, Session
from dashscope_rt.audio import read_wav, to_jpeg

MODEL = "qwen3-omni-flash-realtime"
ASSETS = Path(__file__).parent / "assets"
CHUNK_MS = 100
MAX_FPS = 2.0


def still_frames() -> Iterator[bytes]:
    """Endless JPEG frames: drawn with Pillow if it is installed, else the bundled still."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        still = (ASSETS / "still.jpg").read_bytes()
        yield from itertools.repeat(still)
        return
    for n in itertools.count():
        img = Image.new("RGB", (640, 480), (30, 60 + n * 10 % 120, 140))
        draw = ImageDraw.Draw(img)
        draw.ellipse((40 + n * 40 % 480, 160, 200 + n * 40 % 480, 320), fill=(240, 200, 40))
        draw.text((20, 20), f"frame {n}", fill=(255, 255, 255))
        yield to_jpeg(img)


def webcam_frames(index: int = 0) -> Iterator[bytes] | None:
    """JPEG frames from a webcam through OpenCV, or None when there is none."""
    try:
        import cv2  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    cam = cv2.VideoCapture(index)
    if not cam.isOpened():
        return None

    def frames() -> Iterator[bytes]:
        try:
            while True:
                ok, frame = cam.read()
                if ok:
                    yield to_jpeg(frame, bgr=True, max_side=640)
        finally:
            cam.release()

    return frames()


def fps_value(text: str) -> float:
    """``--fps``: the service takes at most 2 frames per second."""
    try:
        fps = float(text)
    except ValueError:
        fps = float("nan")
    if not 0 < fps <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_FPS:g}, got {text!r}")
    return fps


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}


def run(
    session_kwargs: dict[str, Any],
    pcm: bytes,
    sample_rate: int,
    frames: Iterator[bytes],
    *,
    fps: float = 1.0,
    pace: float = 1.0,
) -> Reply:
    """Stream ``pcm`` in real time (``pace`` × faster; 0 = no waiting) with a frame every 1/fps s.

    Then stream silence until the server's voice detection ends the turn and the reply is in.
    """
    if not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be above 0 and at most {MAX_FPS:g} (the service's limit)")
    done = threading.Event()
    replies: list[Reply] = []
    step = sample_rate * CHUNK_MS // 1000 * 2
    with Session(MODEL, **session_kwargs) as session:

        @session.on_response_done
        def finished(reply: Reply) -> None:
            replies.append(reply)
            done.set()

        sent_ms = 0
        last_frame_ms = -100_000
        start = time.monotonic()
        for i in range(0, len(pcm), step):
            session.append_audio(pcm[i : i + step], sample_rate=sample_rate)
            # Frames follow the audio's clock (live apps can use audio.ImageRateLimiter).
            if sent_ms - last_frame_ms >= 1000 / fps:
                session.append_image(next(frames))
                last_frame_ms = sent_ms
                print(f"  frame at {sent_ms / 1000:.1f} s")
            sent_ms += CHUNK_MS
            if pace > 0:
                time.sleep(max(0.0, start + sent_ms / 1000 / pace - time.monotonic()))
        silence = b"\x00\x00" * (sample_rate * CHUNK_MS // 1000)
        for _ in range(300):  # up to 30 s
            if done.is_set():
                break
            session.append_audio(silence, sample_rate=sample_rate)
            done.wait(CHUNK_MS / 1000 / pace if pace > 0 else 0.01)
        if not done.wait(30.0):
            raise TimeoutError("no reply within 30 s")
    reply = replies[0]
    print(f"assistant: {reply.transcript or reply.text}")
    return reply


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wav", type=Path, default=ASSETS / "question.wav", help="speech to send")
    parser.add_argument("--webcam", action="store_true", help="use a webcam (needs OpenCV)")
    parser.add_argument("--fps", type=fps_value, default=1.0, help="frames per second (0-2]")
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    args = parser.parse_args()
    frames = webcam_frames() if args.webcam else None
    if frames is None:
        if args.webcam:
            print("no webcam (or no OpenCV): sending still images instead")
        frames = still_frames()
    wav = read_wav(args.wav)
    pcm = wav.to_pcm16(mono=True)
    run(connection(args.url, args.region), pcm, wav.sample_rate, frames, fps=args.fps)


if __name__ == "__main__":
    main()
