"""``editjudge serve`` on the CPU with a fake ``vllm`` executable: start, crash, restart, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import item
from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE = f"{sys.executable} {ROOT / 'tests/fakes/fake_vllm.py'}"


def pids_for(log: Path, gpu: int) -> list[int]:
    text = log.read_text(errors="replace")
    return [int(m) for m in re.findall(rf"\[GPU {gpu}\] fake vllm pid=(\d+)", text)]


def children_for(log: Path, gpu: int) -> list[int]:
    text = log.read_text(errors="replace")
    return [int(m) for m in re.findall(rf"\[GPU {gpu}\] fake vllm pid=\d+ child=(\d+)", text)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    # Generous: under a loaded CI machine a fake engine's Python start alone can take seconds.
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(httpx.HTTPError):
            if cond():
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} not met in {timeout:.0f}s")


@pytest.fixture
def launcher(tmp_path: Path):  # type: ignore[no-untyped-def]
    port, base = free_port(), free_port()
    log = tmp_path / "launcher.log"
    cmd = [
        sys.executable,
        "-m",
        "server.launcher",
        "--gpus",
        "0,1",
        "--model",
        "fake-judge",
        "--port",
        str(port),
        "--engine-base-port",
        str(base),
        "--vllm-cmd",
        FAKE,
        "--max-backoff",
        "1",
        "--stop-timeout",
        "5",
        "--",
        "--max-model-len",
        "2048",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "EDITJUDGE_HEALTH_INTERVAL_S": "0.2"},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{url}/ready", 30, [proc])
        yield proc, url, log
    finally:
        # Stop it as a user does, so its engines (own sessions) go too; kill only as a fallback.
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_serves_scores_with_prefixed_logs(launcher) -> None:  # type: ignore[no-untyped-def]
    _proc, url, log = launcher
    r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(6)]}, timeout=30)
    assert r.status_code == 200 and all(x["status"] == "ok" for x in r.json()["results"])
    # The router starts with the first healthy engine: the other may still be starting.
    wait_for(lambda: pids_for(log, 0) and pids_for(log, 1), what="both engines started")
    text = log.read_text()
    line = re.search(r"\[GPU 0\] fake vllm pid=\d+ child=\d+ port=\d+ cuda=0 extra=(.*)", text)
    assert line and "'--enable-prompt-tokens-details', '--max-model-len', '2048'" in line.group(1)
    assert re.search(r"\[GPU 1\] fake vllm pid=\d+ child=\d+ port=\d+ cuda=1", text)
    # the placement plan is logged, and the startup probes are not
    assert re.search(r"GPU 0: cores [\d,-]+, \d+ API server\(s\), \d+ threads per process", text)
    assert "HTTP Request: GET" not in text


def test_crashed_engine_restarts_and_router_keeps_serving(launcher) -> None:  # type: ignore[no-untyped-def]
    _proc, url, log = launcher
    wait_for(lambda: len(pids_for(log, 0)) == 1 and len(pids_for(log, 1)) == 1)
    # The router must have seen GPU 1 healthy before GPU 0 dies, or nothing can serve.
    wait_for(lambda: httpx.get(f"{url}/ready").json()["healthy_backends"] == 2, what="both up")
    first = pids_for(log, 0)[0]
    os.kill(first, signal.SIGKILL)
    # while GPU 0 is down, items still get scored on GPU 1
    r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(4)]}, timeout=30)
    assert all(x["status"] == "ok" for x in r.json()["results"])
    wait_for(lambda: len(pids_for(log, 0)) == 2, what="GPU 0 restarted")
    second = pids_for(log, 0)[1]
    assert second != first and alive(second)
    # what the killed engine left behind (its EngineCore, here a `sleep`) went with it
    wait_for(lambda: not alive(children_for(log, 0)[0]), what="orphaned child ended")
    wait_for(
        lambda: all(b["healthy"] for b in httpx.get(f"{url}/backends").json()),
        what="GPU 0 healthy again",
    )
    assert "restarting in" in log.read_text()


def test_sigint_stops_everything(launcher) -> None:  # type: ignore[no-untyped-def]
    proc, url, log = launcher
    wait_for(lambda: pids_for(log, 0) and pids_for(log, 1))
    engine_pids = pids_for(log, 0) + pids_for(log, 1) + children_for(log, 0) + children_for(log, 1)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(20) == 0
    wait_for(lambda: not any(alive(p) for p in engine_pids), timeout=10)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=1)
