"""``editjudge serve`` on the CPU with a fake ``vllm`` executable: start, crash, restart, stop."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import VLLM_SHORT_OF_MEMORY, item
from tests.processes import free_ports, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAKE = f"{sys.executable} {ROOT / 'tests/fakes/fake_vllm.py'}"


def pids_in(text: str, gpu: int) -> list[int]:
    return [int(m) for m in re.findall(rf"\[GPU {gpu}\] fake vllm pid=(\d+)", text)]


def children_in(text: str, gpu: int) -> list[int]:
    return [int(m) for m in re.findall(rf"\[GPU {gpu}\] fake vllm pid=\d+ child=(\d+)", text)]


def pids_for(log: Path, gpu: int) -> list[int]:
    return pids_in(log.read_text(errors="replace"), gpu)


def children_for(log: Path, gpu: int) -> list[int]:
    return children_in(log.read_text(errors="replace"), gpu)


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


def launcher_cmd(port: int, base: int, *options: str) -> list[str]:
    """``editjudge serve`` on two fake GPUs, with quick restarts and stops."""
    return [
        sys.executable,
        "-m",
        "editjudge.server.box.launcher",
        "--gpus",
        "0,1",
        "--model",
        "fake-judge",
        "--host",
        "127.0.0.1",
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
        *options,
        "--",
        "--max-model-len",
        "2048",
    ]


@contextlib.contextmanager
def running(
    tmp_path: Path,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
    pipe: str = "",
    ready: bool = True,
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """A launcher whose output goes to ``launcher.log``; yields (process, router URL, log).

    With ``pipe="stdout"`` its stdout (``"both"``: and its stderr) is a pipe the test reads.
    """
    port = free_ports(3)  # the router's, then the two engines'
    base = port + 1
    log = tmp_path / "launcher.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            launcher_cmd(port, base, *options),
            stdout=subprocess.PIPE if pipe else out,
            stderr=out if pipe == "stdout" else subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "EDITJUDGE_HEALTH_INTERVAL_S": "0.2", **(env or {})},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if ready:
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
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def launcher(tmp_path: Path):  # type: ignore[no-untyped-def]
    with running(tmp_path) as started:
        yield started


def test_serves_scores_with_prefixed_logs(launcher) -> None:  # type: ignore[no-untyped-def]
    _proc, url, log = launcher
    r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(6)]}, timeout=30)
    assert r.status_code == 200 and all(x["status"] == "ok" for x in r.json()["results"])
    # The router starts with the first healthy engine: the other may still be starting.
    wait_for(lambda: pids_for(log, 0) and pids_for(log, 1), what="both engines started")
    text = log.read_text()
    line = re.search(r"\[GPU 0\] fake vllm pid=\d+ child=\d+ port=\d+ cuda=0 extra=(.*)", text)
    assert line and (
        "'--enable-prompt-tokens-details', '--disable-access-log-for-endpoints', "
        "'/health,/metrics', '--max-model-len', '2048'" in line.group(1)
    )
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


def read_until(fd: int, pattern: str, count: int, timeout: float = 30.0) -> str:
    """What was written to the pipe ``fd`` until ``pattern`` has matched ``count`` times."""
    text, end = "", time.monotonic() + timeout
    while len(re.findall(pattern, text)) < count:
        assert time.monotonic() < end, f"{pattern!r} not seen {count} times:\n{text}"
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 1 << 16)
            assert chunk, f"the launcher closed its stdout:\n{text}"
            text += chunk.decode(errors="replace")
    return text


def in_flight(url: str) -> int:
    return sum(b["in_flight"] for b in httpx.get(f"{url}/backends").json())


def score_across_sigint(
    proc: subprocess.Popen[bytes], url: str, at_sigint: Callable[[], object] = lambda: None
) -> tuple[httpx.Response, float]:
    """Send a batch, SIGINT the launcher while it is with the engines; the answer and the time
    from the signal to the launcher's exit, which must be 0."""
    items = {"items": [item(i) for i in range(3)]}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{url}/score", json=items, timeout=30)
        wait_for(lambda: in_flight(url) > 0, timeout=10, what="batch in flight")
        t_sigint = time.monotonic()
        at_sigint()
        os.kill(proc.pid, signal.SIGINT)
        r = pending.result(30)
    assert proc.wait(30) == 0
    return r, time.monotonic() - t_sigint


def test_sigint_drains_in_flight_requests_before_stopping_engines(tmp_path: Path) -> None:
    with running(tmp_path, env={"FAKE_VLLM_LATENCY": "1.5"}) as (proc, url, log):
        wait_for(lambda: pids_for(log, 0) and pids_for(log, 1), what="both engines started")
        engine_pids = pids_for(log, 0) + pids_for(log, 1)
        r, took = score_across_sigint(proc, url)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["ok"] * 3
    print(f"SIGINT with a 1.5 s batch in flight: 200 ok, launcher exited 0 {took:.1f}s later")
    wait_for(lambda: not any(alive(p) for p in engine_pids), timeout=10, what="engines stopped")


@pytest.mark.parametrize("closed", ["stdout", "both"])
def test_engines_survive_a_closed_stdout(tmp_path: Path, closed: str) -> None:
    """``editjudge serve | tee log`` (or ``2>&1 |``), and tee goes: the engines' next lines, and
    with ``both`` the launcher's own log lines, find a closed pipe."""
    env = {"FAKE_VLLM_REQUEST_LOG": "-", "FAKE_VLLM_LATENCY": "1"}  # a line per request
    with running(tmp_path, env=env, pipe=closed) as (proc, url, log):
        assert proc.stdout is not None
        out = read_until(proc.stdout.fileno(), r"\[GPU \d\] fake vllm pid=\d+ child=\d+", 2)
        engines = [*pids_in(out, 0), *pids_in(out, 1), *children_in(out, 0), *children_in(out, 1)]
        proc.stdout.close()

        for _ in range(2):  # the engines log each request, to a closed pipe
            r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(4)]}, timeout=30)
            assert all(x["status"] == "ok" for x in r.json()["results"]), r.text
        if closed == "stdout":
            # the engines' lines go on, on stderr
            text = log.read_text()
            assert "<stdout> is closed" in text
            assert re.search(r"\[GPU \d\] \{.*\"done\"", text.split("<stdout> is closed")[1])
            assert "fake vllm pid=" not in text  # no restart
        assert all(alive(p) for p in engines), out

        r, took = score_across_sigint(proc, url)
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["ok"] * 3
        print(f"closed {closed}, SIGINT: batch answered 200 ok, exit 0 {took:.1f}s later")
    wait_for(lambda: not any(alive(p) for p in engines), timeout=10, what="engines stopped")
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("problem", ["missing", "not executable"])
def test_an_engine_command_that_cannot_run_fails_at_once(tmp_path: Path, problem: str) -> None:
    if problem == "missing":
        program, why = "no-such-vllm", "not found"
    else:
        program, why = str(tmp_path / "vllm"), "not executable (permission denied)"
        Path(program).write_text("#!/bin/sh\n")  # mode 644
    port = free_ports(3)
    cmd = launcher_cmd(port, port + 1, "--vllm-cmd", f"{program} serve")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"editjudge serve: cannot start the engine command '{program} serve': {program}: {why}; "
        "check --vllm-cmd"
    )
    assert "started engine" not in proc.stderr and "Traceback" not in proc.stderr
    assert took < 15, f"took {took:.1f}s"
    print(f"{problem} engine program: exit 1 after {took:.1f}s")


def test_a_router_port_in_use_fails_before_any_engine_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = launcher_cmd(port, free_ports(2))
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"editjudge serve: cannot listen on 127.0.0.1:{port} for the router: Address already in use"
    )
    assert "started engine" not in proc.stderr and "fake vllm" not in proc.stdout


def test_an_engine_that_keeps_exiting_before_healthy_is_given_up(tmp_path: Path) -> None:
    port = free_ports(3)
    cmd = launcher_cmd(port, port + 1)  # --max-start-failures: the default, 3
    env = {**os.environ, "FAKE_VLLM_EXIT": "3"}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 1, err
    assert len(pids_in(out, 0)) == len(pids_in(out, 1)) == 3
    engines = [p for gpu in (0, 1) for p in pids_in(out, gpu) + children_in(out, gpu)]
    wait_for(lambda: not any(alive(p) for p in engines), timeout=10, what="nothing left running")
    for gpu in (0, 1):
        # the error names the GPU and the exit status, and quotes the engine's last lines
        assert re.search(
            rf"ERROR .*GPU {gpu}: giving up on this engine: it exited with 3 before its first "
            r"healthy check, 3 times in a row .*Its last output:\n"
            rf"    fake vllm pid={pids_in(out, gpu)[-1]} .*\n"
            r"    fake vllm: cannot load the model, exiting with 3\n",
            err,
        ), err
    assert err.splitlines()[-1] == (
        "editjudge serve: no engine left to serve: GPUs 0, 1 exited with 3 before its first "
        "healthy check, 3 times in a row (see the errors above)"
    )
    assert "Traceback" not in err and "What to do" not in err  # no advice for an unknown cause
    assert took < 30, f"took {took:.1f}s"
    print(f"3 early exits on each of 2 GPUs: exit 1 after {took:.1f}s")


def test_an_engine_short_of_gpu_memory_is_told_how_to_ask_for_less() -> None:
    """The launcher asks vLLM for 0.95 of each card; on a card something else uses, vLLM refuses
    to start, and the operator is told which `--` argument fixes it."""
    port = free_ports(3)
    vllm_says = VLLM_SHORT_OF_MEMORY
    env = {**os.environ, "FAKE_VLLM_EXIT": "1", "FAKE_VLLM_EXIT_LINE": vllm_says}
    cmd = launcher_cmd(port, port + 1, "--max-start-failures", "1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    for gpu in (0, 1):
        assert re.search(
            rf"GPU {gpu}: giving up on this engine: .*\n(?:    .*\n)*?"
            rf"    {re.escape(vllm_says)}, exiting with 1\n"
            r"What to do: the GPU has less free memory than the engine asks for: editjudge serve "
            r"asks for --gpu-memory-utilization 0\.95 of each card .*; where something else uses "
            r"the GPU, pass `-- --gpu-memory-utilization 0\.9` \(or less\)\n",
            proc.stderr,
        ), proc.stderr


def test_the_other_engines_carry_on_when_one_is_given_up(tmp_path: Path) -> None:
    env = {"FAKE_VLLM_EXIT": "3", "FAKE_VLLM_EXIT_GPUS": "1"}
    with running(tmp_path, env=env, options=("--max-start-failures", "1")) as (proc, url, log):
        wait_for(lambda: "GPU 1 stays down" in log.read_text(), 30, "GPU 1 given up")
        text = log.read_text()
        assert "GPU 1: giving up on this engine: it exited with 3" in text
        assert re.search(r"carrying on with 1 of 2 engines: GPU 0 \((healthy|starting)\)", text)
        r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(3)]}, timeout=30)
        assert all(x["status"] == "ok" for x in r.json()["results"]), r.text

        # A crash after it was healthy is no failed start: GPU 0 is restarted, even with N = 1.
        os.kill(pids_for(log, 0)[0], signal.SIGKILL)
        wait_for(lambda: len(pids_for(log, 0)) == 2, what="GPU 0 restarted")
        wait_for(lambda: httpx.get(f"{url}/ready").status_code == 200, what="GPU 0 back")
        r = httpx.post(f"{url}/score", json={"items": [item(i) for i in range(3)]}, timeout=30)
        assert all(x["status"] == "ok" for x in r.json()["results"]), r.text
        assert proc.poll() is None and len(pids_for(log, 1)) == 1
    assert proc.returncode == 0


def test_ctrl_c_reaching_tee_and_serve_together_still_drains(tmp_path: Path) -> None:
    """The reported case: ``editjudge serve | tee log``, Ctrl-C with a batch in flight. tee is gone
    at once, so the engines' next lines (here every 0.1 s) find a closed pipe during the drain."""
    env = {"FAKE_VLLM_TICK_S": "0.1", "FAKE_VLLM_LATENCY": "1.5"}
    with running(tmp_path, env=env, pipe="stdout") as (proc, url, log):
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), r"\[GPU \d\] fake vllm pid=\d+ child=\d+", 2)
        r, took = score_across_sigint(proc, url, at_sigint=proc.stdout.close)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["ok"] * 3
    assert "<stdout> is closed" in log.read_text()
    print(f"stdout closed at SIGINT: batch answered 200 ok, exit 0 {took:.1f}s later")
