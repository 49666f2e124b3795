"""Where a session connects and with which key: arguments first, then the environment.

``$DASHSCOPE_RT_URL`` replaces the region's endpoint when no ``url`` is given (handy for pointing
an app at a local simulator). A URL on the loopback interface (127.0.0.0/8, ``localhost``, ``::1``)
needs no key: without one, no ``Authorization`` header is sent, which a simulator started with
``--any-key`` (or ``Simulator(api_key=None)``) accepts.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse

__all__ = ["KEY_ENV", "URL_ENV", "is_loopback", "resolve_endpoint"]

KEY_ENV = "DASHSCOPE_API_KEY"
URL_ENV = "DASHSCOPE_RT_URL"


def is_loopback(url: str | None) -> bool:
    """True for a ``ws://``/``wss://`` URL whose host is this machine."""
    if not url:
        return False
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_endpoint(api_key: str | None, url: str | None) -> tuple[str | None, str | None]:
    """``(key, url)``: each from its argument, else from ``$DASHSCOPE_API_KEY`` /
    ``$DASHSCOPE_RT_URL``; blank values count as missing. The key may be None (the caller
    decides whether the URL needs one: see :func:`is_loopback`)."""
    if url is None:
        url = os.environ.get(URL_ENV, "").strip() or None
    if api_key is None:
        api_key = os.environ.get(KEY_ENV)
    key = api_key.strip() if api_key and api_key.strip() else None
    return key, url
