"""Audio for realtime sessions: resampling, PCM conversion, WAV, playback, microphone, frames.

- :class:`AudioConverter`: any PCM (bytes or ndarray; int16/int32/float; any rate; mono or
  multi-channel) to mono PCM16LE chunks at the model's input rate, on one streaming soxr
  resampler per stream. :class:`OutputConverter` does the reverse for reply audio.
- :func:`read_wav`, :func:`write_wav`, :func:`encode_wav`: WAV through the stdlib ``wave``.
- :class:`Player`, :class:`Microphone`: sound card I/O on ``sounddevice``
  (``pip install 'dashscope-rt[audio]'``), imported only when a stream is opened.
- :func:`check_jpeg`, :func:`jpeg_size`, :func:`to_jpeg`, :class:`ImageRateLimiter`: camera
  frames.
- :func:`ulaw_encode`, :func:`ulaw_decode`, :func:`alaw_encode`, :func:`alaw_decode`: G.711
  telephone audio, bit-exact with the old ``audioop``; :class:`G711Encoder` turns reply audio
  into 8 kHz G.711 for the phone side.
- :class:`EchoCanceller`: removes the speaker's echo from the microphone (WebRTC AEC3,
  ``pip install 'dashscope-rt[aec]'``); :class:`Player` feeds it, :class:`Microphone` applies it.
"""

from __future__ import annotations

from ._aec import EchoCanceller
from ._convert import DEFAULT_CHUNK_MS, QUALITIES, AudioConverter, OutputConverter, resample_pcm16
from ._device import AEC_EXTRA_HINT, AUDIO_EXTRA_HINT, aec_available, check_device
from ._g711 import (
    ENCODINGS,
    G711_ENCODINGS,
    G711_RATE,
    G711Encoder,
    alaw_decode,
    alaw_encode,
    g711_decode,
    g711_encode,
    g711_silence,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
)
from ._image import (
    DEFAULT_MAX_SIDE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_BYTES_LENIENT,
    ImageRateLimiter,
    check_jpeg,
    jpeg_size,
    to_jpeg,
)
from ._microphone import Microphone
from ._pcm import SAMPLE_FORMATS, float32_to_pcm16, pcm16_to_float32, to_float32, to_int16
from ._player import Player, StreamFactory
from ._wav import WavAudio, convert_hint, encode_wav, read_wav, write_wav

__all__ = [
    "AEC_EXTRA_HINT",
    "AUDIO_EXTRA_HINT",
    "DEFAULT_CHUNK_MS",
    "DEFAULT_MAX_SIDE",
    "ENCODINGS",
    "G711_ENCODINGS",
    "G711_RATE",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_BYTES_LENIENT",
    "QUALITIES",
    "SAMPLE_FORMATS",
    "AudioConverter",
    "EchoCanceller",
    "G711Encoder",
    "ImageRateLimiter",
    "Microphone",
    "OutputConverter",
    "Player",
    "StreamFactory",
    "WavAudio",
    "aec_available",
    "alaw_decode",
    "alaw_encode",
    "check_device",
    "check_jpeg",
    "convert_hint",
    "encode_wav",
    "float32_to_pcm16",
    "g711_decode",
    "g711_encode",
    "g711_silence",
    "jpeg_size",
    "pcm16_to_float32",
    "read_wav",
    "resample_pcm16",
    "to_float32",
    "to_int16",
    "to_jpeg",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
