"""Push-to-talk desktop window (Tkinter): hold the button or the space bar, speak, release.

The window is a thin layer over ``PushToTalk``, a controller without any GUI code: it records
while the button is held, then commits the turn and asks for the answer (manual turn mode), and
plays the reply. Session callbacks run on the SDK's thread, so they only put messages on a
queue that the Tk main loop polls; Tk widgets are touched from the main thread only.

Needs the audio extra: ``pip install 'dashscope-rt[audio]'`` (and Tk: apt install python3-tk).

Against the local simulator (no key, no network):
    dashscope-rt simulate --any-key &
    python samples/desktop_tk.py --url ws://127.0.0.1:8765/api-ws/v1/realtime

Against the real service (a Beijing key; add --region intl for a Singapore key):
    export DASHSCOPE_API_KEY=sk-...
    python samples/desktop_tk.py
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from typing import Any

from dashscope_rt import AudioDeviceError, Reply, Session, SessionConfig
from dashscope_rt.audio import Microphone, Player, StreamFactory, check_device

MODEL = "qwen3-omni-flash-realtime"


def connection(url: str | None, region: str = "cn") -> dict[str, Any]:
    """Session arguments: a simulator URL, or the real service with $DASHSCOPE_API_KEY."""
    if url:
        return {"url": url, "api_key": os.environ.get("DASHSCOPE_API_KEY", "sk-test")}
    return {"region": region}


class PushToTalk:
    """Record while pressed; on release, commit and ask for the answer; play the reply.

    ``messages`` receives ``(kind, text)`` tuples for the UI: ``("you", ...)``,
    ``("assistant", delta)``, ``("done", summary)``, ``("status", ...)``, ``("error", ...)``.
    """

    def __init__(
        self,
        session_kwargs: dict[str, Any],
        *,
        mic_stream: StreamFactory | None = None,
        speaker_stream: StreamFactory | None = None,
        mic_rate: int | None = None,
    ) -> None:
        self.messages: queue.Queue[tuple[str, str]] = queue.Queue()
        self.replies: list[Reply] = []
        # turn_detection=None: manual turns, the button decides when the user is done.
        config = SessionConfig(voice="Cherry", turn_detection=None)
        self.session = Session(MODEL, config=config, **session_kwargs)
        self._mic = Microphone(self._feed, sample_rate=mic_rate, stream_factory=mic_stream)
        self._captured_s = 0.0
        self._pressed_at = 0.0
        self._speaker_stream = speaker_stream
        self.speaker: Player | None = None
        self.recording = False
        s = self.session
        s.on_audio_delta(lambda ev: self.speaker.write(ev.audio) if self.speaker else None)
        s.on_input_transcript(lambda ev: self.messages.put(("you", ev.transcript or "")))
        s.on_transcript_delta(lambda ev: self.messages.put(("assistant", ev.delta)))
        s.on_response_done(self._done)
        s.on_error(lambda exc: self.messages.put(("error", str(exc))))

    def _feed(self, data: Any, *, sample_rate: int, channels: int) -> None:
        self._captured_s += len(data) / 2 / channels / sample_rate
        self.session.append_audio(data, sample_rate=sample_rate, channels=channels)

    def _done(self, reply: Reply) -> None:
        self.replies.append(reply)
        self.messages.put(("done", f"{reply.status}, {reply.duration:.1f} s of audio"))

    def start(self) -> None:
        """Connect and open the speaker."""
        self.session.connect()
        self.speaker = Player(self.session.output_rate, stream_factory=self._speaker_stream)
        self.speaker.start()
        self.messages.put(("status", "Ready: hold the button (or space) and speak."))

    def press(self) -> None:
        """Start recording; interrupts an answer that is still playing."""
        if self.recording:
            return
        self.recording = True
        if self.speaker is not None:
            self.speaker.clear()
        if self.session.active_response is not None:
            self.session.cancel_response()
        self._captured_s, self._pressed_at = 0.0, time.monotonic()
        self._mic.start()
        self.messages.put(("status", "Recording… release to send."))

    def release(self) -> None:
        """Stop recording and ask for the answer."""
        if not self.recording:
            return
        self.recording = False
        self._mic.stop()  # delivers what is still queued before returning
        held = time.monotonic() - self._pressed_at
        if self._captured_s > 10 * held + 2:
            # A device without a clock (a null or dummy device, e.g. under Xvfb) delivers audio
            # as fast as it is read: that is not what the user said, so do not send it.
            self.session.clear_audio()
            self.messages.put(
                (
                    "error",
                    f"the input device delivered {self._captured_s:.1f} s of audio during a "
                    f"{held:.1f} s press: not a live microphone (a null or dummy device?); "
                    "nothing was sent",
                )
            )
            return
        self.session.commit()
        self.session.create_response()
        self.messages.put(("status", "Thinking…"))

    def close(self) -> None:
        self._mic.close()
        if self.speaker is not None:
            self.speaker.close()
        self.session.close()


def run_window(controller: PushToTalk) -> None:
    """The Tk window: a transcript, a status line and a push-to-talk button."""
    import tkinter as tk

    root = tk.Tk()
    root.title("dashscope_rt push-to-talk")
    text = tk.Text(root, width=64, height=18, wrap="word", state="disabled")
    text.pack(padx=8, pady=8, fill="both", expand=True)
    status = tk.StringVar(value="Connecting…")
    tk.Label(root, textvariable=status, anchor="w").pack(fill="x", padx=8)
    button = tk.Button(root, text="Hold to talk", height=2)
    button.pack(fill="x", padx=8, pady=8)

    def append(line: str) -> None:
        text.configure(state="normal")
        text.insert("end", line)
        text.see("end")
        text.configure(state="disabled")

    def poll() -> None:
        while True:
            try:
                kind, value = controller.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "you":
                append(f"\nYou: {value}\nAssistant: ")
            elif kind == "assistant":
                append(value)
            elif kind == "done":
                status.set(f"Ready ({value})")
            else:
                status.set(value)
        root.after(50, poll)

    button.bind("<ButtonPress-1>", lambda e: controller.press())
    button.bind("<ButtonRelease-1>", lambda e: controller.release())
    # Holding a key sends repeated press/release pairs: release only after a quiet 80 ms.
    pending: list[str] = []

    def key_press(event: Any) -> None:
        if pending:
            root.after_cancel(pending.pop())
        else:
            controller.press()

    def release_now() -> None:
        pending.clear()
        controller.release()

    def key_release(event: Any) -> None:
        pending.append(root.after(80, release_now))

    root.bind("<KeyPress-space>", key_press)
    root.bind("<KeyRelease-space>", key_release)
    root.protocol("WM_DELETE_WINDOW", root.destroy)
    controller.start()
    poll()
    try:
        root.mainloop()
    finally:
        controller.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("DASHSCOPE_RT_URL"), help="simulator URL")
    parser.add_argument("--region", default="cn", choices=("cn", "intl"))
    args = parser.parse_args()
    problem = missing_desktop()
    if problem:
        sys.exit(f"desktop_tk.py: {problem}")
    run_window(PushToTalk(connection(args.url, args.region)))


def missing_desktop() -> str | None:
    """Why the window cannot work here (no sound card, sounddevice, Tk or display), or None."""
    try:
        check_device("input")
        check_device("output")
    except (AudioDeviceError, ImportError) as exc:
        return str(exc)
    try:
        import tkinter
    except ImportError as exc:
        return f"Tk is missing ({exc}): apt install python3-tk, or use a Python built with Tk"
    try:
        tkinter.Tk().destroy()
    except tkinter.TclError as exc:
        return f"cannot open a window ({exc}): it needs a desktop session"
    return None


if __name__ == "__main__":
    main()
