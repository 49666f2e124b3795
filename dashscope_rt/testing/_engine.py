"""The simulated service, sans-IO: client frames in, timed server events (and a close) out.

``SimulatedSession.receive(frame, now)`` parses one client frame and schedules the server's
answer; ``poll(now)`` returns what is due; ``next_due()`` says when to poll next. Time is whatever
clock the caller passes (the server uses ``time.monotonic()``), so the engine is tested without
sockets or sleeps.
"""

from __future__ import annotations

import base64
import binascii
import copy
import heapq
import json
import logging
import math
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..models import ModelInfo
from ._behaviour import Behaviour
from ._responder import (
    Image,
    Responder,
    ToolCall,
    ToolOutput,
    Turn,
    arguments_json,
    default_responder,
    normalize_reply,
)
from ._speech import synthesize
from ._vad import EnergyVAD

__all__ = [
    "Outgoing",
    "SimulatedSession",
    "Transcriber",
    "default_transcriber",
    "image_tokens",
    "jpeg_size",
    "new_id",
]

log = logging.getLogger("dashscope_rt.testing")

Transcriber = Callable[[bytes, int], str]
"""(committed PCM16LE, sample rate) -> transcript."""

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, n: int = 21) -> str:
    """An id shaped like the service's (``event_`` + 21 letters/digits)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def default_transcriber(pcm: bytes, rate: int) -> str:
    """Without a script the simulator cannot know the words; it says how much it heard."""
    return f"[{len(pcm) / 2 / rate:.1f} s of speech]"


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF marker, or None if ``data`` is not a JPEG."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
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
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h)
        if marker == 0xDA:
            return None
        i += 2 + seg
    return None


def image_tokens(width: int, height: int, px: int) -> int:
    """Tokens for one image: one per ``px``×``px`` tile, at least 4, at most 1280."""
    return max(4, min(1280, math.ceil(width / px) * math.ceil(height / px)))


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def _audio_tokens(seconds: float, per_s: float) -> int:
    if seconds <= 0:
        return 0
    return math.ceil(max(1.0, seconds) * per_s)


@attrs.frozen
class Outgoing:
    """One thing to send: a server event, or a close (code, reason) when ``event`` is None."""

    event: dict[str, Any] | None
    close: tuple[int, str] | None = None
    response_id: str | None = None


@attrs.define
class _Scheduled:
    out: Outgoing
    kind: str = ""
    payload: Any = None


@attrs.define
class _Response:
    id: str
    modalities: list[str]
    voice: str
    status: str = "in_progress"
    text: str = ""
    sent_text: str = ""
    sent_audio_bytes: int = 0
    total_audio_bytes: int = 0
    message_item_id: str | None = None
    output: list[dict[str, Any]] = attrs.field(factory=list)
    input_usage: dict[str, int] = attrs.field(factory=dict)
    finished: bool = False


@attrs.define
class _UserTurn:
    transcript: str = ""
    text: str = ""
    audio_seconds: float = 0.0
    images: list[Image] = attrs.field(factory=list)


class SimulatedSession:
    """State machine of one simulated realtime session (one WebSocket connection)."""

    def __init__(
        self,
        model: ModelInfo,
        *,
        behaviour: Behaviour | None = None,
        responder: Responder | None = None,
        transcriber: Transcriber | None = None,
        now: float = 0.0,
        known_model: bool = True,
    ) -> None:
        self.model = model
        self.behaviour = behaviour or Behaviour()
        self.responder: Responder = responder or default_responder
        self.transcriber: Transcriber = transcriber or default_transcriber
        self.started_at = now
        self.closing = False
        self.finished = False
        self._queue: list[tuple[float, int, _Scheduled]] = []
        self._seq = 0
        self._defaults = self._default_config()
        self.config: dict[str, Any] = copy.deepcopy(self._defaults)
        self.conversation_id = new_id("conv_")
        self._buffer = bytearray()
        self._buffer_start_ms = 0.0
        self._audio_ms_total = 0.0
        self._audio_since_commit = 0
        self._any_audio = False
        self._images: list[Image] = []
        self._speech_start_ms: int | None = None
        self._speech_item: str | None = None
        self._vad: EnergyVAD | None = None
        self._pending_turns: list[_UserTurn] = []
        self._pending_tool_outputs: list[ToolOutput] = []
        self._issued_calls: dict[str, str] = {}
        self._history: list[tuple[str, str]] = []
        self._active: _Response | None = None
        self._audio_produced = False
        self._finish_pending = False
        self._last_activity = now
        self._proactive_at: float | None = None
        self._context = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
        self._reset_vad()
        if not known_model and self.behaviour.check_model:
            self._error(
                now,
                "invalid_request_error",
                "model_not_found",
                f"Model not found: {model.name}",
                "model",
            )
            self._close(now, self.behaviour.unknown_model_close_code, "Model not found")
            return
        self._emit(now, {"type": "session.created", "session": copy.deepcopy(self.config)})

    # ------------------------------------------------------------------ queue
    def _emit(
        self,
        due: float,
        event: dict[str, Any],
        *,
        response_id: str | None = None,
        kind: str = "",
        payload: Any = None,
    ) -> None:
        ev = {"event_id": new_id("event_"), **event}
        self._push(due, _Scheduled(Outgoing(ev, None, response_id), kind, payload))

    def _push(self, due: float, item: _Scheduled) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, item))

    def _close(self, due: float, code: int, reason: str) -> None:
        self._push(due, _Scheduled(Outgoing(None, (code, reason)), "close"))
        self.closing = True

    def _error(
        self,
        due: float,
        etype: str,
        code: str | None,
        message: str,
        param: str | None = None,
        client_event_id: str | None = None,
    ) -> None:
        err: dict[str, Any] = {"type": etype, "code": code, "message": message, "param": param}
        if self.behaviour.error_event_id and client_event_id:
            err["event_id"] = client_event_id
        self._emit(due, {"type": "error", "error": err})

    def next_due(self) -> float | None:
        """The clock time at which :meth:`poll` has something to return (None: only on input)."""
        cands: list[float] = []
        if self._queue:
            cands.append(self._queue[0][0])
        if not self.closing:
            cands.extend(t for t in self._timers() if t is not None)
        return min(cands) if cands else None

    def _timers(self) -> list[float | None]:
        b = self.behaviour
        idle = None
        if b.idle_timeout_s is not None and self._active is None:
            idle = self._last_activity + b.idle_timeout_s
        cap = None if b.max_duration_s is None else self.started_at + b.max_duration_s
        return [idle, cap, self._proactive_at]

    def poll(self, now: float) -> list[Outgoing]:
        """Everything due at ``now``, in order; bookkeeping happens as events go out."""
        self._fire_timers(now)
        out: list[Outgoing] = []
        while self._queue and self._queue[0][0] <= now:
            _, _, item = heapq.heappop(self._queue)
            if item.kind == "finalize":
                resp = self._active
                if resp is not None and resp.id == item.payload:
                    self._finalize(resp, now)
                continue
            self._on_emitted(item, now)
            out.append(item.out)
            if item.kind == "close":
                self._queue.clear()
                break
        return out

    def _fire_timers(self, now: float) -> None:
        if self.closing:
            return
        idle, cap, proactive = self._timers()
        b = self.behaviour
        if cap is not None and now >= cap:
            minutes = (b.max_duration_s or 0) / 60
            msg = f"Your session hit the maximum duration of {minutes:g} minutes."
            self._error(now, "invalid_request_error", b.max_duration_error_code, msg)
            self._close(now, b.max_duration_close_code, msg)
        elif idle is not None and now >= idle:
            msg = (
                "Your session was closed because no response was generated for "
                f"{b.idle_timeout_s:g} seconds."
            )
            self._error(now, "invalid_request_error", b.idle_error_code, msg)
            self._close(now, b.idle_close_code, msg)
        elif proactive is not None and now >= proactive:
            self._proactive_at = None
            if self._active is None:
                self._start_response(now, None, None)

    def _on_emitted(self, item: _Scheduled, now: float) -> None:
        resp = self._active
        if item.kind == "transcript" and resp is not None:
            resp.sent_text += item.payload
        elif item.kind == "audio" and resp is not None:
            resp.sent_audio_bytes += item.payload
            self._audio_produced = True
        elif item.kind == "response_done":
            self._active = None
            self._last_activity = now
            td = self.config.get("turn_detection")
            idle_ms = td.get("idle_timeout_ms") if isinstance(td, Mapping) else None
            if idle_ms:
                self._proactive_at = now + idle_ms / 1000.0
            if self._finish_pending:
                self._finish(now)

    # ------------------------------------------------------------------ config
    @property
    def _qwen35(self) -> bool:
        return self.model.family.startswith("qwen3.5")

    def _default_config(self) -> dict[str, Any]:
        m = self.model
        cfg: dict[str, Any] = {
            "id": new_id("sess_"),
            "object": "realtime.session",
            "model": m.name,
            "modalities": ["text", "audio"],
            "voice": m.default_voice,
            "instructions": "",
            "input_audio_format": "pcm",
            "output_audio_format": "pcm",
            "input_audio_transcription": {"model": m.transcription_model},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 800,
                "create_response": True,
                "interrupt_response": True,
            },
            "enable_search": False,
            "search_options": {},
            "tools": [],
        }
        if m.audio_format_object:
            cfg["audio"] = {
                "input": {"format": {"type": "pcm", "sample_rate": m.input_rate}},
                "output": {"format": {"type": "pcm", "sample_rate": m.output_rate}},
            }
        if m.smooth_output:
            cfg["smooth_output"] = True
        cfg.update(dict(m.sampling_defaults))
        cfg["max_response_output_token"] = "inf"
        cfg["max_tokens"] = m.max_output_tokens or 16384
        cfg["seed"] = -1
        return cfg

    @property
    def input_rate(self) -> int:
        audio = self.config.get("audio")
        if isinstance(audio, Mapping):
            return int(audio["input"]["format"]["sample_rate"])
        return self.model.input_rate

    @property
    def output_rate(self) -> int:
        audio = self.config.get("audio")
        if isinstance(audio, Mapping):
            return int(audio["output"]["format"]["sample_rate"])
        return self.model.output_rate

    def _reset_vad(self) -> None:
        td = self.config.get("turn_detection")
        if not isinstance(td, Mapping):
            self._vad = None
            return
        pos = self._vad.position_ms if self._vad is not None else 0
        self._vad = EnergyVAD(
            rate=self.input_rate,
            threshold=float(td.get("threshold", 0.5)),
            silence_duration_ms=int(td.get("silence_duration_ms", 800)),
            min_speech_ms=self.behaviour.vad_min_speech_ms,
        )
        self._vad._pos_ms = pos
        self._speech_start_ms = None

    # ------------------------------------------------------------------ input
    def receive(self, frame: str | bytes, now: float) -> None:
        """Handle one client frame."""
        if self.closing:
            return
        if isinstance(frame, bytes):
            self._error(
                now,
                "invalid_request_error",
                "invalid_request",
                "Binary frames are not supported; send JSON text frames.",
            )
            return
        try:
            event = json.loads(frame)
        except ValueError as exc:
            self._error(
                now, "invalid_request_error", "invalid_json", f"Invalid JSON in client event: {exc}"
            )
            return
        if not isinstance(event, dict):
            self._error(
                now,
                "invalid_request_error",
                "invalid_json",
                "A client event must be a JSON object.",
            )
            return
        self.handle(event, now)

    def handle(self, event: dict[str, Any], now: float) -> None:
        """Handle one decoded client event."""
        if self.closing:
            return
        etype = event.get("type")
        eid = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = _HANDLERS.get(str(etype))
        if etype == "session.finish" and not self._session_finish_accepted():
            handler = None
        if handler is None:
            self._error(
                now,
                "invalid_request_error",
                "invalid_event_type",
                f"Invalid event type: {etype!r}",
                "type",
                eid,
            )
            return
        handler(self, event, eid, now)

    def _session_finish_accepted(self) -> bool:
        if self.behaviour.session_finish is not None:
            return self.behaviour.session_finish
        return self.model.session_finish is not False

    # session.update -------------------------------------------------------
    def _on_session_update(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        patch = event.get("session")
        if not isinstance(patch, dict):
            self._error(
                now,
                "invalid_request_error",
                "missing_required_parameter",
                "Missing required parameter: 'session'.",
                "session",
                eid,
            )
            return
        base = self.config if self.behaviour.update_mode == "merge" else self._defaults
        new = copy.deepcopy(base)
        new["id"] = self.config["id"]
        problem = self._apply_update(new, patch)
        if problem is not None:
            code, message, param = problem
            self._error(now, "invalid_request_error", code, message, param, eid)
            if (
                param == "session.voice"
                and code == "invalid_value"
                and self.behaviour.close_on_bad_voice
            ):
                self._close(now, self.behaviour.bad_voice_close_code, message)
            return
        self.config = new
        self._reset_vad()
        self._emit(now, {"type": "session.updated", "session": copy.deepcopy(self.config)})

    def _apply_update(
        self, cfg: dict[str, Any], patch: Mapping[str, Any]
    ) -> tuple[str, str, str] | None:
        m = self.model
        b = self.behaviour

        def bad(field: str, message: str, code: str = "invalid_value") -> tuple[str, str, str]:
            return (code, message, f"session.{field}")

        def number(
            field: str,
            value: Any,
            lo: float,
            hi: float,
            lo_open: bool = False,
            hi_open: bool = False,
            integer: bool = False,
        ) -> tuple[str, str, str] | None:
            ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type:
                kind = "an integer" if integer else "a number"
                return bad(
                    field, f"Invalid type for 'session.{field}': expected {kind}.", "invalid_type"
                )
            too_low = value <= lo if lo_open else value < lo
            too_high = value >= hi if hi_open else value > hi
            if too_low or too_high:
                lb = "(" if lo_open else "["
                rb = ")" if hi_open else "]"
                return bad(
                    field,
                    f"Invalid value for 'session.{field}': {value}. "
                    f"Expected a value in {lb}{lo:g}, {hi:g}{rb}.",
                )
            return None

        if "modalities" in patch:
            mods = patch["modalities"]
            if not isinstance(mods, list) or sorted(map(str, mods)) not in (
                ["text"],
                ["audio", "text"],
            ):
                return bad(
                    "modalities",
                    f"Invalid modalities: {mods!r}. Supported combinations "
                    "are: ['text'] and ['audio', 'text'].",
                )
            cfg["modalities"] = list(mods)
        if "voice" in patch:
            voice = patch["voice"]
            if not isinstance(voice, str) or not m.accepts_voice(voice):
                return bad("voice", f"Voice '{voice}' is not supported.")
            if voice != cfg["voice"] and self._audio_produced and b.reject_voice_change_after_audio:
                return bad(
                    "voice",
                    "Cannot update voice after audio has been generated.",
                    "cannot_update_voice",
                )
            cfg["voice"] = voice
        if "instructions" in patch:
            if not isinstance(patch["instructions"], (str, type(None))):
                return bad(
                    "instructions",
                    "Invalid type for 'session.instructions': expected a string.",
                    "invalid_type",
                )
            cfg["instructions"] = patch["instructions"] or ""
        for key in ("input_audio_format", "output_audio_format"):
            if key in patch:
                if patch[key] not in ("pcm", "pcm16", "pcm24"):
                    return bad(
                        key, f"Invalid value for 'session.{key}': {patch[key]!r}. Supported: 'pcm'."
                    )
                cfg[key] = patch[key]
        if "audio" in patch:
            if not m.audio_format_object:
                return bad(
                    "audio",
                    f"Parameter 'session.audio' is not supported by {m.name}.",
                    "unsupported_parameter",
                )
            audio = patch["audio"]
            if not isinstance(audio, Mapping):
                return bad(
                    "audio", "Invalid type for 'session.audio': expected an object.", "invalid_type"
                )
            merged = copy.deepcopy(cfg.get("audio") or self._defaults["audio"])
            for side, rates in (("input", m.input_rates), ("output", m.output_rates)):
                fmt = (
                    (audio.get(side) or {}).get("format")
                    if isinstance(audio.get(side), Mapping)
                    else None
                )
                if fmt is None:
                    continue
                if not isinstance(fmt, Mapping):
                    return bad(f"audio.{side}.format", "expected an object", "invalid_type")
                if "type" in fmt:
                    if fmt["type"] not in ("pcm", "wav"):
                        return bad(
                            f"audio.{side}.format.type",
                            f"Invalid value for "
                            f"'session.audio.{side}.format.type': {fmt['type']!r}. "
                            "Supported: 'pcm', 'wav'.",
                        )
                    merged[side]["format"]["type"] = fmt["type"]
                if "sample_rate" in fmt:
                    sr = fmt["sample_rate"]
                    if sr not in rates or isinstance(sr, bool):
                        return bad(
                            f"audio.{side}.format.sample_rate",
                            "Invalid value for "
                            f"'session.audio.{side}.format.sample_rate': {sr!r}. "
                            f"Supported: {list(rates)}.",
                        )
                    if side == "input" and self._any_audio and sr != self.input_rate:
                        return bad(
                            "audio.input.format.sample_rate",
                            "The input sample rate cannot be changed after audio has been sent.",
                        )
                    merged[side]["format"]["sample_rate"] = sr
            cfg["audio"] = merged
        if "smooth_output" in patch:
            so = patch["smooth_output"]
            if so is not None and not isinstance(so, bool):
                return bad(
                    "smooth_output",
                    "Invalid type for 'session.smooth_output': expected a boolean or null.",
                    "invalid_type",
                )
            if m.smooth_output:
                cfg["smooth_output"] = so
        if "turn_detection" in patch:
            td = patch["turn_detection"]
            if td is None:
                cfg["turn_detection"] = None
            elif not isinstance(td, Mapping):
                return bad(
                    "turn_detection",
                    "Invalid type for 'session.turn_detection': expected an object or null.",
                    "invalid_type",
                )
            else:
                prev = cfg.get("turn_detection")
                cur = (
                    dict(prev)
                    if isinstance(prev, Mapping)
                    else dict(self._defaults["turn_detection"])
                )
                kind = td.get("type", cur.get("type", "server_vad"))
                allowed = ("server_vad", "semantic_vad") if m.semantic_vad else ("server_vad",)
                if kind not in allowed:
                    return bad(
                        "turn_detection.type",
                        f"Invalid value for 'session.turn_detection."
                        f"type': {kind!r}. Supported: {list(allowed)}.",
                    )
                cur["type"] = kind
                checks: list[tuple[str, float, float, bool]] = [
                    ("threshold", -1.0, 1.0, False),
                    ("silence_duration_ms", 200, 6000, True),
                    ("prefix_padding_ms", 0, 10000, True),
                ]
                for key, lo, hi, integer in checks:
                    if key in td:
                        p = number(f"turn_detection.{key}", td[key], lo, hi, integer=integer)
                        if p:
                            return p
                        cur[key] = td[key]
                for key in ("create_response", "interrupt_response"):
                    if key in td:
                        if not isinstance(td[key], bool):
                            return bad(
                                f"turn_detection.{key}", "expected a boolean", "invalid_type"
                            )
                        cur[key] = td[key]
                if "idle_timeout_ms" in td and td["idle_timeout_ms"] is not None:
                    if not m.idle_timeout or kind != "server_vad":
                        return bad(
                            "turn_detection.idle_timeout_ms",
                            "Parameter 'session.turn_"
                            f"detection.idle_timeout_ms' is not supported by {m.name} "
                            f"with {kind}.",
                            "unsupported_parameter",
                        )
                    p = number(
                        "turn_detection.idle_timeout_ms",
                        td["idle_timeout_ms"],
                        5000,
                        30000,
                        integer=True,
                    )
                    if p:
                        return p
                    cur["idle_timeout_ms"] = td["idle_timeout_ms"]
                cfg["turn_detection"] = cur
        if "input_audio_transcription" in patch:
            iat = patch["input_audio_transcription"]
            if iat is None:
                cfg["input_audio_transcription"] = None
            elif isinstance(iat, Mapping):
                cfg["input_audio_transcription"] = {"model": m.transcription_model}
            else:
                return bad(
                    "input_audio_transcription",
                    "Invalid type for 'session.input_audio_"
                    "transcription': expected an object or null.",
                    "invalid_type",
                )
        sampling: list[tuple[str, float, float, bool, bool, bool]] = [
            ("temperature", 0.0, 2.0, False, True, False),
            ("top_p", 0.0, 1.0, True, False, False),
            ("repetition_penalty", 0.0, 1e9, True, False, False),
            ("presence_penalty", -2.0, 2.0, False, False, False),
        ]
        for key, lo, hi, lo_open, hi_open, integer in sampling:
            if key in patch:
                p = number(key, patch[key], lo, hi, lo_open, hi_open, integer)
                if p:
                    return p
                if not m.sampling_params and not b.ignore_fixed_sampling_params:
                    return bad(
                        key,
                        f"Parameter 'session.{key}' cannot be modified for {m.name}.",
                        "unsupported_parameter",
                    )
                if m.sampling_params:
                    cfg[key] = patch[key]
        if "top_k" in patch and patch["top_k"] is not None:
            p = number("top_k", patch["top_k"], 0, 2**31 - 1, integer=True)
            if p:
                return p
            if m.sampling_params:
                cfg["top_k"] = patch["top_k"]
        if "max_tokens" in patch:
            hi = m.max_output_tokens or 16384
            p = number("max_tokens", patch["max_tokens"], 1, hi, integer=True)
            if p:
                return p
            if m.sampling_params:
                cfg["max_tokens"] = patch["max_tokens"]
        if "seed" in patch:
            p = number("seed", patch["seed"], -1, 2**31 - 1, integer=True)
            if p:
                return p
            if m.sampling_params:
                cfg["seed"] = patch["seed"]
        if "tools" in patch:
            tools = patch["tools"]
            if not isinstance(tools, list):
                return bad(
                    "tools", "Invalid type for 'session.tools': expected an array.", "invalid_type"
                )
            for i, tool in enumerate(tools):
                fn = tool.get("function") if isinstance(tool, Mapping) else None
                if (
                    not isinstance(tool, Mapping)
                    or tool.get("type") != "function"
                    or not isinstance(fn, Mapping)
                    or not isinstance(fn.get("name"), str)
                    or not fn["name"]
                ):
                    return bad(
                        f"tools[{i}]",
                        f"Invalid tool at 'session.tools[{i}]': expected "
                        "{'type': 'function', 'function': {'name': ...}}.",
                    )
                params = fn.get("parameters")
                if params is not None and (
                    not isinstance(params, Mapping) or params.get("type") != "object"
                ):
                    return bad(
                        f"tools[{i}].function.parameters",
                        "Tool parameters must be a JSON schema of type 'object'.",
                    )
            if tools and not m.tools and not b.accept_tools_without_support:
                return bad(
                    "tools",
                    f"Parameter 'session.tools' is not supported by {m.name}.",
                    "unsupported_parameter",
                )
            cfg["tools"] = copy.deepcopy(tools)
        if "enable_search" in patch:
            es = patch["enable_search"]
            if not isinstance(es, bool):
                return bad("enable_search", "expected a boolean", "invalid_type")
            if es and not m.search:
                return bad(
                    "enable_search",
                    f"Parameter 'session.enable_search' is not supported by {m.name}.",
                    "unsupported_parameter",
                )
            cfg["enable_search"] = es
        if "search_options" in patch:
            if not isinstance(patch["search_options"], Mapping):
                return bad("search_options", "expected an object", "invalid_type")
            cfg["search_options"] = dict(patch["search_options"])
        if cfg.get("enable_search") and cfg.get("tools"):
            return bad(
                "tools", "'session.tools' and 'session.enable_search' cannot be enabled together."
            )
        return None

    # audio ----------------------------------------------------------------
    def _decode_b64(self, value: Any) -> bytes | None:
        if not isinstance(value, str) or not value:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _on_append(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        if "audio" not in event:
            self._error(
                now,
                "invalid_request_error",
                "missing_required_parameter",
                "Missing required parameter: 'audio'.",
                "audio",
                eid,
            )
            return
        pcm = self._decode_b64(event["audio"])
        if pcm is None:
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                "Invalid 'audio': expected Base64-encoded audio.",
                "audio",
                eid,
            )
            return
        if len(pcm) > self.behaviour.max_append_bytes:
            mib = self.behaviour.max_append_bytes / (1024 * 1024)
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                f"Audio in one input_audio_buffer.append exceeds {mib:g} MiB.",
                "audio",
                eid,
            )
            return
        audio_cfg = self.config.get("audio")
        if (
            isinstance(audio_cfg, Mapping)
            and audio_cfg["input"]["format"]["type"] == "wav"
            and pcm[:4] == b"RIFF"
        ):
            idx = pcm.find(b"data")
            pcm = pcm[idx + 8 :] if idx >= 0 else b""
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if not pcm:
            return
        self._any_audio = True
        self._audio_since_commit += len(pcm)
        self._buffer.extend(pcm)
        self._audio_ms_total += len(pcm) / 2 / self.input_rate * 1000
        if self._vad is not None:
            for vev in self._vad.feed(pcm):
                if vev.kind == "start":
                    self._on_speech_started(vev.ms, now)
                else:
                    self._on_speech_stopped(vev.ms, now)
            if self._speech_start_ms is None:
                self._trim_buffer()

    def _bytes_at(self, ms: float) -> int:
        off = int((ms - self._buffer_start_ms) * self.input_rate / 1000) * 2
        return max(0, min(len(self._buffer), off))

    def _trim_buffer(self) -> None:
        td = self.config.get("turn_detection")
        pad = int(td.get("prefix_padding_ms", 300)) if isinstance(td, Mapping) else 300
        keep_ms = pad + 200
        total_ms = self._buffer_start_ms + len(self._buffer) / 2 / self.input_rate * 1000
        if total_ms - self._buffer_start_ms > keep_ms * 4:
            cut_ms = total_ms - keep_ms
            cut = self._bytes_at(cut_ms)
            del self._buffer[:cut]
            self._buffer_start_ms += cut // 2 * 1000 / self.input_rate

    def _on_speech_started(self, ms: int, now: float) -> None:
        self._proactive_at = None
        self._speech_start_ms = ms
        self._speech_item = new_id("item_")
        self._emit(
            now,
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": ms,
                "item_id": self._speech_item,
            },
        )
        td = self.config.get("turn_detection")
        if (
            self._active is not None
            and isinstance(td, Mapping)
            and td.get("interrupt_response", True)
        ):
            self._cancel(now)

    def _on_speech_stopped(self, ms: int, now: float) -> None:
        item_id = self._speech_item or new_id("item_")
        start = self._speech_start_ms or 0
        self._emit(
            now,
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": ms, "item_id": item_id},
        )
        td = self.config.get("turn_detection") or {}
        pad = int(td.get("prefix_padding_ms", 300))
        lo = self._bytes_at(max(0.0, start - pad))
        hi = self._bytes_at(ms)
        pcm = bytes(self._buffer[lo:hi])
        del self._buffer[:hi]
        self._buffer_start_ms += hi // 2 * 1000 / self.input_rate
        self._audio_since_commit = len(self._buffer)
        self._speech_start_ms = None
        self._speech_item = None
        self._commit(pcm, item_id, now, transcribe=True)
        if td.get("create_response", True) and self._active is None:
            self._start_response(now, None, None)

    def _commit(self, pcm: bytes, item_id: str, now: float, *, transcribe: bool) -> None:
        self._emit(now, {"type": "input_audio_buffer.committed", "item_id": item_id})
        self._emit(
            now,
            {
                "type": "conversation.item.created",
                "item": {
                    "id": item_id,
                    "object": "realtime.item",
                    "type": "message",
                    "status": "in_progress",
                    "role": "user",
                    "content": [{"type": "input_audio"}],
                },
            },
        )
        turn = _UserTurn(audio_seconds=len(pcm) / 2 / self.input_rate, images=self._images)
        self._images = []
        self._pending_turns.append(turn)
        if self.config.get("input_audio_transcription") is None or not transcribe:
            try:
                turn.transcript = self.transcriber(pcm, self.input_rate)
            except Exception:  # the transcript is still what the "model" hears
                log.exception("transcriber failed")
            return
        try:
            text = self.transcriber(pcm, self.input_rate)
        except Exception as exc:
            log.warning("transcriber failed: %r", exc)
            self._emit(
                now,
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {"code": "transcription_failed", "message": str(exc), "param": None},
                },
            )
            return
        turn.transcript = text
        deltas = self.behaviour.transcription_deltas
        if deltas is None:
            deltas = self._qwen35
        if deltas and text:
            words = text.split(" ")
            lang = "zh" if any(ord(c) > 0x2E80 for c in text) else "en"
            for i in range(1, len(words) + 1):
                self._emit(
                    now,
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "text": " ".join(words[: i - 1]) + (" " if i > 1 else ""),
                        "stash": words[i - 1],
                        "language": lang,
                        "emotion": "neutral",
                    },
                )
        self._emit(
            now,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            },
        )

    def _vad_on(self) -> bool:
        return isinstance(self.config.get("turn_detection"), Mapping)

    def _on_commit(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        if self._vad_on():
            err = self.behaviour.commit_in_vad_error
            if err is None:
                err = self._qwen35
            if err:
                self._error(
                    now, "server_error", "internal_error", "Internal service error: null", None, eid
                )
                return
        if not self._buffer:
            self._error(
                now,
                "invalid_request_error",
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: the buffer is empty.",
                None,
                eid,
            )
            return
        pcm = bytes(self._buffer)
        self._buffer.clear()
        self._buffer_start_ms = self._audio_ms_total
        self._audio_since_commit = 0
        if self._vad is not None:
            self._vad.reset()
            self._speech_start_ms = None
        item = self._speech_item or new_id("item_")
        self._speech_item = None
        self._commit(pcm, item, now, transcribe=self.behaviour.transcribe_manual_commits)

    def _on_clear(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        self._buffer.clear()
        self._buffer_start_ms = self._audio_ms_total
        self._audio_since_commit = 0
        if self.behaviour.clear_clears_images:
            self._images = []
        if self._vad is not None:
            self._vad.reset()
        self._speech_start_ms = None
        self._emit(now, {"type": "input_audio_buffer.cleared"})

    def _on_image(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        b = self.behaviour
        raw = event.get("image")
        if not self.model.video:
            self._error(
                now,
                "invalid_request_error",
                "unsupported_event",
                f"Image input is not supported by {self.model.name}.",
                "image",
                eid,
            )
            return
        data = self._decode_b64(raw)
        if data is None:
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                "Invalid 'image': expected a Base64-encoded JPEG.",
                "image",
                eid,
            )
            return
        size = len(raw) if b.image_limit_on_base64 else len(data)  # type: ignore[arg-type]
        if size > b.image_max_bytes:
            what = "after Base64 encoding" if b.image_limit_on_base64 else "before Base64 encoding"
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                f"Image too large: {size} bytes {what}; the limit is {b.image_max_bytes} bytes.",
                "image",
                eid,
            )
            return
        dims = jpeg_size(data)
        if dims is None:
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                "Invalid image format: only JPEG/JPG is supported.",
                "image",
                eid,
            )
            return
        if self._audio_since_commit <= 0:
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                "Error append image before append audio.",
                "image",
                eid,
            )
            return
        self._images.append(Image(data, dims[0], dims[1]))

    # conversation items --------------------------------------------------------
    def _on_item_create(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or not item:
            self._error(
                now,
                "invalid_request_error",
                "missing_required_parameter",
                "Missing required parameter: 'item'.",
                "item",
                eid,
            )
            return
        itype = item.get("type")
        text_ok = self.behaviour.text_input
        if text_ok is None:
            text_ok = self.model.text_input
        item_id = item.get("id") if isinstance(item.get("id"), str) else new_id("item_")
        if itype == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                self._error(
                    now,
                    "invalid_request_error",
                    "missing_required_parameter",
                    "Missing required parameter: 'item.call_id'.",
                    "item.call_id",
                    eid,
                )
                return
            if not isinstance(output, str):
                self._error(
                    now,
                    "invalid_request_error",
                    "missing_required_parameter",
                    "Missing required parameter: 'item.output' (a string).",
                    "item.output",
                    eid,
                )
                return
            if self.behaviour.check_call_id and call_id not in self._issued_calls:
                self._error(
                    now,
                    "invalid_request_error",
                    "invalid_value",
                    f"Invalid 'item.call_id': no function call with id '{call_id}'.",
                    "item.call_id",
                    eid,
                )
                return
            self._pending_tool_outputs.append(
                ToolOutput(call_id, output, self._issued_calls.get(call_id, ""))
            )
            created = {
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call_output",
                "status": "completed",
                "call_id": call_id,
                "output": output,
            }
        elif itype == "message" and text_ok:
            texts = [
                str(c.get("text", ""))
                for c in item.get("content") or []
                if isinstance(c, Mapping) and c.get("type") in ("input_text", "text")
            ]
            if item.get("role", "user") != "user" or not texts:
                self._error(
                    now,
                    "invalid_request_error",
                    "invalid_value",
                    "Only user messages with 'input_text' content are supported.",
                    "item",
                    eid,
                )
                return
            self._pending_turns.append(_UserTurn(text=" ".join(texts)))
            created = {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_text", "text": " ".join(texts)}],
            }
        else:
            supported = (
                "'function_call_output' and 'message'" if text_ok else "'function_call_output'"
            )
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                f"Invalid 'item.type': {itype!r}. Currently only {supported} is supported.",
                "item.type",
                eid,
            )
            return
        if self.behaviour.ack_item_create:
            self._emit(now, {"type": "conversation.item.created", "item": created})

    # responses ----------------------------------------------------------------
    def _on_response_create(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        if self._active is not None:
            self._error(
                now,
                "invalid_request_error",
                "conversation_already_has_active_response",
                "Conversation already has an active response",
                None,
                eid,
            )
            return
        raw_opts = event.get("response")
        opts: Mapping[str, Any] = raw_opts if isinstance(raw_opts, Mapping) else {}
        mods = opts.get("modalities")
        if mods is not None and (
            not isinstance(mods, list)
            or sorted(map(str, mods)) not in (["text"], ["audio", "text"])
        ):
            self._error(
                now,
                "invalid_request_error",
                "invalid_value",
                f"Invalid modalities: "
                f"{mods!r}. Supported combinations are: ['text'] and ['audio', 'text'].",
                "response.modalities",
                eid,
            )
            return
        instr = opts.get("instructions")
        self._start_response(now, mods, instr if isinstance(instr, str) else None)

    def _on_cancel(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        if self._active is None:
            self._error(
                now,
                "invalid_request_error",
                "response_cancel_not_active",
                "Conversation has none active response",
                None,
                eid,
            )
            return
        self._cancel(now)

    def _on_finish(self, event: dict[str, Any], eid: str | None, now: float) -> None:
        if self._active is not None:
            self._finish_pending = True
        else:
            self._finish(now)

    def _finish(self, now: float) -> None:
        self._finish_pending = False
        self.finished = True
        self._emit(now, {"type": "session.finished"})
        if self.behaviour.close_after_finished:
            self._close(now, 1000, "session finished")

    def _build_turn(self, response_instructions: str | None) -> Turn:
        turns, self._pending_turns = self._pending_turns, []
        outputs, self._pending_tool_outputs = self._pending_tool_outputs, []
        model_tools = tuple(self.config.get("tools") or ()) if self.model.tools else ()
        return Turn(
            transcript=" ".join(t.transcript for t in turns if t.transcript),
            text=" ".join(t.text for t in turns if t.text),
            images=tuple(img for t in turns for img in t.images),
            tool_outputs=tuple(outputs),
            tools=model_tools,
            instructions=str(self.config.get("instructions") or ""),
            audio_seconds=sum(t.audio_seconds for t in turns),
            history=tuple(self._history),
            model=self.model.name,
            response_instructions=response_instructions,
        )

    def _input_usage(self, turn: Turn) -> dict[str, int]:
        ctx = self._context
        text = (
            _text_tokens(turn.instructions)
            + _text_tokens(turn.user_text)
            + sum(_text_tokens(o.output) for o in turn.tool_outputs)
        )
        if not ctx["text_tokens"]:
            text += 20  # system prompt overhead of the first turn
        ctx["text_tokens"] += text
        ctx["audio_tokens"] += _audio_tokens(
            turn.audio_seconds, self.model.input_audio_tokens_per_s
        )
        ctx["image_tokens"] += sum(
            image_tokens(i.width, i.height, self.model.image_px_per_token) for i in turn.images
        )
        return dict(ctx)

    def _start_response(
        self, now: float, modalities: list[str] | None, instructions: str | None
    ) -> None:
        self._proactive_at = None
        turn = self._build_turn(instructions)
        try:
            reply = normalize_reply(self.responder(turn))
        except Exception as exc:
            log.exception("responder failed")
            self._error(now, "server_error", "internal_error", f"Internal service error: {exc!r}")
            return
        declared = {
            str((t.get("function") or {}).get("name")) for t in turn.tools if isinstance(t, Mapping)
        }
        calls = [c for c in reply.tool_calls if c.name in declared]
        if len(calls) != len(reply.tool_calls):
            log.warning("responder called undeclared tools; ignored: %s", reply.tool_calls)
        mods = list(modalities or self.config["modalities"])
        resp = _Response(new_id("resp_"), mods, str(self.config["voice"]))
        resp.input_usage = self._input_usage(turn)
        self._active = resp
        self._last_activity = now
        self._emit(
            now,
            {"type": "response.created", "response": self._response_obj(resp)},
            response_id=resp.id,
        )
        b = self.behaviour
        speed = b.speed
        t0 = now + b.first_delta_latency_s

        def at(offset_s: float) -> float:
            return t0 + offset_s / speed if speed > 0 else t0

        index = 0
        end_s = 0.0
        text = reply.text
        max_tokens = int(self.config.get("max_tokens") or 0)
        if max_tokens and _text_tokens(text) > max_tokens:
            text = text[: max_tokens * 4]
            resp.status = "incomplete"
        if text or not calls:
            end_s = self._schedule_message(resp, text, now, at, index)
            index += 1
        for call in calls:
            self._schedule_call(resp, call, at(end_s), index)
            index += 1
        self._history.append((turn.user_text, text))
        self._push(at(end_s), _Scheduled(Outgoing(None, None, resp.id), "finalize", resp.id))

    def _schedule_message(
        self, resp: _Response, text: str, now: float, at: Callable[[float], float], index: int
    ) -> float:
        item_id = new_id("item_")
        resp.message_item_id = item_id
        resp.text = text
        audio = "audio" in resp.modalities
        part_type = "audio" if audio else "text"
        base = {
            "response_id": resp.id,
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
        }
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        rid = resp.id
        self._emit(
            now,
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": index,
                "item": item,
            },
            response_id=rid,
        )
        self._emit(now, {"type": "conversation.item.created", "item": item}, response_id=rid)
        self._emit(
            now,
            {
                "type": "response.content_part.added",
                **base,
                "part": {"type": part_type, "text": ""},
            },
            response_id=rid,
        )
        words = [w + " " for w in text.split(" ")] if text else []
        if words:
            words[-1] = words[-1][:-1]
        timeline: list[tuple[float, int, dict[str, Any], str, Any]] = []
        if audio:
            rate = self.output_rate
            pcm = synthesize(text, rate) if text else b""
            resp.total_audio_bytes = len(pcm)
            step = max(2, rate * self.behaviour.chunk_ms // 1000 * 2)
            dur = len(pcm) / 2 / rate
            for off in range(0, len(pcm), step):
                chunk = pcm[off : off + step]
                ev = {
                    "type": "response.audio.delta",
                    **base,
                    "delta": base64.b64encode(chunk).decode("ascii"),
                }
                timeline.append((off / 2 / rate, 1, ev, "audio", len(chunk)))
            for j, w in enumerate(words):
                ev = {"type": "response.audio_transcript.delta", **base, "delta": w}
                timeline.append((dur * j / max(1, len(words)), 0, ev, "transcript", w))
            end = dur
        else:
            for j, w in enumerate(words):
                ev = {"type": "response.text.delta", **base, "delta": w}
                timeline.append((j * 0.05, 0, ev, "transcript", w))
            end = len(words) * 0.05
        timeline.sort(key=lambda x: (x[0], x[1]))
        for off_s, _, ev, kind, payload in timeline:
            self._emit(at(off_s), ev, response_id=rid, kind=kind, payload=payload)
        return end

    def _schedule_call(self, resp: _Response, call: ToolCall, due: float, index: int) -> None:
        item_id = new_id("item_")
        call_id = call.call_id or "call_" + secrets.token_hex(11)
        self._issued_calls[call_id] = call.name
        args = arguments_json(call.arguments)
        if self.behaviour.pad_function_arguments:
            args = " " + args
        rid = resp.id
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": call.name,
            "arguments": "",
        }
        self._emit(
            due,
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": index,
                "item": item,
            },
            response_id=rid,
        )
        self._emit(due, {"type": "conversation.item.created", "item": item}, response_id=rid)
        half = max(1, len(args) // 2)
        base = {"response_id": rid, "item_id": item_id, "output_index": index, "call_id": call_id}
        for piece in (args[:half], args[half:]):
            if piece:
                self._emit(
                    due,
                    {"type": "response.function_call_arguments.delta", **base, "delta": piece},
                    response_id=rid,
                )
        self._emit(
            due,
            {
                "type": "response.function_call_arguments.done",
                **base,
                "name": call.name,
                "arguments": args,
            },
            response_id=rid,
        )
        done_item = {**item, "status": "completed", "arguments": args}
        self._emit(
            due,
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": index,
                "item": done_item,
            },
            response_id=rid,
        )
        resp.output.append(done_item)

    def _response_obj(self, resp: _Response, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": resp.id,
            "object": "realtime.response",
            "conversation_id": self.conversation_id,
            "status": resp.status if resp.finished else "in_progress",
            "modalities": resp.modalities,
            "voice": resp.voice,
            "output_audio_format": self.config.get("output_audio_format", "pcm"),
            "output": resp.output if resp.finished else [],
        }
        if usage is not None:
            obj["usage"] = usage
        return obj

    def _usage(self, resp: _Response, text: str, audio_bytes: int) -> dict[str, Any]:
        out_text = _text_tokens(text) + sum(
            _text_tokens(o.get("arguments", "")) + 5
            for o in resp.output
            if o["type"] == "function_call"
        )
        out_audio = _audio_tokens(
            audio_bytes / 2 / self.output_rate, self.model.output_audio_tokens_per_s
        )
        inp = resp.input_usage
        in_details: dict[str, int] = {
            "text_tokens": inp.get("text_tokens", 0),
            "audio_tokens": inp.get("audio_tokens", 0),
        }
        if self.behaviour.image_tokens_in_details and inp.get("image_tokens"):
            in_details["image_tokens"] = inp["image_tokens"]
        in_total = sum(inp.values())
        out_details = {"text_tokens": out_text}
        if out_audio:
            out_details["audio_tokens"] = out_audio
        self._context["text_tokens"] += out_text
        self._context["audio_tokens"] += out_audio
        return {
            "total_tokens": in_total + out_text + out_audio,
            "input_tokens": in_total,
            "output_tokens": out_text + out_audio,
            "input_tokens_details": in_details,
            "output_tokens_details": out_details,
        }

    def _message_done_events(self, resp: _Response, due: float, text: str, status: str) -> None:
        if resp.message_item_id is None:
            return
        audio = "audio" in resp.modalities
        part_type = "audio" if audio else "text"
        base = {
            "response_id": resp.id,
            "item_id": resp.message_item_id,
            "output_index": 0,
            "content_index": 0,
        }
        rid = resp.id
        if audio:
            self._emit(
                due,
                {"type": "response.audio_transcript.done", **base, "transcript": text},
                response_id=rid,
            )
            self._emit(due, {"type": "response.audio.done", **base}, response_id=rid)
        else:
            self._emit(due, {"type": "response.text.done", **base, "text": text}, response_id=rid)
        self._emit(
            due,
            {
                "type": "response.content_part.done",
                **base,
                "part": {"type": part_type, "text": text},
            },
            response_id=rid,
        )
        done_item = {
            "id": resp.message_item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [{"type": part_type, "text": text}],
        }
        self._emit(
            due,
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": 0,
                "item": done_item,
            },
            response_id=rid,
        )
        key = "transcript" if audio else "text"
        resp.output.insert(0, {**done_item, "content": [{"type": part_type, key: text}]})

    def _finalize(self, resp: _Response, now: float) -> None:
        """Queue the closing events of a response that ran to its end."""
        status = resp.status if resp.status != "in_progress" else "completed"
        item_status = "completed" if status == "completed" else "incomplete"
        self._message_done_events(resp, now, resp.text, item_status)
        resp.status = status
        resp.finished = True
        usage = self._usage(resp, resp.text, resp.total_audio_bytes)
        self._emit(
            now,
            {"type": "response.done", "response": self._response_obj(resp, usage)},
            response_id=resp.id,
            kind="response_done",
        )

    def _cancel(self, now: float) -> None:
        resp = self._active
        if resp is None:
            return
        keep = [e for e in self._queue if e[2].out.response_id != resp.id]
        heapq.heapify(keep)
        self._queue = keep
        resp.status = self.behaviour.cancelled_status
        resp.finished = True
        self._message_done_events(resp, now, resp.sent_text, "incomplete")
        send_done = self.behaviour.cancel_sends_response_done
        if send_done is None:
            send_done = not self._qwen35
        usage = self._usage(resp, resp.sent_text, resp.sent_audio_bytes)
        if send_done:
            self._emit(
                now,
                {"type": "response.done", "response": self._response_obj(resp, usage)},
                response_id=resp.id,
            )
        self._active = None
        self._last_activity = now
        if self._history:
            self._history[-1] = (self._history[-1][0], resp.sent_text)

    @property
    def active_response_id(self) -> str | None:
        return self._active.id if self._active is not None else None


_HANDLERS: dict[str, Callable[[SimulatedSession, dict[str, Any], str | None, float], None]] = {
    "session.update": SimulatedSession._on_session_update,
    "input_audio_buffer.append": SimulatedSession._on_append,
    "input_audio_buffer.commit": SimulatedSession._on_commit,
    "input_audio_buffer.clear": SimulatedSession._on_clear,
    "input_image_buffer.append": SimulatedSession._on_image,
    "conversation.item.create": SimulatedSession._on_item_create,
    "response.create": SimulatedSession._on_response_create,
    "response.cancel": SimulatedSession._on_cancel,
    "session.finish": SimulatedSession._on_finish,
}
