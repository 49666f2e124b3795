"""The package's public surface: ``__all__`` is pinned, sorted, complete and importable."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import dashscope_rt
from dashscope_rt import errors, events

# What a session's user needs, and nothing else: a change here is a deliberate API change.
PINNED = [
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
    "__version__",
    "get_model",
    "tool",
]


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and dunders."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_pinned() -> None:
    assert dashscope_rt.__all__ == PINNED


def test_all_is_sorted() -> None:
    assert dashscope_rt.__all__ == sorted(dashscope_rt.__all__, key=_isort_key)


def test_all_names_resolve() -> None:
    for name in dashscope_rt.__all__:
        assert hasattr(dashscope_rt, name), name


def test_all_is_complete() -> None:
    """Every public name bound in the package namespace is listed, and nothing else."""
    public = {
        name
        for name, value in vars(dashscope_rt).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # AsyncSession is bound on first use, so that `import dashscope_rt` does not import asyncio.
    public.add("AsyncSession")
    assert public == set(dashscope_rt.__all__) - {"__version__"}


def test_every_error_is_at_the_top_level_and_in_the_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RealtimeError), name
        assert getattr(dashscope_rt, name) is cls
        assert name in (errors.__doc__ or ""), f"{name} is not drawn in errors.py's tree"


def test_event_classes_live_in_events_only() -> None:
    classes = [n for n in events.__all__ if inspect.isclass(getattr(events, n))]
    assert "ResponseAudioDelta" in classes and "Closed" in classes
    assert not set(classes) & set(dashscope_rt.__all__)
    assert not hasattr(dashscope_rt, "ResponseAudioDelta")


def test_no_module_is_rewritten() -> None:
    """Classes report the module that defines them (no ``__module__`` rewriting at import)."""
    for name in dashscope_rt.__all__:
        value = getattr(dashscope_rt, name)
        module = getattr(value, "__module__", None)
        if module is None or not module.startswith("dashscope_rt"):
            continue
        source = inspect.getsourcefile(value) if inspect.isclass(value) else None
        if source is not None:
            expected = module.replace(".", "/")
            assert source.replace("\\", "/").endswith((expected + ".py", expected + "/__init__.py"))


def test_import_leaves_the_heavy_modules_until_used() -> None:
    """`import dashscope_rt` does not import numpy, soxr or asyncio (#17: import time)."""
    code = (
        "import sys, dashscope_rt\n"
        "print(sorted(m for m in ('numpy', 'soxr', 'asyncio') if m in sys.modules))\n"
        "dashscope_rt.AsyncSession\n"
        "print('asyncio' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"  # the lazy name still works, and brings asyncio with it
