"""dashscope_rt: a synchronous, threaded SDK for DashScope Qwen-Omni-Realtime.

Start with :class:`Session` (:class:`AsyncSession` for asyncio); configure it with
:class:`SessionConfig`. The top level holds what
a session's user needs; the event classes are in :mod:`dashscope_rt.events`, audio helpers in
:mod:`dashscope_rt.audio`, the offline simulator of the service in :mod:`dashscope_rt.testing`.
"""

import typing as _typing

from ._link import ReconnectPolicy
from ._version import __version__
from .config import SemanticVAD, ServerVAD, SessionConfig
from .conversation import BudgetExceeded
from .errors import (
    AudioDeviceError,
    AuthenticationError,
    BlockingCallInHandler,
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    ConnectTimeout,
    FrameTooLarge,
    HandshakeError,
    InvalidInput,
    InvalidType,
    MissingExtra,
    NameResolutionError,
    NoSpeechHeard,
    ProtocolError,
    ProxyAuthenticationError,
    ProxyError,
    QuotaExceeded,
    RateLimited,
    RealtimeError,
    ReceiveBacklogFull,
    SendBacklogFull,
    ServerError,
    SessionClosed,
    Timeout,
    TLSError,
    ToolArgumentsError,
    TooManyRequests,
    TransportError,
    UnknownName,
    UnsupportedByModel,
    UsageError,
    VoiceNotSupported,
)
from .models import ModelInfo, get_model
from .pricing import Price, PriceTable
from .reply import HistoryEntry, Reply, ToolCall, TurnMetrics
from .session import Session
from .tools import Tool, tool

if _typing.TYPE_CHECKING:
    from .async_session import AsyncSession


def __getattr__(name: str) -> _typing.Any:
    # asyncio is imported when AsyncSession is first asked for, not by `import dashscope_rt`.
    if name == "AsyncSession":
        from .async_session import AsyncSession

        globals()["AsyncSession"] = AsyncSession
        return AsyncSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncSession",
    "AudioDeviceError",
    "AuthenticationError",
    "BlockingCallInHandler",
    "BudgetExceeded",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionRefused",
    "FrameTooLarge",
    "HandshakeError",
    "HistoryEntry",
    "InvalidInput",
    "InvalidType",
    "MissingExtra",
    "ModelInfo",
    "NameResolutionError",
    "NoSpeechHeard",
    "Price",
    "PriceTable",
    "ProtocolError",
    "ProxyAuthenticationError",
    "ProxyError",
    "QuotaExceeded",
    "RateLimited",
    "RealtimeError",
    "ReceiveBacklogFull",
    "ReconnectPolicy",
    "Reply",
    "SemanticVAD",
    "SendBacklogFull",
    "ServerError",
    "ServerVAD",
    "Session",
    "SessionClosed",
    "SessionConfig",
    "TLSError",
    "Timeout",
    "TooManyRequests",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "TransportError",
    "TurnMetrics",
    "UnknownName",
    "UnsupportedByModel",
    "UsageError",
    "VoiceNotSupported",
    "__version__",
    "get_model",
    "tool",
]
