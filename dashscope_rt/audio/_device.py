"""Lazy access to optional packages (sounddevice, Pillow) with an actionable error."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import MissingExtra

__all__ = ["AUDIO_EXTRA_HINT", "import_pillow", "import_sounddevice"]

AUDIO_EXTRA_HINT = "pip install 'dashscope-rt[audio]'"


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


def import_pillow() -> Any:
    """Import ``PIL.Image`` or raise MissingExtra (an ImportError) saying how to install it."""
    try:
        return importlib.import_module("PIL.Image")
    except ImportError as exc:
        raise MissingExtra(
            "encoding images to JPEG needs Pillow: pip install pillow (or pass JPEG bytes directly)"
        ) from exc
