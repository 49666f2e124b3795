"""The package's public surface: ``__all__`` is pinned, sorted, complete and importable."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import dashscope_rt
from dashscope_rt import AsyncSession, Session, errors, events

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
    "VoiceNotSupported",
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


# --- AsyncSession mirrors Session -------------------------------------------------------------

# Public names only one of the two classes has, each with its reason; anything else missing
# from AsyncSession is a gap this test reports.
ONLY_ASYNC = {
    "session": "the wrapped threaded Session; a Session is its own",
}
ONLY_SYNC: dict[str, str] = {}


def _public(cls: type[Any]) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_async_session_has_every_public_method_of_session() -> None:
    assert _public(AsyncSession) - _public(Session) == set(ONLY_ASYNC)
    assert _public(Session) - _public(AsyncSession) == set(ONLY_SYNC)


def test_the_blocking_calls_are_coroutines_and_the_rest_are_shared() -> None:
    """What waits is awaited on AsyncSession; everything else (the handler decorators, the send
    methods that only queue, the state) is the very same object, not a forwarder."""
    waits = {"connect", "close", "wait", "end", "update", "ask", "stream_audio"}
    for name in sorted(_public(Session) - set(ONLY_SYNC)):
        sync, other = getattr(Session, name), getattr(AsyncSession, name)
        if name in waits:
            assert inspect.iscoroutinefunction(other), name
        elif name == "events":
            assert inspect.isasyncgenfunction(other)
        else:
            assert other is sync, name


# --- layering -----------------------------------------------------------------------------------

# The protocol core (docs/architecture.md, below the line): no I/O, no threads.
CORE = {
    "errors", "limits", "_wire", "models", "_validators", "_turn_detection", "config",
    "_client_events", "_payloads", "_server_events", "_decode_audio", "_decode", "_sdk_events",
    "events", "reply", "_heard", "_notices", "_turns", "_transcript", "_requests", "_replies",
    "_interruptions", "_open_responses", "conversation", "history", "pricing", "_logformat",
}  # fmt: skip


def test_the_core_imports_only_the_core() -> None:
    package = Path(dashscope_rt.__file__).parent
    for name in sorted(CORE):
        tree = ast.parse((package / f"{name}.py").read_text("utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert not (module or "").startswith("dashscope_rt"), (name, module)
        assert imported <= CORE, (name, imported - CORE)
