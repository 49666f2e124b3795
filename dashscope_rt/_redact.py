"""Masking secrets (the API key, proxy passwords) in text that came from elsewhere.

A server or a proxy may reflect the key (in a 400 body, an error message, a close reason). The
transport passes everything it receives through one :class:`Redactor`, so no event, exception or
log line the SDK builds from received bytes can hold the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["MASK", "Redactor"]

MASK = "***"
_MIN_SECRET = 6  # shorter values would mask ordinary words
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})
_SCHEMES = ("bearer ", "basic ", "token ")


class Redactor:
    """Replaces each secret (and its part after a ``sk-`` prefix) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            value = secret.strip()
            if value.lower().startswith(_SCHEMES):
                value = value.split(" ", 1)[1].strip()
            found.add(value)
            if value.startswith("sk-"):
                found.add(value[3:])
        # Longest first, so a key's tail never leaves its prefix behind.
        self._text = tuple(sorted((s for s in found if len(s) >= _MIN_SECRET), key=len)[::-1])
        self._data = tuple(s.encode("utf-8") for s in self._text)
        # A value holding none of the secrets that contain no other one holds none at all.
        self._probes = tuple(
            s for s in self._data if not any(o != s and o in s for o in self._data)
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        """A redactor for the values of the credential headers in ``headers`` and ``extra``."""
        values = [v for k, v in headers.items() if k.lower() in _SECRET_HEADERS]
        return cls([*values, *extra])

    def __bool__(self) -> bool:
        return bool(self._text)

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        for secret in self._text:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        """``value`` (UTF-8 bytes) with every secret masked."""
        if not any(probe in value for probe in self._probes):
            return value
        for secret in self._data:
            if secret in value:
                value = value.replace(secret, MASK.encode())
        return value
