"""Camera frames for ``input_image_buffer.append``: JPEG checks, encoding and a frame-rate limit.

Documented limits (docs/protocol.md §7): JPEG only; at most 256 KB after Base64 in the strictest
document (500 KB before Base64 in others), 1080p at most (480p/720p recommended), 1-2 frames/s.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import limits
from ..errors import InvalidInput
from ._device import import_pillow
from ._pcm import _as_bytes

__all__ = [
    "DEFAULT_MAX_SIDE",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_BYTES_LENIENT",
    "ImageRateLimiter",
    "check_jpeg",
    "jpeg_size",
    "to_jpeg",
]

_log = logging.getLogger("dashscope_rt.audio")

#: Largest JPEG whose Base64 form fits 256 KiB (4 * ceil(n / 3) <= 262144): the strict limit.
MAX_IMAGE_BYTES = limits.IMAGE_MAX_BYTES
#: "500 KB before Base64", the limit of the client-events pages.
MAX_IMAGE_BYTES_LENIENT = limits.IMAGE_MAX_BYTES_LENIENT
#: Longest side :func:`to_jpeg` scales images down to (720p landscape is 1280 x 720).
DEFAULT_MAX_SIDE = 1280

_SOI = b"\xff\xd8\xff"
_EOI = b"\xff\xd9"


def check_jpeg(data: Any, *, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Return ``data`` as bytes if it is a complete JPEG of at most ``max_bytes``.

    Checks the start-of-image marker, the end-of-image marker (trailing zero padding allowed)
    and the size; raises :class:`~dashscope_rt.errors.InvalidInput` otherwise.
    """
    raw = _as_bytes(data).tobytes()
    if not raw.startswith(_SOI):
        kind = "PNG" if raw.startswith(b"\x89PNG") else "not a JPEG"
        raise InvalidInput(f"image: {kind} (the service accepts JPEG only); see to_jpeg()")
    if not raw.rstrip(b"\x00").endswith(_EOI):
        raise InvalidInput("image: the JPEG is truncated (no end-of-image marker)")
    if len(raw) > max_bytes:
        raise InvalidInput(
            f"image: {len(raw)} bytes is over the limit of {max_bytes} bytes "
            "(256 KB after Base64); use to_jpeg() to re-encode it smaller"
        )
    return raw


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame marker, or None if ``data`` is not a JPEG
    (or ends before one)."""
    if len(data) < 4 or data[:3] != _SOI:
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        seg = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn, not DHT/JPG/DAC
            if i + 9 > len(data):
                return None
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + seg
    return None


def to_jpeg(
    image: Any,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_side: int = DEFAULT_MAX_SIDE,
    quality: int = 85,
    bgr: bool = False,
) -> bytes:
    """Return JPEG bytes under ``max_bytes`` for a frame.

    ``image`` is JPEG bytes (returned unchanged when valid and small enough), other image bytes,
    a ``PIL.Image.Image``, or a uint8 ndarray ``(h, w)``, ``(h, w, 3)`` RGB (BGR with
    ``bgr=True``, as OpenCV gives) or ``(h, w, 4)``. Anything but fitting JPEG bytes needs
    Pillow: the image is scaled to at most ``max_side`` pixels on its longer side, then the
    JPEG quality and, if needed, the size are lowered until it fits.
    """
    if max_bytes < 1024:
        raise InvalidInput(f"max_bytes: {max_bytes} is too small for a JPEG")
    if isinstance(image, (bytes, bytearray, memoryview)):
        raw = _as_bytes(image).tobytes()
        try:
            return check_jpeg(raw, max_bytes=max_bytes)
        except InvalidInput:
            try:
                pil = import_pillow()
            except ImportError as exc:
                raise InvalidInput(
                    f"image: {len(raw)} bytes that are not a JPEG under {max_bytes} bytes, "
                    "and Pillow is not installed to re-encode them (pip install pillow)"
                ) from exc
            try:
                img = pil.open(io.BytesIO(raw))
                img.load()
            except Exception as exc:
                raise InvalidInput(f"image: cannot decode the image bytes: {exc}") from exc
            return _encode(img, max_bytes, max_side, quality)
    pil = import_pillow()
    if isinstance(image, pil.Image):
        return _encode(image, max_bytes, max_side, quality)
    return _encode(_from_array(pil, image, bgr), max_bytes, max_side, quality)


def _from_array(pil: Any, arr: Any, bgr: bool) -> Any:
    import numpy as np

    if not isinstance(arr, np.ndarray):
        raise InvalidInput(
            f"image: expected JPEG bytes, a PIL image or an ndarray, not {type(arr).__name__}"
        )
    if arr.dtype != np.uint8:
        if arr.dtype.kind != "f":
            raise InvalidInput(f"image: ndarray dtype {arr.dtype} is not uint8 or float")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if bgr:
            arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
        return pil.fromarray(np.ascontiguousarray(arr))  # uint8 (h, w, 3|4): RGB or RGBA
    if arr.ndim == 2:
        return pil.fromarray(np.ascontiguousarray(arr))  # uint8 (h, w): L
    raise InvalidInput(f"image: ndarray shape {arr.shape} is not (h, w), (h, w, 3) or (h, w, 4)")


def _encode(img: Any, max_bytes: int, max_side: int, quality: int) -> bytes:
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    while True:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        frame = img if size == img.size else img.resize(size)
        for q in (quality, 70, 55, 40):
            if q > quality:
                continue
            buf = io.BytesIO()
            frame.save(buf, format="JPEG", quality=q, optimize=True)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
        if max(size) <= 16:
            raise InvalidInput(f"image: cannot encode a JPEG under {max_bytes} bytes")
        scale *= 0.75


class ImageRateLimiter:
    """Lets frames through at most ``max_fps`` times per second (the docs say 1-2 fps).

    ``allow()`` returns True (and records the time) when a frame may be sent now, else False:
    drop that frame. ``clock`` is injectable for tests (default ``time.monotonic``).
    """

    def __init__(self, max_fps: float = 2.0, *, clock: Callable[[], float] | None = None) -> None:
        if not max_fps > 0:
            raise InvalidInput(f"max_fps: {max_fps!r} must be > 0")
        if max_fps > 2.0:
            _log.warning("max_fps=%s is above the documented 1-2 images per second", max_fps)
        self._interval = 1.0 / max_fps
        self._clock = clock or time.monotonic
        self._last: float | None = None

    @property
    def interval(self) -> float:
        """Minimum seconds between two frames."""
        return self._interval

    def wait_time(self) -> float:
        """Seconds until the next frame would be allowed (0 if now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self._interval - self._clock())

    def allow(self) -> bool:
        """True if a frame may be sent now; the frame's time is then recorded."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        """Forget the last frame (e.g. after a commit, when the next frame should go at once)."""
        self._last = None
