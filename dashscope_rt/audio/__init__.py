"""Audio for realtime sessions: resampling, PCM conversion, WAV, playback, microphone, frames.

- :class:`AudioConverter`: any PCM (bytes or ndarray; int16/int32/float; any rate; mono or
  multi-channel) to mono PCM16LE chunks at the model's input rate, on one streaming soxr
  resampler per stream. :class:`OutputConverter` does the reverse for reply audio.
- :func:`read_wav`, :func:`write_wav`, :func:`encode_wav`: WAV through the stdlib ``wave``.
- :class:`Player`, :class:`Microphone`: sound card I/O on ``sounddevice``
  (``pip install 'dashscope-rt[audio]'``), imported only when a stream is opened.
- :class:`EchoCanceller`: removes the speaker's echo from the microphone (WebRTC AEC3,
  ``pip install 'dashscope-rt[aec]'``); :class:`Player` feeds it, :class:`Microphone` applies it.
- :func:`check_jpeg`, :func:`to_jpeg`, :class:`ImageRateLimiter`: camera frames.
"""

from __future__ import annotations

from ._aec import EchoCanceller
from ._convert import DEFAULT_CHUNK_MS, QUALITIES, AudioConverter, OutputConverter, resample_pcm16
from ._device import AEC_EXTRA_HINT, AUDIO_EXTRA_HINT, aec_available
from ._image import (
    DEFAULT_MAX_SIDE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_BYTES_LENIENT,
    ImageRateLimiter,
    check_jpeg,
    to_jpeg,
)
from ._microphone import Microphone
from ._pcm import SAMPLE_FORMATS, float32_to_pcm16, pcm16_to_float32, to_float32, to_int16
from ._player import Player, StreamFactory
from ._wav import WavAudio, encode_wav, read_wav, write_wav

__all__ = [
    "AEC_EXTRA_HINT",
    "AUDIO_EXTRA_HINT",
    "DEFAULT_CHUNK_MS",
    "DEFAULT_MAX_SIDE",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_BYTES_LENIENT",
    "QUALITIES",
    "SAMPLE_FORMATS",
    "AudioConverter",
    "EchoCanceller",
    "ImageRateLimiter",
    "Microphone",
    "OutputConverter",
    "Player",
    "StreamFactory",
    "WavAudio",
    "aec_available",
    "check_jpeg",
    "encode_wav",
    "float32_to_pcm16",
    "pcm16_to_float32",
    "read_wav",
    "resample_pcm16",
    "to_float32",
    "to_int16",
    "to_jpeg",
    "write_wav",
]
