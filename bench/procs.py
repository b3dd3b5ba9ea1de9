"""The processes a benchmark starts (engines, routers, ``editjudge serve``): start, wait until
they answer, measure their CPU time and memory, stop them and everything they started.

Every child runs in a session of its own (so a stop reaches its workers), writes its output to a
log file, and inherits no ``EDITJUDGE_*`` variable from the benchmark's environment: a router's
settings are exactly those the benchmark names, and the user-path runs name none.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from editjudge.server.box import launcher

ROOT = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without ``EDITJUDGE_*``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
    return {**env, **(extra or {})}


def pinned(cpus: Sequence[int]) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpus`` (None: leave it unpinned)."""
    if not cpus:
        return None
    chosen = set(cpus)

    def pin() -> None:
        with contextlib.suppress(OSError):  # some sandboxes refuse affinity
            os.sched_setaffinity(0, chosen)

    return pin


class Server:
    """One child process (and its descendants) serving ``url``; output in ``log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        url: str,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        log: Path | None = None,
        cpus: Sequence[int] = (),
    ) -> None:
        self.name, self.url, self.argv = name, url, list(argv)
        require_free(url)
        safe = re.sub(r"[^\w.-]", "_", name)
        self.log = log or Path(f"/tmp/editjudge-bench-{safe}.log")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.log.open("ab")
        # A log may hold an earlier run's output (the same --work on a machine kept warm between
        # device calls): this process's output starts here.
        self._log_start = self._fh.tell()
        self.proc = subprocess.Popen(
            self.argv,
            env=child_env(env),
            cwd=cwd or ROOT,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pinned(cpus),
        )

    def wait_ready(self, path: str = "/health", timeout: float = 60.0, url: str = "") -> float:
        """Poll ``(url or self.url) + path`` until it answers 200; seconds it took. Fails at once
        if the process exits, quoting the end of its log."""
        t0, target = time.monotonic(), (url or self.url) + path
        while time.monotonic() < t0 + timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; {self.log}:\n{self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(target, timeout=2.0).status_code == 200:
                    return time.monotonic() - t0
            time.sleep(0.2)
        raise TimeoutError(f"{target} not ready after {timeout:g}s; {self.log}:\n{self.tail()}")

    def output(self, since: int = 0) -> bytes:
        """What this process wrote to its log, from byte ``since`` of that on."""
        if not self.log.exists():
            return b""
        with self.log.open("rb") as f:
            f.seek(self._log_start + since)
            return f.read()

    def tail(self, chars: int = 3000) -> str:
        return self.output().decode(errors="replace")[-chars:]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the process and all its live descendants."""
        return sum(_proc_cpu(pid) for pid in _tree(self.proc.pid))

    def rss_kib(self, field: str = "VmRSS") -> int:
        """Resident memory of the main process (``VmRSS``) or its peak (``VmHWM``), in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> None:
        """Send ``sig`` to the process group; SIGKILL it after ``grace_s``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # what it left behind in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._fh.close()

    def kill9(self) -> None:
        self.stop(signal.SIGKILL, 10.0)


@contextlib.contextmanager
def running(servers: Sequence[Server]) -> Iterator[Sequence[Server]]:
    """Stop every one of ``servers`` when the block ends, however it ends."""
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def log(msg: str) -> None:
    """A progress line with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stop_serve(serve: Server, grace_s: float = 90) -> None:
    """Ctrl-C ``editjudge serve`` (it drains, then stops its engines); then make sure no engine
    outlived it, which would hold its GPU's memory through the next phase. Engines run in
    sessions of their own: their process groups are named by the pids the launcher logged."""
    serve.stop(signal.SIGINT, grace_s)
    for pid in re.findall(r"started engine \(pid (\d+)\)", serve.tail(1 << 40)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)


def fake_engine(port: int, latency: float, log_dir: Path | None = None) -> Server:
    """``editjudge fake-engine`` on loopback (fixed latency per completion)."""
    argv = [sys.executable, "-m", "editjudge.server.testing.fake_engine", "--port", str(port)]
    argv += ["--latency", str(latency)]
    logfile = log_dir / f"engine-{port}.log" if log_dir else None
    return Server(f"engine{port}", argv, f"http://127.0.0.1:{port}", log=logfile)


def router(backends: Sequence[str], port: int, env: dict[str, str], logfile: Path) -> Server:
    """``editjudge router`` on loopback in front of ``backends``: its defaults plus ``env``."""
    settings = {
        "EDITJUDGE_BACKENDS": ",".join(backends),
        "EDITJUDGE_HOST": "127.0.0.1",
        "EDITJUDGE_PORT": str(port),
        **env,
    }
    argv = [sys.executable, "-m", "editjudge", "router"]
    return Server(f"router{port}", argv, f"http://127.0.0.1:{port}", settings, log=logfile)


@contextlib.contextmanager
def serving_router(
    backends: Sequence[str], port: int, env: dict[str, str], logfile: Path, ready_s: float = 120
) -> Iterator[str]:
    """:func:`router`, ready; yields its URL and stops it (drained, then killed) when the block
    ends, however it ends."""
    server = router(backends, port, env, logfile)
    try:
        server.wait_ready("/ready", ready_s)
        yield server.url
    finally:
        server.stop(signal.SIGTERM, 60)


def serve_argv(
    gpus: str,
    model: Path,
    options: Mapping[str, str | None] | None = None,
    flags: Sequence[str] = (),
    engine_args: Sequence[str] = (),
) -> list[str]:
    """``editjudge serve --gpus GPUS --model MODEL`` as a user types it: each of ``options``
    (``--port``, ``--vllm-cmd``, ...) only where it differs from serve's own default, then
    ``flags``, then ``-- engine_args``."""
    defaults = launcher.build_parser()
    cmd = [sys.executable, "-m", "editjudge", "serve", "--gpus", gpus, "--model", str(model)]
    for option, value in (options or {}).items():
        default = defaults.get_default(option.removeprefix("--").replace("-", "_"))
        if value is not None and value != str(default):
            cmd += [option, value]
    return [*cmd, *flags, "--", *engine_args]


# What the launcher logs when it stops restarting one engine and serves with the others
# (server/box/supervisor.py): that engine will not become healthy, so a run need not wait for it.
GIVEN_UP = "stays down until serve is restarted"


def wait_all_healthy(serve: Server, timeout_s: float) -> list[str]:
    """Wait until the router is ready and reports every engine healthy; the engines' URLs. Fails
    at once if serve exits or gives an engine up: device time is too scarce to wait it out."""
    deadline = time.monotonic() + timeout_s
    serve.wait_ready("/ready", timeout_s)
    marker, scanned = GIVEN_UP.encode(), 0
    while time.monotonic() < deadline:
        if serve.proc.poll() is not None:
            raise RuntimeError(
                f"editjudge serve exited with {serve.proc.returncode}: {serve.tail()}"
            )
        # only what serve wrote since the last look (and a marker's length before, for a line
        # that was half written then)
        since = max(0, scanned - len(marker))
        new = serve.output(since)
        if marker in new:
            raise RuntimeError(f"editjudge serve gave an engine up: {serve.tail()}")
        scanned = since + len(new)
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            cap = httpx.get(f"{serve.url}/info", timeout=5).json()["capacity"]
            if cap["backends"] and cap["healthy_backends"] == cap["backends"]:
                backends = httpx.get(f"{serve.url}/backends", timeout=5).json()
                return sorted(b["url"] for b in backends)
        time.sleep(1)
    raise TimeoutError(f"not every engine healthy after {timeout_s:g}s:\n{serve.tail()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_free(url: str) -> None:
    """Refuse to start on a port something else serves (we would measure that instead)."""
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.socket() as sock:
        if sock.connect_ex((host, int(port))) == 0:
            raise RuntimeError(f"{url} is already in use; pick another port")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def load_average() -> float:
    return os.getloadavg()[0]
