"""Settings for the simulator, including every decision taken on an UNCONFIRMED protocol item."""

from __future__ import annotations

import attrs

from .. import limits

__all__ = ["ECHOES", "ERROR_IDS", "FINISHES", "VOICE_CHECKS", "Behaviour"]

VOICE_CHECKS = ("response", "update")
ECHOES = ("partial", "full")
ERROR_IDS = ("empty", "absent", "present")
FINISHES = ("finished_open", "finished_close", "ignore", "refuse", "close")


@attrs.define(kw_only=True)
class Behaviour:
    """How the simulated service behaves. Defaults follow protocol.md; UNCONFIRMED items say so.

    Where captured traffic settles a point (docs/protocol.md §15), the default is what the
    service sent and the documented-only behaviour is the alternative; ``dashscope-rt probe``
    reports which value a live service matches.

    Change a copy with ``attrs.evolve`` or pass ``Simulator(behaviour=Behaviour(...))``. Limits and
    ranges are not set here but in :mod:`dashscope_rt.limits` (shared with the SDK); a setting here
    only chooses between behaviours, or makes the simulator accept what the SDK refuses.
    """

    # Pacing
    speed: float = 0.0
    """0 = send everything as fast as possible; 1.0 = real time; 4.0 = four times real time."""
    chunk_ms: int = 320
    """Duration of each ``response.audio.delta`` chunk (320 ms captured on qwen3.8)."""
    first_delta_latency_s: float = 0.0
    """Extra delay (wall seconds, not scaled by ``speed``) before the first delta of a reply."""

    # Timeouts (protocol.md §1, §9.3)
    idle_timeout_s: float | None = limits.IDLE_TIMEOUT_S
    """Close after this long without a response being generated (None = never)."""
    max_duration_s: float | None = limits.MAX_SESSION_DURATION_S
    """Hard cap per connection (120 min documented)."""
    idle_close_code: int = 1000
    """UNCONFIRMED: the close code after the idle error."""
    idle_error_code: str = "response_idle_timeout"
    """UNCONFIRMED (one test fixture uses this code)."""
    max_duration_close_code: int = 1000
    """UNCONFIRMED: the close code at the duration cap."""
    max_duration_error_code: str = "session_expired"
    """UNCONFIRMED."""

    # Handshake (protocol.md §1)
    check_model: bool = True
    """Unknown model name → error event then close (UNCONFIRMED: the real status is not known)."""
    unknown_model_close_code: int = 1008
    """UNCONFIRMED."""

    # session.update (protocol.md §3.1, §5)
    update_mode: str = "merge"
    """"merge": omitted fields keep their values; "replace": omitted fields reset (UNCONFIRMED)."""
    voice_check: str = attrs.field(default="response", validator=attrs.validators.in_(VOICE_CHECKS))
    """When a voice the model lacks is refused: ``"response"`` (captured: ``session.update``
    echoes any voice; the first response gets ``<400> InternalError.Algo.InvalidParameter:
    Voice 'X' is not supported.``) or ``"update"`` (the refusal answers ``session.update``)."""
    close_on_bad_voice: bool = True
    """Close after the voice refusal; False: stay open but answer nothing more (captured: the
    connection does not recover; whether it closes is UNCONFIRMED)."""
    bad_voice_close_code: int = 1000
    """UNCONFIRMED."""
    session_echo: str = attrs.field(default="partial", validator=attrs.validators.in_(ECHOES))
    """``"partial"`` (captured): ``session.created`` is a short object, ``session.updated`` a
    base set plus what the updates sent, without ``turn_detection`` after null. ``"full"``:
    every field, as the documentation's example."""
    reject_voice_change_after_audio: bool = True
    """``cannot_update_voice`` once audio was produced (obs via relay, UNCONFIRMED)."""
    ignore_fixed_sampling_params: bool = True
    """On models with fixed sampling parameters (turbo): ignore them (True) or error (False)."""
    accept_tools_without_support: bool = True
    """Models without function calling accept ``tools`` but never call them (obs on flash)."""

    # Audio and images (protocol.md §3.2, §7)
    max_append_bytes: int = limits.MAX_APPEND_BYTES
    """Limit per ``input_audio_buffer.append``, counted on the decoded audio (UNCONFIRMED which)."""
    image_max_bytes: int = limits.IMAGE_MAX_BASE64_BYTES
    """Image limit. UNCONFIRMED: docs say 500 KB raw or 256 KB Base64; the stricter is default."""
    image_limit_on_base64: bool = True
    """Apply ``image_max_bytes`` to the Base64 text (True) or to the decoded JPEG (False)."""
    clear_clears_images: bool = True
    """UNCONFIRMED: whether ``input_audio_buffer.clear`` also empties the image buffer."""
    commit_in_vad_error: bool | None = None
    """Manual commit while VAD is on: error ``Internal service error: null`` (obs on qwen3.5).
    None = error on qwen3.5 models, accepted on the others."""
    vad_min_speech_ms: int = 60
    """Consecutive voiced audio needed before ``speech_started``."""

    # Transcription (protocol.md §4.9, §4.10)
    transcription_deltas: bool | None = None
    """Send ``...input_audio_transcription.delta``. None = qwen3.5 (documented) and qwen3.8
    (captured); UNCONFIRMED elsewhere."""
    transcribe_manual_commits: bool = True
    """Transcribe manual commits too (a relay saw none on flash; UNCONFIRMED)."""

    # Responses (protocol.md §3.6, §3.7, §4.25)
    cancel_sends_response_done: bool = True
    """``response.done`` after a cancel/barge-in (captured on qwen3.8; a relay saw none on
    qwen3.5: False)."""
    audio_after_cancel: int = 1
    """Audio deltas still sent after a cancel, already in flight (captured: one on qwen3.8)."""
    cancelled_status: str = "cancelled"
    """``response.status`` of a cancelled response (captured on qwen3.8)."""
    pad_function_arguments: bool = False
    """Prefix ``arguments`` with a space (an older report; captured traffic has none)."""
    keep_client_item_id: bool = False
    """Keep the ``item.id`` a client chose (False, captured: the server makes its own)."""
    ack_item_create: bool = True
    """Answer ``conversation.item.create`` with ``conversation.item.created`` (UNCONFIRMED)."""
    check_call_id: bool = True
    """Reject a ``function_call_output`` whose ``call_id`` the model never issued."""
    text_input: bool | None = None
    """Accept ``message``/``input_text`` items. None = per model (qwen3.5 only; UNCONFIRMED)."""
    image_tokens_in_details: bool = True
    """Add ``image_tokens`` to ``usage.input_tokens_details`` (UNCONFIRMED)."""
    error_ids: str = attrs.field(default="empty", validator=attrs.validators.in_(ERROR_IDS))
    """Ids in ``error`` events: ``"empty"`` (measured: ``event_id``, ``code`` and ``param``
    empty, no ``error.event_id``), ``"absent"`` (no ``event_id`` at all, ``code`` empty) or
    ``"present"`` (documented: an ``event_id``, the codes, and the offending client event's id
    in ``error.event_id``)."""

    # Ending (protocol.md §2.3)
    finish: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(FINISHES))
    )
    """The answer to ``session.finish``: ``"finished_open"`` (``session.finished``, the socket
    stays open: TTS on the same endpoint), ``"finished_close"`` (then close), ``"ignore"`` (no
    answer: the official SDK's note on qwen3.8), ``"refuse"`` (an unknown-event error: a report
    on qwen3.5-flash), ``"close"`` (a close without ``session.finished``). None = from the
    model table: refuse where ``session_finish`` is False, ignore where
    ``session_finished_ack`` is False, else finished_open."""
