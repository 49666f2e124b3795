"""What a probe trace says about the service: one :class:`Finding` per protocol point.

Pure functions over the frames of a trace (no I/O), so that they run as well on a fresh probe
trace as on the captures in ``tests/fixtures/real``. Each finding names the simulator's
``Behaviour`` setting it settles and the value the service matched (docs/protocol.md §15).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "CLIENT_ITEM_ID",
    "Finding",
    "Frame",
    "after_cancel",
    "chunk_ms",
    "client_item_id",
    "error_ids",
    "finish",
    "session_echo",
    "voice_check",
]

CLIENT_ITEM_ID = "probe_item_1"
"""The ``item.id`` the probe chooses for one text item, to see whether the server keeps it."""

_FULL_ECHO_KEYS = ("instructions", "tools", "temperature", "top_p", "max_tokens", "seed")


@attrs.frozen
class Frame:
    """One frame of a trace: ``dir`` is ``"send"`` or ``"recv"``; ``audio_bytes`` is the PCM
    length of an audio frame (else None)."""

    dir: str
    event: Mapping[str, Any]
    audio_bytes: int | None = None

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))


@attrs.frozen
class Finding:
    """One protocol point: what was seen, and the ``Behaviour`` setting it matches.

    ``setting`` is None for a point no setting covers; ``value`` is None when the trace does not
    settle the point (``observed`` says why).
    """

    point: str
    observed: str
    setting: str | None = None
    value: Any = None


def _received(frames: Iterable[Frame]) -> list[Frame]:
    return [f for f in frames if f.dir == "recv"]


def session_echo(frames: Sequence[Frame]) -> Finding:
    """``session_echo``: does ``session.created`` carry the whole config, or a short object?"""
    created = next((f for f in _received(frames) if f.type == "session.created"), None)
    if created is None:
        return Finding("session echo", "no session.created", "session_echo")
    session = created.event.get("session")
    keys = list(session) if isinstance(session, Mapping) else []
    full = [k for k in _FULL_ECHO_KEYS if k in keys]
    echo_null = _turn_detection_after_null(frames)
    detail = f"session.created has {len(keys)} keys ({', '.join(keys)})"
    if echo_null is not None:
        detail += f"; after turn_detection null, session.updated {echo_null}"
    value = "full" if full or echo_null == "echoes it as null" else "partial"
    return Finding("session echo", detail, "session_echo", value)


def _turn_detection_after_null(frames: Sequence[Frame]) -> str | None:
    waiting = False
    for f in frames:
        if f.dir == "send" and f.type == "session.update":
            session = f.event.get("session")
            waiting = isinstance(session, Mapping) and session.get("turn_detection", 0) is None
        elif waiting and f.dir == "recv" and f.type == "session.updated":
            session = f.event.get("session")
            if not isinstance(session, Mapping):
                return None
            if "turn_detection" not in session:
                return "omits it"
            return "echoes it as null" if session["turn_detection"] is None else "echoes an object"
    return None


def error_ids(frames: Iterable[Frame]) -> Finding:
    """``error_ids``: the top-level ``event_id`` of error events: empty, absent or present."""
    kinds: list[str] = []
    echoed = 0
    for f in _received(frames):
        if f.type != "error":
            continue
        eid = f.event.get("event_id")
        kinds.append("absent" if "event_id" not in f.event else "empty" if not eid else "present")
        error = f.event.get("error")
        if isinstance(error, Mapping) and error.get("event_id"):
            echoed += 1
    if not kinds:
        return Finding("error ids", "no error event seen", "error_ids")
    value = max(set(kinds), key=kinds.count)
    detail = f"{len(kinds)} error event(s): event_id {', '.join(kinds)}"
    detail += f"; {echoed} named the client event (error.event_id)"
    return Finding("error ids", detail, "error_ids", value)


def chunk_ms(frames: Sequence[Frame], output_rate: int) -> Finding:
    """``chunk_ms``: the usual length of a ``response.audio.delta`` (the last of a reply aside)."""
    sizes: list[int] = []
    run: list[int] = []
    for f in _received(frames):
        if f.type == "response.audio.delta" and f.audio_bytes:
            run.append(f.audio_bytes)
        elif f.type in ("response.audio.done", "response.done") and run:
            sizes += run[:-1] or run
            run = []
    sizes += run
    if not sizes:
        return Finding("audio delta length", "no audio delta seen", "chunk_ms")
    ms = [n / 2 / output_rate * 1000 for n in sizes]
    median = statistics.median(ms)
    detail = f"{len(ms)} deltas, median {median:.0f} ms ({min(ms):.0f}-{max(ms):.0f} ms)"
    return Finding("audio delta length", detail, "chunk_ms", round(median))


def _content(event: Mapping[str, Any]) -> Any:
    item = event.get("item")
    return item.get("content") if isinstance(item, Mapping) else None


def client_item_id(frames: Sequence[Frame], wanted: str = CLIENT_ITEM_ID) -> Finding:
    """``keep_client_item_id``: does ``conversation.item.created`` keep an id the client chose?

    The created item is found by its content (the server may replace the id).
    """
    content: Any = None
    for f in frames:
        if f.dir == "send" and f.type == "conversation.item.create" and content is None:
            item = f.event.get("item")
            if isinstance(item, Mapping) and item.get("id") == wanted:
                content = item.get("content")
        elif content is not None and f.type == "conversation.item.created":
            if _content(f.event) != content:
                continue
            item = f.event.get("item")
            got = item.get("id") if isinstance(item, Mapping) else None
            detail = f"sent item id {wanted!r}, created as {got!r}"
            return Finding("client item id", detail, "keep_client_item_id", got == wanted)
    return Finding("client item id", "no item with a client id was created", "keep_client_item_id")


def after_cancel(frames: Sequence[Frame]) -> list[Finding]:
    """``audio_after_cancel`` and ``cancel_sends_response_done`` after the first active cancel."""
    active = False
    cancelled = False
    audio_after = 0
    ends: list[str] = []
    status: str | None = None
    for f in frames:
        if f.dir == "recv" and f.type == "response.created":
            active = True
        elif f.dir == "recv" and f.type == "response.done":
            if cancelled:
                response = f.event.get("response")
                status = response.get("status") if isinstance(response, Mapping) else None
                ends.append(f.type)
                break
            active = False
        elif f.dir == "send" and f.type == "response.cancel" and active and not cancelled:
            cancelled = True
        elif cancelled and f.dir == "recv":
            if f.type == "response.audio.delta":
                audio_after += 1
            elif f.type.endswith(".done"):
                ends.append(f.type)
            elif f.type == "response.created":
                break  # the next response: this one got no response.done
    if not cancelled:
        none = "no response.cancel during a response"
        return [
            Finding("audio after cancel", none, "audio_after_cancel"),
            Finding("response.done after cancel", none, "cancel_sends_response_done"),
        ]
    done = "response.done" in ends
    order = " → ".join(ends) or "nothing"
    if status == "completed":
        late = f"the response had completed before the cancel took effect ({order})"
        return [
            Finding("audio after cancel", late, "audio_after_cancel"),
            Finding("response.done after cancel", late, "cancel_sends_response_done"),
        ]
    return [
        Finding(
            "audio after cancel",
            f"{audio_after} audio delta(s) after the cancel",
            "audio_after_cancel",
            audio_after,
        ),
        Finding(
            "response.done after cancel",
            f"{order}" + (f" (status {status!r})" if done else ""),
            "cancel_sends_response_done",
            done,
        ),
    ]


def finish(frames: Sequence[Frame], closed_after_s: float | None, waited_s: float) -> Finding:
    """``finish``: what answers ``session.finish``: ``session.finished`` then a close
    (``finished_close``) or not (``finished_open``), an error (``refuse``), nothing (``ignore``).

    ``closed_after_s``: seconds from the finish to the server's close (None: no close seen in
    the ``waited_s`` the probe waited).
    """
    sent: str | None = None
    answer: str | None = None
    for f in frames:
        if f.dir == "send" and f.type == "session.finish":
            sent = str(f.event.get("event_id", ""))
        elif sent is not None and f.dir == "recv" and f.type in ("session.finished", "error"):
            error = f.event.get("error")
            error = error if isinstance(error, Mapping) else {}
            named = error.get("event_id")
            late = (named and named != sent) or "active response" in str(error.get("message"))
            if f.type == "error" and late:
                continue  # the late answer to an earlier request (a cancel that came too late)
            answer = f.type
            break
    if not sent:
        return Finding("session.finish", "not sent", "finish")
    closed = f"closed after {closed_after_s:.1f} s" if closed_after_s is not None else None
    if answer == "error":
        value, detail = "refuse", "an error"
    elif answer == "session.finished":
        value = "finished_close" if closed else "finished_open"
        detail = "session.finished"
    elif closed:
        value, detail = "close", "no session.finished"
    else:
        value, detail = "ignore", "no answer"
    detail += f", {closed or f'socket still open after {waited_s:g} s'}"
    return Finding("session.finish", detail, "finish", value)


def voice_check(frames: Sequence[Frame], voice: str, refused_at: str | None) -> Finding:
    """``voice_check``: when an unknown voice is refused: at ``update`` or at the first
    ``response``; ``refused_at`` is what the probe saw (None: the voice was accepted)."""
    if refused_at is None:
        return Finding("bad voice", f"voice {voice!r} was accepted and used", "voice_check", "none")
    shape = "an error event"
    errors = [f for f in _received(frames) if f.type == "error"]
    if not any("not supported" in str(f.event.get("error", "")) for f in errors):
        shape = "a close (no error event)"
    return Finding(
        "bad voice",
        f"voice {voice!r} refused at {refused_at}, as {shape}",
        "voice_check",
        refused_at,
    )
