"""G.711 codecs: bit-exact over every input against a scalar reference, a committed vector table
and (on Pythons that still have it) ``audioop``; input handling; the streaming encoder.

The reference here is a line-by-line transcription of the CCITT algorithm in Sun's public-domain
``g711.c`` (the code ``audioop`` was built from), one sample at a time in plain Python ints.
``tests/fixtures/g711/vectors.json`` holds its output for every input, run-length encoded;
regenerate it with ``python tests/test_g711.py --write`` (the tests check it stays identical).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt.audio import (
    G711Encoder,
    alaw_decode,
    alaw_encode,
    g711_decode,
    g711_encode,
    g711_silence,
    resample_pcm16,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
)
from dashscope_rt.errors import InvalidInput

VECTORS = Path(__file__).parent / "fixtures" / "g711" / "vectors.json"
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_PCM = ALL_SAMPLES.astype("<i2").tobytes()
ALL_CODES = bytes(range(256))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13
        audioop = None  # type: ignore[assignment]

needs_audioop = pytest.mark.skipif(audioop is None, reason="audioop was removed in Python 3.13")

# -- the scalar reference (Sun g711.c) ----------------------------------------------------------

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(value: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if value <= end:
            return i
    return len(table)


def ref_linear2ulaw(sample: int) -> int:
    pcm = sample >> 2  # 16-bit to 14-bit, as audioop feeds it
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (0x84 >> 2)
    seg = _search(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def ref_ulaw2linear(code: int) -> int:
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def ref_linear2alaw(sample: int) -> int:
    pcm = sample >> 3  # 16-bit to 13-bit
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _search(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    quant = (pcm >> 1) if seg < 2 else (pcm >> seg)
    return ((seg << 4) | (quant & 0xF)) ^ mask


def ref_alaw2linear(code: int) -> int:
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def g191_linear2ulaw(sample: int) -> int:
    """ITU-T G.191 STL ``ulaw_compress`` (one's complement for negative input)."""
    absno = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    absno = min(absno, 0x1FFF)
    i, segno = absno >> 6, 1
    while i:
        segno, i = segno + 1, i >> 1
    code = ((8 - segno) << 4) | (0xF - ((absno >> segno) & 0xF))
    return code | 0x80 if sample >= 0 else code


def _runs(codes: list[int]) -> list[list[int]]:
    """[[first int16 input, code], ...] for each run of equal codes over -32768..32767."""
    runs: list[list[int]] = []
    for i, code in enumerate(codes):
        if not runs or runs[-1][1] != code:
            runs.append([i - 32768, code])
    return runs


def _expand(runs: list[list[int]]) -> bytes:
    out = bytearray()
    bounds = [start for start, _ in runs[1:]] + [32768]
    for (start, code), end in zip(runs, bounds, strict=True):
        out += bytes((code,)) * (end - start)
    return bytes(out)


def reference_vectors() -> dict[str, Any]:
    out: dict[str, Any] = {
        "about": "G.711 reference vectors from the scalar Sun g711.c algorithm in "
        "tests/test_g711.py: decode[code] is the PCM16 sample of each code; encode_runs lists "
        "[first input, code] for each run of inputs (-32768..32767) that encode to one code."
    }
    for law, enc, dec in (
        ("ulaw", ref_linear2ulaw, ref_ulaw2linear),
        ("alaw", ref_linear2alaw, ref_alaw2linear),
    ):
        codes = [enc(x) for x in range(-32768, 32768)]
        out[law] = {
            "decode": [dec(c) for c in range(256)],
            "encode_runs": _runs(codes),
            "encode_sha256": hashlib.sha256(bytes(codes)).hexdigest(),
        }
    return out


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def _table_encode(vectors: dict[str, Any], law: str) -> bytes:
    return _expand(vectors[law]["encode_runs"])


def _table_decode(vectors: dict[str, Any], law: str) -> bytes:
    return np.array(vectors[law]["decode"], dtype="<i2").tobytes()


# -- bit-exactness --------------------------------------------------------------------------------


def test_the_committed_vectors_are_what_the_reference_algorithm_gives(
    vectors: dict[str, Any],
) -> None:
    assert vectors == reference_vectors()
    for law in ("ulaw", "alaw"):
        table = _table_encode(vectors, law)
        assert len(table) == 65536
        assert hashlib.sha256(table).hexdigest() == vectors[law]["encode_sha256"]


@pytest.mark.parametrize(
    ("law", "encode", "decode"),
    [("ulaw", ulaw_encode, ulaw_decode), ("alaw", alaw_encode, alaw_decode)],
)
def test_every_input_and_every_code_match_the_vectors(
    vectors: dict[str, Any], law: str, encode: Any, decode: Any
) -> None:
    assert encode(ALL_PCM) == _table_encode(vectors, law)
    assert encode(ALL_SAMPLES) == _table_encode(vectors, law)
    assert decode(ALL_CODES) == _table_decode(vectors, law)


@needs_audioop
def test_every_input_and_every_code_match_audioop(vectors: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
        assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
        assert ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
        assert alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)
        # ...and so does the committed table, used where audioop is gone.
        assert _table_encode(vectors, "ulaw") == audioop.lin2ulaw(ALL_PCM, 2)
        assert _table_encode(vectors, "alaw") == audioop.lin2alaw(ALL_PCM, 2)
        assert _table_decode(vectors, "ulaw") == audioop.ulaw2lin(ALL_CODES, 2)
        assert _table_decode(vectors, "alaw") == audioop.alaw2lin(ALL_CODES, 2)


def test_g191_mu_law_differs_only_by_one_step_on_508_negative_inputs() -> None:
    """The documented divergence from ITU-T G.191's encoder, pinned so that it stays known."""
    ours = ulaw_encode(ALL_PCM)
    differ = [
        (int(x), ours[i], g191_linear2ulaw(int(x)))
        for i, x in enumerate(ALL_SAMPLES)
        if ours[i] != g191_linear2ulaw(int(x))
    ]
    assert len(differ) == 508
    assert all(x < 0 for x, _, _ in differ)
    assert all(abs(a - b) == 1 for _, a, b in differ)


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_decoded_codes_encode_back_to_themselves(encode: Any, decode: Any) -> None:
    pcm = decode(ALL_CODES)
    again = encode(pcm)
    # μ-law has two codes for zero (0x7F is "negative zero"); every other code is its own image.
    mismatched = [c for c in range(256) if again[c] != c]
    assert mismatched in ([], [0x7F])
    assert decode(again) == pcm


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_quantisation_error_stays_within_half_a_step(encode: Any, decode: Any) -> None:
    y = np.frombuffer(decode(encode(ALL_PCM)), "<i2").astype(np.int32)
    x = ALL_SAMPLES.astype(np.int32)
    err = np.abs(y - x)
    # Half of the top segment's step (1024), plus the clip at 32124 on μ-law.
    assert int(err.max()) == (644 if encode is ulaw_encode else 512)
    assert float(np.median(err[np.abs(x) > 256] / np.abs(x[np.abs(x) > 256]))) < 0.03


# -- input handling -------------------------------------------------------------------------------


def test_bytes_like_inputs_and_array_layouts_agree() -> None:
    pcm = ALL_PCM[:2000]
    expected = ulaw_encode(pcm)
    assert ulaw_encode(bytearray(pcm)) == expected
    assert ulaw_encode(memoryview(pcm)) == expected
    as_array = np.frombuffer(pcm, "<i2")
    assert ulaw_encode(as_array.astype(">i2")) == expected
    assert ulaw_encode(as_array.reshape(-1, 2)) == expected  # interleaved order kept
    assert ulaw_encode(as_array[::-1][::-1]) == expected
    codes = np.frombuffer(expected, np.uint8)
    assert ulaw_decode(codes) == ulaw_decode(expected) == ulaw_decode(memoryview(expected))
    assert ulaw_encode(b"") == b"" and alaw_decode(b"") == b""


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ulaw_encode(b"\x00\x00\x00"), "whole number of 2-byte samples, got 3"),
        (lambda: alaw_encode(np.zeros(4, np.float32)), "int16 samples, not a float32"),
        (lambda: ulaw_encode("abcd"), "not str"),
        (lambda: ulaw_decode(np.zeros(4, np.int16)), "uint8 array, not a int16"),
        (lambda: alaw_decode(3.5), "not float"),
        (lambda: g711_encode(b"", "mp3"), "'mp3' is not one of 'ulaw', 'alaw'"),
        (lambda: to_pcm16(b"", "opus"), "'opus' is not one of 'pcm16', 'ulaw', 'alaw'"),
        (lambda: G711Encoder(24000, "pcm16"), "'pcm16' is not one of 'ulaw', 'alaw'"),
        (lambda: g711_decode(b"", 7), "expected a str"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_a_clear_error(call: Any, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        call()


@given(st.binary(max_size=512), st.sampled_from(["ulaw", "alaw"]))
def test_any_bytes_decode_to_two_bytes_per_code_and_reencode_stably(data: bytes, law: str) -> None:
    pcm = g711_decode(data, law)
    assert len(pcm) == 2 * len(data)
    assert to_pcm16(data, law) == pcm
    assert g711_decode(g711_encode(pcm, law), law) == pcm


@given(st.lists(st.integers(-32768, 32767), max_size=256), st.sampled_from(["ulaw", "alaw"]))
def test_any_samples_encode_like_the_scalar_reference(samples: list[int], law: str) -> None:
    ref = ref_linear2ulaw if law == "ulaw" else ref_linear2alaw
    assert g711_encode(np.array(samples, np.int16), law) == bytes(ref(s) for s in samples)


def test_pcm16_passes_through_unchanged_and_silence_decodes_to_zero() -> None:
    data = b"\x01\x02"
    assert to_pcm16(data, "pcm16") is data
    for law in ("ulaw", "alaw"):
        assert set(np.frombuffer(g711_decode(g711_silence(law, 160), law), "<i2")) <= {0, -8, 8}
        assert len(g711_silence(law, 160)) == 160


# -- streaming encoder ----------------------------------------------------------------------------


def _tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 0.4 * 32767).astype("<i2").tobytes()


def test_encoder_at_8k_is_plain_encoding_in_any_chunking() -> None:
    pcm = _tone(8000, 0.5)
    enc = G711Encoder(8000, "alaw")
    out = b"".join(enc.encode(pcm[i : i + 333]) for i in range(0, len(pcm), 333)) + enc.flush()
    assert out == alaw_encode(pcm)


def test_encoder_resamples_24k_reply_audio_to_8k_mu_law() -> None:
    pcm = _tone(24000, 1.0)
    enc = G711Encoder(24000, "ulaw")
    out = b"".join(enc.encode(pcm[i : i + 4800]) for i in range(0, len(pcm), 4800)) + enc.flush()
    assert abs(len(out) - 8000) <= 2
    got = np.frombuffer(ulaw_decode(out), "<i2").astype(np.float64)
    want = np.frombuffer(resample_pcm16(pcm, 24000, 8000), "<i2").astype(np.float64)
    n = min(len(got), len(want))
    corr = np.corrcoef(got[200 : n - 200], want[200 : n - 200])[0, 1]
    assert corr > 0.999
    assert repr(enc) == "G711Encoder(24000, 'ulaw', output_rate=8000)"


def test_encoder_reset_drops_the_reply_in_progress() -> None:
    enc = G711Encoder(24000, "ulaw")
    enc.encode(_tone(24000, 0.2))
    enc.reset()
    assert enc.flush() == b""
    fresh = G711Encoder(24000, "ulaw")
    pcm = _tone(24000, 0.3, 300.0)
    assert enc.encode(pcm) + enc.flush() == fresh.encode(pcm) + fresh.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        VECTORS.parent.mkdir(parents=True, exist_ok=True)
        VECTORS.write_text(json.dumps(reference_vectors(), separators=(",", ":")) + "\n")
        print(f"wrote {VECTORS}")
    else:
        print(__doc__)
