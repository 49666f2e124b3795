"""The redactor that masks the key in everything received, and the proxy choice rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashscope_rt._dial import pick_proxy
from dashscope_rt._redact import Redactor

KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789", min_size=8, max_size=40)


AROUND = st.text(alphabet=' .,:;!?{}"=\n\u00e9', max_size=50)  # nothing a key is made of


@given(key=KEYS, before=AROUND, after=AROUND)
def test_no_part_of_the_key_survives(key: str, before: str, after: str) -> None:
    r = Redactor.from_headers({"Authorization": f"Bearer sk-{key}", "User-Agent": "x"})
    for value in (f"{before}sk-{key}{after}", f"{before}{key}{after}"):
        assert key not in r.text(value) and "***" in r.text(value)
        assert key.encode() not in r.data(value.encode())
        assert r.text(value).startswith(before) and r.text(value).endswith(after)


@given(text=st.text(max_size=200))
def test_text_without_the_key_is_unchanged(text: str) -> None:
    r = Redactor(["Bearer sk-NOT-IN-ANY-GENERATED-TEXT-\u2603\u2603"])
    assert r.text(text) == text and r.data(text.encode()) == text.encode()


def test_short_values_are_not_secrets() -> None:
    r = Redactor(["abc", "Bearer sk-12"])
    assert not r and r.text("abc sk-12") == "abc sk-12"


def test_pick_proxy_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    wss, ws = "wss://dashscope.aliyuncs.com/x", "ws://127.0.0.1:9/x"
    assert pick_proxy(wss, None) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://p:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://q:3128")
    assert pick_proxy(wss, None) == "http://p:3128"
    assert pick_proxy("ws://example.com/x", None) == "http://q:3128"
    assert pick_proxy(ws, None) is None and pick_proxy(ws, "http://r:1") is None
    assert pick_proxy("ws://localhost:9/", None) is None
    assert pick_proxy("ws://[::1]:9/", "http://r:1") is None
    assert pick_proxy(wss, False) is None and pick_proxy(wss, "http://r:1") == "http://r:1"
    monkeypatch.setenv("NO_PROXY", "aliyuncs.com")
    assert pick_proxy(wss, None) is None
