"""The benchmark's child processes: no inherited settings, and no engine outlives its serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.procs import Server, child_env, free_port, stop_serve


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_children_get_no_editjudge_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITJUDGE_REASONING", "false")
    env = child_env({"EDITJUDGE_PORT": "1"})
    assert "EDITJUDGE_REASONING" not in env and env["EDITJUDGE_PORT"] == "1"


def test_stop_serve_ends_engines_that_outlive_it(tmp_path: Path) -> None:
    # An engine in a session of its own, as the launcher starts them, and a "serve" that logs its
    # pid the way the launcher does, then dies without stopping it (as a SIGKILLed launcher would).
    engine = subprocess.Popen(["sleep", "300"], start_new_session=True)
    line = f"INFO editjudge.launcher: GPU 0: started engine (pid {engine.pid}) on port 8001"
    code = f"import time; print({line!r}, flush=True); time.sleep(300)"
    serve = Server("serve", [sys.executable, "-c", code], f"http://127.0.0.1:{free_port()}",
                   log=tmp_path / "serve.log")  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while "started engine" not in serve.tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_serve(serve, grace_s=5)
        assert engine.wait(10) == -9 and not alive(serve.proc.pid)
    finally:
        engine.kill()
        engine.wait()
