"""soxr's native state is freed when a Session or Player closes (#13 item 10).

A closed object that something still holds at interpreter exit (a daemon thread, a global) used
to keep its soxr stream alive, and nanobind printed "leaked 1 instances! ... CSoxr" on stderr, as
the Tk sample did on close.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("websockets")

SCRIPT = textwrap.dedent(
    """
    import threading, time
    import numpy as np
    from dashscope_rt import Session
    from dashscope_rt.audio import Player
    from dashscope_rt.testing import Simulator

    class Out:
        def __init__(self, **kw): pass
        def start(self): pass
        def stop(self): pass
        def close(self): pass

    sim = Simulator().start()
    session = Session("qwen3-omni-flash-realtime", url=sim.url, api_key="sk-test")
    session.connect()
    session.append_audio(np.zeros(4800, dtype=np.float32), sample_rate=48000)  # a soxr stream
    player = Player(24000, output_rate=48000, stream_factory=lambda **kw: Out(**kw))
    player.write(b"\\0" * 4800)  # another one
    session.close(); player.close(); sim.stop()
    player.write(b"\\0" * 4800); player.flush(); player.clear()  # harmless after close
    def hold(objects):  # still referenced at exit, as a UI's daemon thread would keep them
        time.sleep(60)

    threading.Thread(target=hold, args=((session, player),), daemon=True).start()
    print("done")
    """
)


@pytest.mark.timeout(60)
def test_closed_session_and_player_leave_no_native_resampler_at_exit() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done"
    assert "leaked" not in r.stderr, r.stderr
