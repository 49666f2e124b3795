"""Fixtures shared by the whole suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


def _threads_now() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if it leaves a thread running (polls up to 5 s for threads to finish)."""
    before = _threads_now()
    yield
    deadline = time.monotonic() + 5.0
    leaked = _threads_now() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.02)
        leaked = _threads_now() - before
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"
