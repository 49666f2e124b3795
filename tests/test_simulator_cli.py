"""The standalone ``dashscope-rt simulate`` command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import websocket

from dashscope_rt.cli import build_parser, main


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashscope_rt",
            "simulate",
            "--port",
            "0",
            "--fast",
            "--api-key",
            "sk-cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port = 0
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.match(r"port: (\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, proc.stderr.read() if proc.stderr else ""
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.timeout(60)
def test_simulate_serves_a_client_and_exits_cleanly(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = server
    url = f"ws://127.0.0.1:{port}/api-ws/v1/realtime?model=qwen3-omni-flash-realtime"
    ws = websocket.create_connection(url, header=["Authorization: Bearer sk-cli"], timeout=10)
    created = json.loads(ws.recv())
    assert created["type"] == "session.created"
    assert created["session"]["model"] == "qwen3-omni-flash-realtime"
    ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
    assert json.loads(ws.recv())["type"] == "session.updated"
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, header=["Authorization: Bearer nope"], timeout=10)
    assert info.value.status_code == 401
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped" in out


def test_parser_shape() -> None:
    args = build_parser().parse_args(["simulate", "--port", "0", "--realtime", "--no-model-check"])
    assert args.command == "simulate" and args.port == 0 and args.speed == 1.0
    assert args.model_check is False
    assert main([]) == 2
