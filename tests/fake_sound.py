"""A stand-in ``sounddevice`` module for subprocess tests, put first on PYTHONPATH.

``FAKE_SD=no-device`` (the default) behaves like PortAudio on a headless server, in Docker or
WSL: the library loads but every device query fails with ``Error querying device -1``.
``FAKE_SD=no-portaudio`` fails at import like sounddevice without the PortAudio library, and
``FAKE_SD=missing`` like a machine without sounddevice.
``FAKE_SD=working`` has a 48 kHz device whose input is silence, delivered in real time.
"""

from __future__ import annotations

import os
from pathlib import Path

MODULE = """
import os
import threading

MODE = os.environ.get("FAKE_SD", "no-device")
if MODE == "no-portaudio":
    raise OSError("PortAudio library not found")
if MODE == "missing":
    raise ModuleNotFoundError("No module named 'sounddevice'", name="sounddevice")


class PortAudioError(Exception):
    pass


def query_devices(device=None, kind=None):
    if MODE != "working":
        raise PortAudioError("Error querying device -1")
    return {"name": "fake", "default_samplerate": 48000.0, "max_input_channels": 2,
            "max_output_channels": 2}


class _Stream:
    def __init__(self, samplerate, channels, dtype, blocksize, device, callback, **kw):
        if MODE != "working":
            raise PortAudioError("Error querying device -1")
        self.rate, self.channels, self.callback = int(samplerate), channels, callback
        self.block = blocksize or self.rate // 50
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.latency = 0.02

    def start(self):
        self.thread.start()

    def stop(self):
        self.halt.set()
        if self.thread.is_alive():
            self.thread.join(5)

    def close(self):
        self.stop()


class RawInputStream(_Stream):
    def run(self):
        while not self.halt.wait(self.block / self.rate):
            self.callback(bytes(self.block * 2 * self.channels), self.block, None, None)


class RawOutputStream(_Stream):
    def run(self):
        while not self.halt.wait(self.block / self.rate):
            self.callback(bytearray(self.block * 2 * self.channels), self.block, None, None)
"""


def install(directory: Path) -> Path:
    """Write the fake module into ``directory``; returns it (put it first on PYTHONPATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sounddevice.py").write_text(MODULE, encoding="utf-8")
    return directory


def env(directory: Path, mode: str, base: dict[str, str]) -> dict[str, str]:
    """``base`` with the fake module first on PYTHONPATH, in ``mode``."""
    out = dict(base)
    out["FAKE_SD"] = mode
    path = [str(install(directory)), out.get("PYTHONPATH", "")]
    out["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return out
