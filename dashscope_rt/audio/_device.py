"""Lazy access to optional packages (sounddevice, pywebrtc-audio, Pillow), with the fix."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import AudioDeviceError, MissingExtra

__all__ = [
    "AEC_EXTRA_HINT",
    "AUDIO_EXTRA_HINT",
    "aec_available",
    "check_device",
    "import_pillow",
    "import_sounddevice",
    "import_webrtc_audio",
]

AUDIO_EXTRA_HINT = "pip install 'dashscope-rt[audio]'"
AEC_EXTRA_HINT = "pip install 'dashscope-rt[aec]'"


def import_sounddevice() -> Any:
    """Import ``sounddevice`` or raise MissingExtra (an ImportError) saying how to install it."""
    try:
        return importlib.import_module("sounddevice")
    except ImportError as exc:
        raise MissingExtra(
            f"Player and Microphone need the sounddevice package: {AUDIO_EXTRA_HINT}",
            extra="audio",
        ) from exc
    except OSError as exc:  # the module is there but libportaudio is not
        raise MissingExtra(
            f"sounddevice could not load the PortAudio library ({exc}); install PortAudio "
            "(Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio) "
            f"or reinstall with {AUDIO_EXTRA_HINT}",
            extra="audio",
        ) from exc


def check_device(kind: str, device: Any = None) -> dict[str, Any]:
    """sounddevice's description of the ``"input"`` or ``"output"`` device that would be used.

    Raises :class:`~dashscope_rt.errors.AudioDeviceError` when there is none (PortAudio is there
    but finds no device: a headless server, Docker, WSL) or ``device`` names none, and
    ImportError when sounddevice or PortAudio is missing.
    """
    sd = import_sounddevice()
    try:
        info = sd.query_devices(device, kind)
    except Exception as exc:  # sounddevice.PortAudioError, or ValueError for a bad name/index
        which = "default " if device is None else f"{device!r} "
        raise AudioDeviceError(
            f"no audio {kind} device: the {which}{kind} device is not available ({exc}); "
            "a headless server, Docker or WSL usually has no sound card",
            kind=kind,
        ) from None
    return dict(info)


def import_webrtc_audio() -> Any:
    """Import ``pywebrtc_audio`` (WebRTC's audio processing) or raise MissingExtra with the fix."""
    try:
        return importlib.import_module("pywebrtc_audio")
    except ImportError as exc:
        raise MissingExtra(
            f"EchoCanceller needs the pywebrtc-audio package: {AEC_EXTRA_HINT}", extra="aec"
        ) from exc


def aec_available() -> bool:
    """Whether :class:`EchoCanceller` can be constructed (the ``aec`` extra is installed)."""
    try:
        import_webrtc_audio()
    except ImportError:
        return False
    return True


def import_pillow() -> Any:
    """Import ``PIL.Image`` or raise MissingExtra (an ImportError) saying how to install it."""
    try:
        return importlib.import_module("PIL.Image")
    except ImportError as exc:
        raise MissingExtra(
            "encoding images to JPEG needs Pillow: pip install pillow (or pass JPEG bytes directly)"
        ) from exc
