"""The fast path of :func:`dashscope_rt.events.decode` for ``response.audio.delta``.

Audio deltas are ~90 % of a reply's frames and almost all of their bytes are base64. Here the
base64 body is cut out of the frame and decoded directly; only the small rest goes through the
JSON scanner. Every function returns None (the caller takes the plain route) whenever anything
is unusual, so the result always equals the plain route's.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import attrs

from ._server_events import ResponseAudioDelta
from ._wire import pybase64


def _new_audio_delta(d: dict[str, Any], pcm: bytes) -> ResponseAudioDelta:
    # Same values as the attrs __init__ with _str/_int, set through the slot descriptors with
    # the type checks inlined: about half the cost on this hot path.
    ev: ResponseAudioDelta = _new(ResponseAudioDelta)
    get = d.get
    v = get("event_id")
    _ad_event_id(ev, v if type(v) is str else None)
    v = get("response_id")
    _ad_response_id(ev, v if type(v) is str else None)
    v = get("item_id")
    _ad_item_id(ev, v if type(v) is str else None)
    v = get("output_index")
    _ad_output_index(ev, v if type(v) is int else None)
    v = get("content_index")
    _ad_content_index(ev, v if type(v) is int else None)
    _ad_audio(ev, pcm)
    _ad_raw(ev, d)
    return ev


_new: Any = object.__new__
_slot_set: dict[str, Any] = {
    f.name: ResponseAudioDelta.__dict__[f.name].__set__ for f in attrs.fields(ResponseAudioDelta)
}
_ad_event_id = _slot_set["event_id"]
_ad_response_id = _slot_set["response_id"]
_ad_item_id = _slot_set["item_id"]
_ad_output_index = _slot_set["output_index"]
_ad_content_index = _slot_set["content_index"]
_ad_audio = _slot_set["audio"]
_ad_raw = _slot_set["raw"]
assert len(_slot_set) == 7, "update _new_audio_delta when ResponseAudioDelta changes"


_WS = " \t\n\r"
_scan_once: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


# Constants of the fast path, as str and as bytes: (key, whitespace, ":", quote, type, "\\",
# "=", "==", escaped slash, slash, the two usual separators before the value).
_K_STR = (
    *('"delta"', _WS, ":", '"', '"response.audio.delta"', "\\", "=", "==", "\\/", "/"),
    *(': "', ':"'),
)
_K_BYTES = tuple(k.encode() for k in _K_STR)


def _a2b_exact(b64: Any, k: tuple[Any, ...]) -> bytes | None:
    """``a2b_base64(b64)`` if it used every character of ``b64``, else None.

    a2b_base64 silently skips characters outside the alphabet (quotes, backslashes, control
    characters, non-ASCII...); the exact output length proves none were skipped, so ``b64`` was
    a plain JSON string body without escapes and decodes as json.loads + b64decode would.
    """
    size = len(b64)
    if not size & 3 and pybase64 is not None:
        try:
            return pybase64.b64decode(b64, validate=True)  # strict: refuses any other character
        except ValueError:
            pass
    elif not size & 3:
        try:
            # Measured, cause unknown: after JSON scanning, the next large a2b_base64 call ran
            # ~1.6x slower on the dev machine (AMD EPYC, CPython 3.11) unless preceded by any
            # other a2b_base64 call. The empty call costs ~0.1 us (see bench/bench_decode.py).
            binascii.a2b_base64("")
            pcm = binascii.a2b_base64(b64)
        except ValueError:
            pass
        else:
            pad = 2 if b64.endswith(k[7]) else 1 if b64.endswith(k[6]) else 0
            if len(pcm) == (size >> 2) * 3 - pad:
                return pcm
    if k[5] in b64:  # some encoders escape "/" as "\\/"; any other escape: give up
        b64 = b64.replace(k[8], k[9])
        if k[5] not in b64:
            return _a2b_exact(b64, k)
    return None


def _split(text: Any, k: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """Cut the ``"delta"`` string body out of an audio frame: ``(rest, body)``, or None.

    ``rest`` is the frame with ``"delta": ""``. None unless it has the audio type, no escapes
    and exactly one ``"delta"``: then the one we found is the only delta key, and a top-level
    ``"delta": ""`` in the parsed rest (checked by the caller) must be it.
    """
    key, quote = k[0], k[3]
    s = text.find(key)
    if s < 0:
        return None
    i = s + 7
    if text.startswith(k[10], i):  # '": "' as json.dumps writes it, or compact '":"'
        vs = i + 3
    elif text.startswith(k[11], i):
        vs = i + 2
    else:
        vs = _value_start(text, i, k)
        if vs < 0:
            return None
    ve = text.find(quote, vs)
    if ve < 0:
        return None
    rest = text[:vs] + text[ve:]
    if k[4] not in rest or k[5] in rest or rest.find(key, s + 1) >= 0:
        return None
    return rest, text[vs:ve]


def _value_start(text: Any, i: int, k: tuple[Any, ...]) -> int:
    """Index after the opening quote of the value whose ``:`` is at or after ``i`` (any JSON
    whitespace around it), or -1."""
    ws, n = k[1], len(text)
    while i < n and text[i : i + 1] in ws:
        i += 1
    if i >= n or text[i : i + 1] != k[2]:
        return -1
    i += 1
    while i < n and text[i : i + 1] in ws:
        i += 1
    if i >= n or text[i : i + 1] != k[3]:
        return -1
    return i + 1


def _finish(rest: str, pcm: bytes) -> ResponseAudioDelta | None:
    try:
        # The C scanner without json.loads' regex whitespace handling; measurably cheaper here.
        start = 0 if rest[:1] == "{" else len(rest) - len(rest.lstrip(_WS))
        d, end = _scan_once(rest, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(rest) and rest[end:].strip(_WS):
        return None
    if type(d) is not dict or d.get("type") != "response.audio.delta" or d.get("delta") != "":
        return None
    del d["delta"]
    return _new_audio_delta(d, pcm)


def _decode_audio_fast(text: str) -> ResponseAudioDelta | None:
    """Decode a ``response.audio.delta`` without running the JSON scanner over the base64.

    Returns None (the caller takes the plain route) whenever anything is unusual.
    """
    parts = _split(text, _K_STR)
    if parts is None:
        return None
    pcm = _a2b_exact(parts[1], _K_STR)
    return None if pcm is None else _finish(parts[0], pcm)


def _decode_audio_fast_bytes(data: bytes) -> ResponseAudioDelta | None:
    """:func:`_decode_audio_fast` on UTF-8 bytes: only the small rest is UTF-8 decoded (the
    base64 part is proven ASCII by :func:`_a2b_exact`)."""
    parts = _split(data, _K_BYTES)
    if parts is None:
        return None
    pcm = _a2b_exact(parts[1], _K_BYTES)
    if pcm is None:
        return None
    try:
        rest = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _finish(rest, pcm)
