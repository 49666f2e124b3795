"""Each sample's logic against the simulator: quickstart, tools, camera, microphone with
barge-in, push-to-talk controller, the Flask relay (test client + a real WebSocket) and the
notebook (executed with nbclient)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("websockets")

from dashscope_rt.testing import ScriptedReply as SimReply  # noqa: E402
from dashscope_rt.testing import ScriptedToolCall as SimToolCall  # noqa: E402
from dashscope_rt.testing import Simulator, silence, synthesize  # noqa: E402
from samples import camera, desktop_tk, function_calling, microphone, quickstart  # noqa: E402

QUESTION = "What is the weather like in Hangzhou today?"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def _kwargs(sim: Simulator) -> dict[str, Any]:
    return {"url": sim.url, "api_key": sim.api_key}


def _session(sim: Simulator) -> dict[str, Any]:
    """The session config the simulator holds for the last connection."""
    session = sim.last.session
    assert session is not None
    return session


def _wav_info(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnframes()


# -- fake sound card -------------------------------------------------------------------------------


class FakeInput:
    """Stands in for sounddevice.RawInputStream: plays ``source()`` blocks into the callback."""

    def __init__(self, source: Callable[[int], bytes], speed: float, **kw: Any) -> None:
        self.source = source
        self.blocksize = int(kw["blocksize"])
        self.rate = int(kw["samplerate"])
        self.callback = kw["callback"]
        self.speed = speed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-mic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        block_s = self.blocksize / self.rate
        while not self._stop.is_set():
            self.callback(self.source(self.blocksize), self.blocksize, None, None)
            self._stop.wait(block_s / self.speed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.stop()


class Script:
    """PCM16 mono to hand out block by block, then silence."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.pos = 0
        self.lock = threading.Lock()

    def __call__(self, frames: int) -> bytes:
        with self.lock:
            chunk = self.pcm[self.pos : self.pos + frames * 2]
            self.pos += len(chunk)
        return chunk + b"\x00" * (frames * 2 - len(chunk))

    @property
    def finished(self) -> bool:
        return self.pos >= len(self.pcm)


class FakeOutput:
    """Stands in for sounddevice.RawOutputStream: pulls audio at ``speed`` × real time."""

    def __init__(self, speed: float, **kw: Any) -> None:
        self.rate = int(kw["samplerate"])
        self.callback = kw["callback"]
        self.speed = speed
        self.frames = 480
        self.played = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-speaker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            out = bytearray(self.frames * 2)
            self.callback(out, self.frames, None, None)
            if any(out):
                self.played += out
            self._stop.wait(self.frames / self.rate / self.speed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.stop()


# -- samples ---------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_quickstart(
    no_thread_leak: None, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script_transcripts([QUESTION])
    out = tmp_path / "reply.wav"
    reply = quickstart.run(_kwargs(sim), quickstart.QUESTION, out)
    assert reply.status == "completed"
    assert reply.transcript == f"You said: {QUESTION}"
    rate, frames = _wav_info(out.read_bytes())
    assert rate == 24000 and frames == len(reply.audio) // 2 > 0
    printed = capsys.readouterr().out
    assert f"you:       {QUESTION}" in printed
    assert f"assistant: You said: {QUESTION}" in printed
    # The 22 kHz... bundled WAV was resampled to the model's 16 kHz before sending.
    assert _session(sim)["voice"] == "Cherry"


@pytest.mark.timeout(30)
def test_function_calling_runs_both_tools(sim: Simulator) -> None:
    sim.script_replies(
        [
            SimReply(
                tool_calls=[
                    SimToolCall("get_weather", {"city": "Paris"}),
                    SimToolCall("get_time", {"timezone": "Asia/Tokyo"}),
                ]
            )
        ]
    )
    reply = function_calling.run(_kwargs(sim))
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert "Paris: light rain, 14 °C" in reply.text
    assert "in Asia/Tokyo" in reply.text
    declared = {t["function"]["name"] for t in _session(sim)["tools"]}
    assert declared == {"get_weather", "get_time"}
    items = [e["item"] for e in sim.last.received_events("conversation.item.create")]
    outputs = [i["output"] for i in items if i["type"] == "function_call_output"]
    assert outputs[0] == "Paris: light rain, 14 °C" and outputs[1].endswith("in Asia/Tokyo")


def test_function_calling_tools_directly() -> None:
    assert function_calling.get_weather("Paris") == "Paris: light rain, 14 °C"
    assert function_calling.get_time("Not/AZone").startswith("unknown time zone")
    assert function_calling.get_time("UTC").endswith("in UTC")


@pytest.mark.timeout(30)
def test_function_calling_by_voice(sim: Simulator) -> None:
    sim.script_transcripts(["What's the weather in Paris?"])
    wav = ROOT / "samples" / "assets" / "weather_and_time.wav"
    reply = function_calling.run(_kwargs(sim), wav=wav)
    assert [c.name for c in reply.tool_calls] == ["get_weather"]
    assert "Paris" in reply.text


@pytest.mark.timeout(30)
def test_camera_sends_frames_with_audio(sim: Simulator) -> None:
    pytest.importorskip("PIL")
    sim.script_transcripts(["What do you see?"])
    pcm = synthesize("What do you see in front of me?", 16000)
    reply = camera.run(_kwargs(sim), pcm, 16000, camera.still_frames(), fps=2.0, pace=0)
    images = sim.last.received_events("input_image_buffer.append")
    seconds = len(pcm) / 2 / 16000
    assert len(images) == int(seconds * 2) + (1 if (seconds * 2) % 1 else 0)
    assert f"I can see {len(images)} images (640x480)" in reply.transcript
    # Audio went first, as the service requires.
    types = sim.last.received_types()
    assert types.index("input_audio_buffer.append") < types.index("input_image_buffer.append")


def test_camera_falls_back_to_bundled_still(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    frame = next(camera.still_frames())
    assert frame == (ROOT / "samples" / "assets" / "still.jpg").read_bytes()
    assert frame.startswith(b"\xff\xd8\xff")


@pytest.mark.timeout(45)
def test_microphone_barge_in(
    no_thread_leak: None, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.script_transcripts(["Tell me a long story.", "Stop, please."])
    long_answer = "Once upon a time " * 12
    sim.script_replies([long_answer, "Okay."])
    # First question, a pause for the VAD, then the user talks over the (long) answer.
    pcm = (
        synthesize("Tell me a long story.", 16000)
        + silence(1500, 16000)
        + synthesize("Stop please.", 16000)
    )
    script = Script(pcm)
    speakers: list[FakeOutput] = []

    def speaker(**kw: Any) -> FakeOutput:
        speakers.append(FakeOutput(1.0, **kw))
        return speakers[-1]

    stop = threading.Event()
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(
            microphone.run(
                _kwargs(sim),
                stop,
                mic_stream=lambda **kw: FakeInput(script, 4.0, **kw),
                speaker_stream=speaker,
                mic_rate=16000,
            )
        ),
    )
    worker.start()
    try:
        sim.wait_for(lambda: len(sim.last.sent_events("response.done")) >= 2 or None, 30)
    finally:
        stop.set()
        worker.join(15)
    assert not worker.is_alive()
    replies = result[0]
    assert [r.transcript for r in replies][-1] == "Okay."
    printed = capsys.readouterr().out
    assert "you:       Tell me a long story." in printed
    assert "Echo cancellation on" in printed
    assert "[cut after " in printed  # the long answer was still playing and was flushed
    # Far less than the whole first answer reached the speaker.
    assert 0 < len(speakers[0].played) < len(replies[0].audio)


@pytest.mark.timeout(30)
def test_push_to_talk_controller(no_thread_leak: None, sim: Simulator) -> None:
    sim.script_transcripts(["Hello there"])
    script = Script(synthesize("Hello there", 16000))
    ptt = desktop_tk.PushToTalk(
        _kwargs(sim),
        mic_stream=lambda **kw: FakeInput(script, 8.0, **kw),
        speaker_stream=lambda **kw: FakeOutput(20.0, **kw),
        mic_rate=16000,
    )
    try:
        ptt.start()
        assert _session(sim).get("turn_detection") is None  # manual turns (omitted or null)
        ptt.press()
        deadline = time.monotonic() + 10
        while not script.finished and time.monotonic() < deadline:
            time.sleep(0.02)
        ptt.release()
        seen: list[tuple[str, str]] = []
        while not any(kind == "done" for kind, _ in seen):
            seen.append(ptt.messages.get(timeout=10))
    finally:
        ptt.close()
    assert ("you", "Hello there") in seen
    assert "".join(v for k, v in seen if k == "assistant") == "You said: Hello there"
    types = sim.last.received_types()
    assert "input_audio_buffer.commit" in types and "response.create" in types
    assert ptt.replies[0].status == "completed"


@pytest.mark.timeout(30)
def test_push_to_talk_refuses_audio_from_a_device_without_a_clock(sim: Simulator) -> None:
    """A null/dummy input device delivers audio as fast as it is read (#13 item 10): a short
    press then "captures" a minute of audio; none of it is committed as the user's turn."""
    script = Script(bytes(60 * 16000 * 2))  # a minute of input
    ptt = desktop_tk.PushToTalk(
        _kwargs(sim),
        mic_stream=lambda **kw: FakeInput(script, 1e6, **kw),  # no clock: as fast as it can
        speaker_stream=lambda **kw: FakeOutput(20.0, **kw),
        mic_rate=16000,
    )
    try:
        ptt.start()
        ptt.press()
        deadline = time.monotonic() + 10
        while not script.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        ptt.release()
        kind, text = ptt.messages.get(timeout=5)
        while kind == "status":
            kind, text = ptt.messages.get(timeout=5)
    finally:
        ptt.close()
    assert kind == "error" and "not a live microphone" in text and "nothing was sent" in text
    assert sim.last.closed.wait(timeout=5)  # the simulator has read everything
    types = sim.last.received_types()
    assert "input_audio_buffer.clear" in types
    assert "input_audio_buffer.commit" not in types and "response.create" not in types


# -- Flask -----------------------------------------------------------------------------------------


def test_flask_page_and_assets() -> None:
    pytest.importorskip("flask_sock")
    from samples.flask_app.app import create_app

    client = create_app(url="ws://127.0.0.1:9/unused").test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert b"Talk to Qwen-Omni" in page.data and b"/static/app.js" in page.data
    for asset in ("app.js", "capture-worklet.js"):
        assert client.get(f"/static/{asset}").status_code == 200


@pytest.mark.timeout(30)
def test_flask_relay_over_a_real_websocket(no_thread_leak: None, sim: Simulator) -> None:
    pytest.importorskip("flask_sock")
    from browser import relay_one_turn
    from werkzeug.serving import make_server

    from samples.flask_app.app import create_app

    sim.script_transcripts([QUESTION])
    server = make_server("127.0.0.1", 0, create_app(url=sim.url), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        events, audio, _ = relay_one_turn(f"ws://127.0.0.1:{server.server_port}/ws")
    finally:
        server.shutdown()
        thread.join(10)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "speech_started"
    assert {"type": "user", "text": QUESTION} in events
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    assert deltas == f"You said: {QUESTION}" == events[-1]["text"]
    assert abs(len(audio) / 2 / 24000 - events[-1]["audioSeconds"]) < 0.01
    # The relay resampled the browser's 48 kHz to the model's 16 kHz.
    appended = sim.last.received_events("input_audio_buffer.append")
    assert appended


# -- notebook --------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("DASHSCOPE_RT_URL", raising=False)
    # The kernel must import this checkout of dashscope_rt.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(ROOT / "samples" / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "samples")}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "using the local simulator" in text
    assert "assistant: You said: What's the weather like in Hangzhou today?" in text
    html = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert html and '<audio controls src="data:audio/wav;base64,' in html[0].data["text/html"]


# -- README ----------------------------------------------------------------------------------------


def _readme_block(heading: str) -> str:
    """The first python code block under a README heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.timeout(30)
def test_readme_snippets_run(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's quick start and tools examples, pointed at the simulator, and its test."""
    monkeypatch.chdir(ROOT)
    target = f'url="{sim.url}", api_key="{sim.api_key}", '
    quick = _readme_block("Quick start").replace("config=Sess", target + "config=Sess")
    quick = quick.replace('"reply.wav"', repr(str(tmp_path / "reply.wav")))
    assert target in quick
    sim.script_transcripts(["What's the weather like in Hangzhou today?"])
    exec(compile(quick, "README quick start", "exec"), {})
    assert (tmp_path / "reply.wav").stat().st_size > 44
    tools = _readme_block("Tools").replace("tools=[", target + "tools=[")
    namespace: dict[str, Any] = {}
    exec(compile(tools, "README tools", "exec"), namespace)
    assert namespace["reply"].tool_calls[0].name == "get_weather"
    assert "Paris: sunny" in namespace["reply"].text
    exec(
        compile(_readme_block("The simulator in your own tests"), "README test", "exec"), namespace
    )
    namespace["test_my_assistant"]()
