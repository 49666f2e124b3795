"""Fault injection for tests: what to break on a simulated connection, and raw frame building."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["INTERNAL_ERROR_CLOSE", "Faults", "close_frame", "raw_frame"]

INTERNAL_ERROR_CLOSE = (1011, "Internal service error: null")
"""The close frame the service sends for an internal failure (captured, docs/protocol.md §9.3)."""


@attrs.define(kw_only=True)
class Faults:
    """Faults applied to every new connection (copied at connect time; change per connection via
    ``ConnectionRecord.faults``).
    """

    drop_after_events: int | None = None
    """Cut the TCP connection (no close frame) once this many server events were sent."""
    drop_mid_response: bool = False
    """Cut the TCP connection right after the first delta of a response."""
    event_delay_s: float = 0.0
    """Sleep this long before sending each server event."""
    stall: bool = False
    """Send nothing (events queue up) until ``ConnectionRecord.resume()``."""
    close_on: Mapping[str, tuple[int, str]] = attrs.field(factory=dict)
    """Client event type -> (code, reason): close when it arrives. A reason longer than 123 bytes
    is written as a raw (RFC-violating) close frame, as the real service does (protocol.md §9.3)."""
    error_on: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Client event type -> ``error`` object to send instead of handling the event."""
    on_connect_frames: tuple[Any, ...] = ()
    """Raw frames (str = text, bytes = binary) sent right after ``session.created``."""
    close_after_created: tuple[int, str] | None = None
    """Close with (code, reason) right after ``session.created``, e.g.
    :data:`INTERNAL_ERROR_CLOSE` (seen at start-up of the official VAD demo)."""


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked (server-to-client) WebSocket frame, with no validation of any kind."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def close_frame(code: int, reason: str) -> bytes:
    """A close frame; the reason may exceed the 123 bytes RFC 6455 allows."""
    return raw_frame(0x8, struct.pack("!H", code) + reason.encode("utf-8"))
