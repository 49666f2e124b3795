"""The protocol's limits and the service's documented defaults, in one place.

Every range the SDK checks in :class:`~dashscope_rt.config.SessionConfig`, every size limit and
every default the service fills in is defined here once; the SDK and the simulator
(:mod:`dashscope_rt.testing`) both read them from here. Per-model values (voices, rates, tools,
sampling defaults) live in :mod:`dashscope_rt.models`. Sources: protocol.md §5 (session
parameters), §3.2 (audio appends), §7 (images), §1 and §9.3 (connection limits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "AUDIO_FORMATS",
    "DEFAULT_AUDIO_FORMAT",
    "DEFAULT_MODALITIES",
    "DEFAULT_SEED",
    "IDLE_TIMEOUT_S",
    "IMAGE_MAX_BASE64_BYTES",
    "IMAGE_MAX_BYTES",
    "IMAGE_MAX_BYTES_LENIENT",
    "IMAGE_TOKENS_MAX",
    "IMAGE_TOKENS_MIN",
    "LEGACY_AUDIO_FORMATS",
    "MAX_APPEND_BYTES",
    "MAX_SESSION_DURATION_S",
    "MAX_TOKENS",
    "MODALITIES",
    "PRESENCE_PENALTY",
    "REPETITION_PENALTY",
    "SAMPLE_RATES",
    "SEED",
    "SERVER_VAD_DEFAULTS",
    "TEMPERATURE",
    "TOOL_NAME_PATTERN",
    "TOP_K",
    "TOP_P",
    "VAD_IDLE_TIMEOUT_MS",
    "VAD_PREFIX_PADDING_MS",
    "VAD_SILENCE_DURATION_MS",
    "VAD_THRESHOLD",
    "Range",
    "base64_size",
]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@attrs.frozen
class Range:
    """A numeric range: ``[lo, hi]`` with open ends where marked, plus extra accepted values."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = attrs.field(default=False, kw_only=True)
    hi_open: bool = attrs.field(default=False, kw_only=True)
    integer: bool = attrs.field(default=False, kw_only=True)
    """Only ints are accepted (never bools)."""
    allow: tuple[Any, ...] = attrs.field(default=(), kw_only=True)
    """Values accepted besides the range (e.g. ``None`` or ``-1``), compared by type and value."""

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is one of the extra accepted values."""
        return any(value is a or (type(value) is type(a) and value == a) for a in self.allow)

    def has_type(self, value: Any) -> bool:
        """Whether ``value`` is a number of the right kind (int for integer ranges; never bool)."""
        if isinstance(value, bool):
            return False
        return isinstance(value, int) if self.integer else isinstance(value, (int, float))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is accepted: an allowed extra, or a finite number of the right kind
        inside the bounds."""
        if self.allows(value):
            return True
        if not self.has_type(value) or not math.isfinite(value):
            return False
        lo, hi = self.lo, self.hi
        if lo is not None and (value <= lo if self.lo_open else value < lo):
            return False
        return not (hi is not None and (value >= hi if self.hi_open else value > hi))

    @property
    def kind(self) -> str:
        """``"an int"`` or ``"a number"``."""
        return "an int" if self.integer else "a number"

    def describe(self) -> str:
        """The range in words: ``"in [0, 2)"``, ``">= 1"``, ``"in [0, 2147483647] or -1"``."""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            text = f"in {'(' if self.lo_open else '['}{_fmt(lo)}, {_fmt(hi)}"
            text += ")" if self.hi_open else "]"
        elif lo is not None:
            text = f"{'>' if self.lo_open else '>='} {_fmt(lo)}"
        elif hi is not None:
            text = f"{'<' if self.hi_open else '<='} {_fmt(hi)}"
        else:
            text = "of any value"
        for extra in self.allow:
            text += f" or {extra!r}"
        return text


# --- session parameters (protocol.md §5) ----------------------------------------------------

MODALITIES: Final = (("text",), ("text", "audio"))
"""The accepted ``modalities`` combinations (any order on the wire; ``["audio"]`` is refused)."""
DEFAULT_MODALITIES: Final = ("text", "audio")

SAMPLE_RATES: Final = (8000, 16000, 24000, 48000)
"""Sample rates the nested qwen3.5 ``audio.*.format.sample_rate`` accepts."""
AUDIO_FORMATS: Final = ("pcm", "wav")
"""Values of the nested qwen3.5 ``audio.*.format.type``."""
LEGACY_AUDIO_FORMATS: Final = ("pcm", "pcm16", "pcm24")
"""Values of the top-level ``input_audio_format``/``output_audio_format`` strings."""
DEFAULT_AUDIO_FORMAT: Final = "pcm"

VAD_THRESHOLD: Final = Range(-1.0, 1.0)
"""``turn_detection.threshold``: lower is more sensitive."""
VAD_SILENCE_DURATION_MS: Final = Range(200, 6000, integer=True)
"""``turn_detection.silence_duration_ms``: the silence that ends a turn."""
VAD_PREFIX_PADDING_MS: Final = Range(0, integer=True)
"""``turn_detection.prefix_padding_ms``: not in the client docs, so no upper bound is known."""
VAD_IDLE_TIMEOUT_MS: Final = Range(5000, 30000, integer=True)
"""``turn_detection.idle_timeout_ms`` (qwen3.5 with server_vad only)."""
SERVER_VAD_DEFAULTS: Final[Mapping[str, Any]] = {
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 800,
    "create_response": True,
    "interrupt_response": True,
}
"""What the service uses for a ``turn_detection`` field that is not set (echoed by
``session.created``); ``idle_timeout_ms`` has no default (the feature is off)."""

TEMPERATURE: Final = Range(0, 2, hi_open=True)
TOP_P: Final = Range(0, 1, lo_open=True)
TOP_K: Final = Range(0, integer=True, allow=(None,))
"""``None`` (or > 100) disables top-k."""
MAX_TOKENS: Final = Range(1, integer=True)
"""The upper bound is the model's ``max_output_tokens``."""
REPETITION_PENALTY: Final = Range(0, lo_open=True)
PRESENCE_PENALTY: Final = Range(-2, 2)
SEED: Final = Range(0, 2**31 - 1, integer=True, allow=(-1,))
"""-1 asks for a random seed."""
DEFAULT_SEED: Final = -1

TOOL_NAME_PATTERN: Final = r"[a-zA-Z0-9_-]{1,64}"
"""A tool's ``function.name`` must match this in full."""

# --- audio, images, connection (protocol.md §1, §3.2, §7, §9.3) -----------------------------

MAX_APPEND_BYTES: Final = 15 * 1024 * 1024
"""Audio per ``input_audio_buffer.append`` (15 MiB)."""

IMAGE_MAX_BASE64_BYTES: Final = 256 * 1024
"""The strict image limit: 256 KB after Base64 (SDK references; other pages say 500 KB raw)."""
IMAGE_MAX_BYTES_LENIENT: Final = 500 * 1024
"""The lenient image limit of the client-events pages: 500 KB before Base64."""
IMAGE_TOKENS_MIN: Final = 4
IMAGE_TOKENS_MAX: Final = 1280
"""Tokens billed for one image are clamped to this range."""

MAX_SESSION_DURATION_S: Final = 120 * 60.0
"""The service closes a connection after 120 minutes."""
IDLE_TIMEOUT_S: Final = 300.0
"""... and after this long without a response being generated."""


def base64_size(n: int) -> int:
    """Length of the (padded) Base64 text of ``n`` bytes."""
    return 4 * math.ceil(n / 3)


IMAGE_MAX_BYTES: Final = IMAGE_MAX_BASE64_BYTES // 4 * 3
"""The largest JPEG whose Base64 text fits :data:`IMAGE_MAX_BASE64_BYTES` (196 608 bytes)."""
assert base64_size(IMAGE_MAX_BYTES) <= IMAGE_MAX_BASE64_BYTES < base64_size(IMAGE_MAX_BYTES + 1)
