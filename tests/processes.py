"""Real processes on loopback for fault-injection tests: fake engines and the router itself.

Unlike the in-process helpers, these can be ``kill -9``-ed and sent SIGTERM, and the router runs
exactly as deployed (``python -m server`` under uvicorn), so the network and process lifecycle are
real. Every process started here is killed when its context exits.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the kernel's ephemeral range.

    The engines bind BASE+i some seconds after the launcher starts. Linux gives ``bind(0)`` odd
    ephemeral ports and ``connect()`` even ones, so BASE from a ``bind(0)`` is safe but BASE+1 is
    just what the next outgoing loopback connection gets: under load, one run in a dozen saw GPU 1
    fail with "address already in use" and restart, and the test then found its first pid dead.
    Below the ephemeral range, only an explicit bind takes a port.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(max(1024, low - 16384), low - count)
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


@dataclass
class Proc:
    """A child process, the URL it serves and the file its output goes to."""

    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill9(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def rss_kib(self, field: str = "VmRSS") -> int:
        """Resident memory (``VmRSS``) or its peak (``VmHWM``) in KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise LookupError(field)


def wait_until(url: str, deadline_s: float, procs: Sequence[subprocess.Popen[bytes]] = ()) -> None:
    """Poll ``url`` until it answers 200; fail at once if one of ``procs`` has exited."""
    t_end = time.monotonic() + deadline_s
    while time.monotonic() < t_end:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"process {p.args!r} exited with {p.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {deadline_s:.0f}s")


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM the process group of a ``start_new_session`` child; SIGKILL after ``grace_s``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_ready(url: str, path: str = "/health", timeout: float = 30.0, status: int = 200) -> None:
    """Poll ``url + path`` until it answers ``status``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + path, timeout=1.0)
            if r.status_code == status:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url}{path} did not answer {status} within {timeout}s (last: {last!r})")


def _spawn(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
    full_env.update(env)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            args, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, close_fds=True
        )


def start_engine(
    tmp: Path, port: int | None = None, latency: float = 0.0, request_log: Path | None = None
) -> Proc:
    """``python -m server.testing.fake_engine`` on loopback; returns once ``/health`` answers."""
    port = port or free_port()
    args = [sys.executable, "-m", "editjudge.server.testing.fake_engine", "--port", str(port)]
    args += ["--latency", str(latency)]
    if request_log is not None:
        args += ["--request-log", str(request_log)]
    log_path = tmp / f"engine-{port}.log"
    proc = Proc(_spawn(args, {}, log_path), f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(proc.url)
    except TimeoutError:
        proc.kill9()
        raise
    return proc


def start_router(
    tmp: Path, backends: list[str], env: Mapping[str, str] | None = None, ready: bool = True
) -> Proc:
    """``python -m server`` (uvicorn) on loopback; returns once /health (and /ready) pass."""
    port = free_port()
    full = {
        "EDITJUDGE_HOST": "127.0.0.1",
        "EDITJUDGE_PORT": str(port),
        "EDITJUDGE_BACKENDS": ",".join(backends),
        "EDITJUDGE_HEALTH_INTERVAL_S": "0.2",
        **(env or {}),
    }
    log_path = tmp / f"router-{port}.log"
    proc = Proc(_spawn([sys.executable, "-m", "editjudge.server"], full, log_path), "", log_path)
    proc.url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc.url)
        if ready:
            wait_ready(proc.url, "/ready")
    except TimeoutError:
        proc.kill9()
        raise TimeoutError(f"router did not start:\n{proc.log()}") from None
    return proc


class Procs:
    """A set of processes that all die when the test ends (a pytest fixture hands one out)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.all: list[Proc] = []

    def engine(self, **kw: object) -> Proc:
        p = start_engine(self.tmp, **kw)  # type: ignore[arg-type]
        self.all.append(p)
        return p

    def router(self, backends: list[str], **kw: object) -> Proc:
        p = start_router(self.tmp, backends, **kw)  # type: ignore[arg-type]
        self.all.append(p)
        return p

    def close(self) -> None:
        for p in self.all:
            p.kill9()
