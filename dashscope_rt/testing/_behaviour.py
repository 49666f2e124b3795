"""Settings for the simulator, including every decision taken on an UNCONFIRMED protocol item."""

from __future__ import annotations

import attrs

from .. import limits

__all__ = ["Behaviour"]


@attrs.define(kw_only=True)
class Behaviour:
    """How the simulated service behaves. Defaults follow protocol.md; UNCONFIRMED items say so.

    Change a copy with ``attrs.evolve`` or pass ``Simulator(behaviour=Behaviour(...))``. Limits and
    ranges are not set here but in :mod:`dashscope_rt.limits` (shared with the SDK); a setting here
    only chooses between behaviours, or makes the simulator accept what the SDK refuses.
    """

    # Pacing
    speed: float = 0.0
    """0 = send everything as fast as possible; 1.0 = real time; 4.0 = four times real time."""
    chunk_ms: int = 100
    """Duration of each ``response.audio.delta`` chunk."""
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
    close_on_bad_voice: bool = True
    """``Voice 'x' is not supported.`` then close (obs)."""
    bad_voice_close_code: int = 1000
    """UNCONFIRMED."""
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
    """Send ``...input_audio_transcription.delta``. None = qwen3.5 only (UNCONFIRMED elsewhere)."""
    transcribe_manual_commits: bool = True
    """Transcribe manual commits too (a relay saw none on flash; UNCONFIRMED)."""

    # Responses (protocol.md §3.6, §3.7, §4.25)
    cancel_sends_response_done: bool | None = None
    """``response.done`` after a cancel/barge-in. None = not on qwen3.5 (obs), yes elsewhere."""
    cancelled_status: str = "cancelled"
    """UNCONFIRMED: ``response.status`` of a cancelled response (docs list no such value)."""
    pad_function_arguments: bool = True
    """Prefix ``arguments`` with a space, as the service does (obs)."""
    ack_item_create: bool = True
    """Answer ``conversation.item.create`` with ``conversation.item.created`` (UNCONFIRMED)."""
    check_call_id: bool = True
    """Reject a ``function_call_output`` whose ``call_id`` the model never issued."""
    text_input: bool | None = None
    """Accept ``message``/``input_text`` items. None = per model (qwen3.5 only; UNCONFIRMED)."""
    image_tokens_in_details: bool = True
    """Add ``image_tokens`` to ``usage.input_tokens_details`` (UNCONFIRMED)."""
    error_event_id: bool = True
    """Put the offending client ``event_id`` in ``error.event_id`` (documented for ASR only)."""

    # Ending (protocol.md §2.3)
    session_finish: bool | None = None
    """Accept ``session.finish``. None = the model table's value (True where unconfirmed)."""
    close_after_finished: bool = True
    """Close (1000) right after ``session.finished``."""
