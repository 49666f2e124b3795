"""A local protocol simulator of the DashScope Qwen-Omni-Realtime service, for tests and demos.

``Simulator`` is a real WebSocket server on loopback that speaks the protocol as
docs/protocol.md describes it, built on the SDK's own core: it reads client frames with
:func:`~dashscope_rt.events.decode_client`, checks ``session.update`` with
:class:`~dashscope_rt.config.SessionConfig`, takes its limits from :mod:`dashscope_rt.limits` and
writes every event with the classes of :mod:`dashscope_rt.events`. ``Behaviour`` holds every
setting (including each decision on an unconfirmed point of the protocol); ``Faults`` breaks
connections on purpose; the responder API (``ScriptedReply``, ``ScriptedToolCall``) decides what
the simulated model answers; ``synthesize`` makes speech-like audio. Example::

    with Simulator(api_key="sk-test") as sim:
        sim.script_transcripts(["what's the weather in Hangzhou"])
        ws = websocket.create_connection(sim.url_for("qwen3.5-omni-flash-realtime"),
                                         header=[f"Authorization: Bearer {sim.api_key}"])
        ...
        sim.wait_for(lambda: "response.done" in sim.last.sent_types())

``Simulator(replay="log_dir")`` serves a session log recorded with :mod:`dashscope_rt.recording`
instead; ``dashscope-rt simulate --port N`` runs the server standalone.
"""

from __future__ import annotations

from ..audio import jpeg_size
from ..errors import MissingExtra
from ..models import image_tokens
from ._audio_input import Transcriber, default_transcriber
from ._behaviour import Behaviour
from ._engine import SimulatedSession
from ._faults import INTERNAL_ERROR_CLOSE, Faults
from ._replay import ReplayEngine
from ._responder import (
    Image,
    Responder,
    ScriptedReply,
    ScriptedToolCall,
    ToolOutput,
    Turn,
    default_responder,
    scripted,
)
from ._room import (
    EchoRoom,
    RoomRecording,
    erle_db,
    power_db,
    replies_with_pauses,
    run_lockstep,
)
from ._speech import silence, speech_duration_s, synthesize, tone
from ._vad import EnergyVAD, threshold_to_dbfs

TESTING_EXTRA_HINT = "pip install 'dashscope-rt[testing]'"
_SERVER_NAMES = ("PATH", "ConnectionRecord", "Rejection", "Simulator")

try:
    from ._server import PATH, ConnectionRecord, Rejection, Simulator
except ImportError as _exc:  # websockets, from the testing extra, is missing
    if _exc.name is None or not _exc.name.startswith("websockets"):
        raise
    _missing = _exc.name.split(".")[0]

    def __getattr__(name: str) -> object:
        """The server's names need websockets: say how to install it (the rest works without)."""
        if name in _SERVER_NAMES:
            raise MissingExtra(
                f"dashscope_rt.testing.{name} needs the {_missing!r} package: {TESTING_EXTRA_HINT}",
                extra="testing",
            )
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INTERNAL_ERROR_CLOSE",
    "PATH",
    "Behaviour",
    "ConnectionRecord",
    "EchoRoom",
    "EnergyVAD",
    "Faults",
    "Image",
    "Rejection",
    "ReplayEngine",
    "Responder",
    "RoomRecording",
    "ScriptedReply",
    "ScriptedToolCall",
    "SimulatedSession",
    "Simulator",
    "ToolOutput",
    "Transcriber",
    "Turn",
    "default_responder",
    "default_transcriber",
    "erle_db",
    "image_tokens",
    "jpeg_size",
    "power_db",
    "replies_with_pauses",
    "run_lockstep",
    "scripted",
    "silence",
    "speech_duration_s",
    "synthesize",
    "threshold_to_dbfs",
    "tone",
]
