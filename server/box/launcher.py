"""``editjudge serve``: one vLLM server per GPU plus the router, in one supervised process tree.

Each engine runs as ``vllm serve --model M --port BASE+i`` with ``CUDA_VISIBLE_DEVICES=i``, pinned
to its share of the CPU cores (:mod:`editjudge.server.box.placement`), its output prefixed with
``[GPU i]``. The router starts in this process as soon as the first engine is healthy and routes to
the others as they come up. An engine that dies is restarted with exponential backoff (1 s,
doubling up to ``--max-backoff``) while the router keeps routing to the rest. SIGTERM or Ctrl-C
drains the router's in-flight requests, then stops every engine (SIGTERM to its process group,
SIGKILL after ``--stop-timeout``), leaving no process behind.

Engines that cannot start fail loudly instead of leaving the launcher waiting: an engine command
that cannot be executed (vLLM not installed, a wrong ``--vllm-cmd``) ends the launcher at once
with exit status 1, and an engine that exits before its first healthy check
``--max-start-failures`` times in a row is given up with an error quoting its last output lines.
The other engines carry on; when none is left, the launcher stops with exit status 1. A crash
after an engine was healthy is no start failure: such an engine is restarted for as long as its
restarts get healthy.

Engine output never stops an engine: once our stdout is closed (``editjudge serve | tee log`` and
tee is gone), engine lines go to stderr, or nowhere, and the engines keep serving.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import httpx
import uvicorn

from ..app import check_protocols, create_app
from ..config import Settings
from ..protocols import TemplateError
from . import placement

log = logging.getLogger("editjudge.launcher")

DEFAULT_VLLM_CMD = "vllm serve"
INITIAL_BACKOFF_S = 1.0  # the first restart delay; each next one doubles, up to --max-backoff
STABLE_UPTIME_S = 300.0  # an engine that ran this long and crashes starts over at the first delay
HEALTH_POLL_S = 0.5
EXIT_POLL_S = 0.2
RECENT_LINES = 20  # an engine's last output lines, quoted when it is given up
LINE_LIMIT = 1 << 20  # longest engine output line kept whole (progress bars redraw with \r only)


@dataclass
class Engine:
    """One supervised vLLM server."""

    gpu: int
    port: int
    argv: list[str]
    env: dict[str, str]
    cpus: tuple[int, ...] = ()
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    starts: int = 0  # processes started so far
    healthy: bool = False  # its latest process has answered /health
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_LINES))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def parse_gpus(spec: str) -> list[int]:
    if spec == "all":
        gpus = sorted(placement.detect_gpus())
        if not gpus:
            raise SystemExit("editjudge serve: --gpus all, but nvidia-smi found no GPU")
        return gpus
    try:
        gpus = [int(g) for g in spec.split(",") if g.strip()]
    except ValueError:
        raise SystemExit(
            f"editjudge serve: --gpus must be 'all' or like 0,1,2 (got {spec!r})"
        ) from None
    if not gpus or len(set(gpus)) != len(gpus):
        raise SystemExit(f"editjudge serve: --gpus lists no GPU or one twice ({spec!r})")
    return gpus


def _planned_api_servers(option: str) -> int | None:
    """``--api-server-count``: auto = from the core share (None), 0 = omit the flag (vLLM: 1)."""
    return None if option == "auto" else max(1, int(option))


def build_engines(
    args: argparse.Namespace, gpus: list[int]
) -> tuple[list[Engine], tuple[int, ...]]:
    """Engine commands and environments, with the placement plan applied."""
    layout = placement.machine_plan(
        gpus,
        numa=args.pin,
        router_cpus=args.router_cpus,
        api_server_count=_planned_api_servers(args.api_server_count),
    )
    engines = []
    for i, spot in enumerate(layout.engines):
        port = args.engine_base_port + i
        argv = [
            *shlex.split(args.vllm_cmd),
            "--model",
            args.model,
            "--host",
            args.engine_host,
            "--port",
            str(port),
        ]
        if spot.api_server_count > 1 and args.api_server_count != "0":
            argv += ["--api-server-count", str(spot.api_server_count)]
        if "--enable-prompt-tokens-details" not in args.vllm_args:
            # Lets results report cached prompt tokens (prefix/encoder cache reuse).
            argv.append("--enable-prompt-tokens-details")
        argv += args.vllm_args
        env = (
            {**os.environ, **spot.env()}
            if args.pin
            else {**os.environ, "CUDA_VISIBLE_DEVICES": str(spot.gpu)}
        )
        engines.append(Engine(spot.gpu, port, argv, env, spot.cpus if args.pin else ()))
        if args.pin:
            log.info(
                "GPU %d: cores %s, %d API server(s), %d threads per process",
                spot.gpu,
                spot.cpuset(),
                spot.api_server_count,
                spot.threads_per_process,
            )
    return engines, layout.router_cpus if args.pin else ()


def mute(stream: IO[Any]) -> None:
    """Point a closed stream's descriptor at /dev/null, so that its writes and flushes (Python's
    own at exit included, which would otherwise turn our exit status into 120) succeed."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class EngineOutput:
    """Where engine lines go: our stdout, then stderr once stdout is closed, then nowhere.

    Python ignores SIGPIPE, so once the reader of our stdout is gone (``| tee log`` and tee was
    Ctrl-C'd) every write raises BrokenPipeError. That must cost the engines nothing: the lines
    move on to the next stream and the dead one is muted for whoever else writes to it.
    """

    def __init__(self, streams: Sequence[BinaryIO] | None = None) -> None:
        self._streams = list(streams or (sys.stdout.buffer, sys.stderr.buffer))

    def write(self, data: bytes) -> None:
        """Write ``data`` to the first stream that still takes it; never raises."""
        while self._streams:
            stream = self._streams[0]
            try:
                stream.write(data)
                stream.flush()
                return
            except BlockingIOError:  # a full non-blocking pipe: this line is lost, not the pipe
                return
            except (OSError, ValueError) as exc:
                self._streams.pop(0)
                mute(stream)
                log.warning(
                    "engine output: %s is closed (%s); %s",
                    getattr(stream, "name", "a stream"),
                    exc,
                    "continuing on stderr" if self._streams else "dropping it from now on",
                )


class QuietStreamHandler(logging.StreamHandler[IO[str]]):
    """A log handler that outlives its stream: a closed one is muted, its records dropped."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, BlockingIOError):  # a full non-blocking pipe: only this record is lost
            return
        if isinstance(exc, OSError):  # EPIPE, or EIO from a hung-up terminal: for good
            mute(self.stream)
            return
        super().handleError(record)  # a bad format string and the like: say so, as logging does


def settle_std_streams() -> None:
    """Flush stdout and stderr before exiting, muting a closed one (see :func:`mute`)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            mute(stream)


async def pump(engine: Engine, stream: asyncio.StreamReader, output: EngineOutput) -> None:
    """Copy an engine's output to ours, each line prefixed with its GPU, until the pipe closes.

    It never fails: an engine whose pipe nobody drains blocks on its next log line, and an ended
    pump must not be mistaken for an ended engine.
    """
    prefix = f"[GPU {engine.gpu}] ".encode()
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than LINE_LIMIT: readline dropped what it had buffered
            line = b"(an output line over %d bytes was cut)\n" % LINE_LIMIT
        if not line:
            return
        engine.recent.append(line.decode(errors="replace").rstrip())
        output.write(prefix + line)


class EngineCommandError(Exception):
    """The engine command cannot be executed at all: no engine can start, now or later."""


def cannot_start(vllm_cmd: str, program: str, exc: OSError) -> EngineCommandError:
    """The one line that names the command that cannot run, why, and what to do about it."""
    if isinstance(exc, FileNotFoundError):
        why = "not found"
    elif isinstance(exc, PermissionError):
        why = "not executable (permission denied)"
    else:
        why = exc.strerror or str(exc)
    fix = "install vLLM or pass --vllm-cmd" if vllm_cmd == DEFAULT_VLLM_CMD else "check --vllm-cmd"
    return EngineCommandError(
        f"editjudge serve: cannot start the engine command {vllm_cmd!r}: {program}: {why}; {fix}"
    )


def describe_exit(returncode: int | None) -> str:
    """``exited with 3`` or ``was killed by SIGKILL``."""
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with {returncode}"


@dataclass
class Supervision:
    """What the engines' supervisors share: their settings, the stop signals and the outcome."""

    engines: list[Engine]
    vllm_cmd: str
    max_backoff_s: float
    max_start_failures: int
    stop_timeout_s: float
    output: EngineOutput = field(default_factory=EngineOutput)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # no more restarts; drain
    halt: asyncio.Event = field(default_factory=asyncio.Event)  # the router is done: stop engines
    any_healthy: asyncio.Event = field(default_factory=asyncio.Event)
    given_up: dict[int, str] = field(default_factory=dict)  # GPU -> why
    fatal: str | None = None  # the line the launcher exits 1 with

    def fail(self, message: str) -> None:
        """Shut down as on Ctrl-C, then exit 1 with ``message`` (the first reason given wins)."""
        self.fatal = self.fatal or message
        self.stopping.set()

    def give_up(self, engine: Engine, why: str) -> None:
        """Stop restarting ``engine``; with no engine left running or starting, shut down."""
        self.given_up[engine.gpu] = why
        left = [e for e in self.engines if e.gpu not in self.given_up]
        if left:
            log.error(
                "GPU %d stays down until serve is restarted; carrying on with %d of %d engines: %s",
                engine.gpu,
                len(left),
                len(self.engines),
                ", ".join(f"GPU {e.gpu} ({'healthy' if e.healthy else 'starting'})" for e in left),
            )
            return
        by_why: dict[str, list[str]] = {}
        for e in self.engines:
            by_why.setdefault(self.given_up[e.gpu], []).append(str(e.gpu))
        causes = "; ".join(
            f"GPU{'s' if len(gpus) > 1 else ''} {', '.join(gpus)} {reason}"
            for reason, gpus in by_why.items()
        )
        self.fail(f"editjudge serve: no engine left to serve: {causes} (see the errors above)")

    def supervisor_done(self, engine: Engine, task: asyncio.Task[None]) -> None:
        """A supervisor ended: expected when stopping or giving up, loud in any other case."""
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, EngineCommandError):
            self.fail(str(exc))
        else:  # a bug, which must not leave the engine quietly unsupervised
            log.error("GPU %d: the engine's supervisor failed", engine.gpu, exc_info=exc)
            self.give_up(engine, f"lost its supervisor ({exc!r})")


async def start(engine: Engine) -> asyncio.subprocess.Process:
    """Start the engine's process, in a session of its own; OSError if it cannot be executed."""
    cpus = set(engine.cpus)

    def pin() -> None:  # runs in the child between fork and exec
        if cpus:
            # Some sandboxes (gVisor) refuse affinity; the engine then runs unpinned.
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)

    proc = await asyncio.create_subprocess_exec(
        *engine.argv,
        env=engine.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=LINE_LIMIT,
        start_new_session=True,
        preexec_fn=pin,
    )
    engine.proc = proc
    engine.starts += 1
    log.info("GPU %d: started engine (pid %d) on port %d", engine.gpu, proc.pid, engine.port)
    return proc


async def supervise(engine: Engine, sup: Supervision) -> None:
    """Run the engine until ``sup.stopping``, restarting it with exponential backoff.

    An engine that exits before its first healthy check ``max_start_failures`` times in a row is
    given up: a broken command, model or GPU does not mend by retrying. The count starts over
    whenever the engine is healthy, so one that crashes after serving is restarted as it always
    was, for as long as its restarts get healthy.
    """
    first_backoff = min(INITIAL_BACKOFF_S, sup.max_backoff_s)
    backoff, failures = first_backoff, 0
    while not sup.stopping.is_set():
        ended = await run_once(engine, sup)
        if sup.stopping.is_set():
            return
        uptime = time.monotonic() - engine.started_at
        failures = 0 if engine.healthy else failures + 1
        if failures >= sup.max_start_failures:
            times = f"{failures} times in a row" if failures > 1 else "at its only try"
            why = f"{ended} before its first healthy check, {times}"
            report_given_up(engine, why)
            sup.give_up(engine, why)
            return
        if uptime > STABLE_UPTIME_S:
            backoff = first_backoff  # it ran fine for a while: a new failure, not a crash loop
        log.warning(
            "GPU %d: engine %s after %.0fs%s; restarting in %gs",
            engine.gpu,
            ended,
            uptime,
            "" if engine.healthy else f", never healthy (try {failures}/{sup.max_start_failures})",
            backoff,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup.stopping.wait(), timeout=backoff)
        backoff = min(sup.max_backoff_s, backoff * 2)


def report_given_up(engine: Engine, why: str) -> None:
    """The ERROR for an engine that will not be restarted: why, and what it said last."""
    tail = "\n".join(f"    {line}" for line in engine.recent) or "    (no output)"
    log.error(
        "GPU %d: giving up on this engine: it %s (--max-start-failures). Its last output:\n%s",
        engine.gpu,
        why,
        tail,
    )


async def run_once(engine: Engine, sup: Supervision) -> str:
    """Start the engine and wait until it exits or ``sup.halt`` stops it; how it ended."""
    engine.healthy, engine.started_at = False, time.monotonic()
    engine.recent.clear()
    try:
        proc = await start(engine)
    except OSError as exc:
        if engine.starts == 0:  # the first start: no engine can start with this command
            raise cannot_start(sup.vllm_cmd, engine.argv[0], exc) from exc
        return f"could not be started ({exc.strerror or exc})"
    assert proc.stdout is not None
    probe = asyncio.create_task(watch_health(engine, sup))
    try:
        await wait_exited(engine, proc, proc.stdout, sup)
    finally:
        probe.cancel()
    return describe_exit(proc.returncode)


async def watch_health(engine: Engine, sup: Supervision) -> None:
    """Poll the engine's /health until it first answers 200: from then on, it has started."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{engine.url}/health")).status_code == 200:
                    break
            await asyncio.sleep(HEALTH_POLL_S)
    engine.healthy = True
    took = time.monotonic() - engine.started_at
    log.info("GPU %d: engine is healthy, %.0fs after its start", engine.gpu, took)
    sup.any_healthy.set()


async def wait_exited(
    engine: Engine,
    proc: asyncio.subprocess.Process,
    stdout: asyncio.StreamReader,
    sup: Supervision,
) -> None:
    """Wait for the engine's main process to exit (or stop it on ``sup.halt``), then end what it
    left behind.

    vLLM's API server starts an EngineCore (and workers) in its process group. If the API server
    dies alone (a crash, ``kill -9``), those children live on: they keep the GPU's memory and our
    output pipe open, so neither a restart nor a clean stop could happen. The group goes with it.
    """
    pumping = asyncio.create_task(pump(engine, stdout, sup.output))
    # Process.wait() also waits for the pipes to close, which orphans would delay forever; the
    # exit status is known as soon as the main process is reaped. A closed pipe alone is no exit.
    while proc.returncode is None and not sup.halt.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup.halt.wait(), timeout=EXIT_POLL_S)
    if proc.returncode is None:
        await stop_engine(engine, sup.stop_timeout_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _, reading = await asyncio.wait([pumping], timeout=5.0)
    for task in reading:  # something outside the group still holds the pipe: stop reading it
        task.cancel()
    await proc.wait()


async def stop_engine(engine: Engine, timeout_s: float) -> None:
    """SIGTERM the engine's process group; SIGKILL it after ``timeout_s``."""
    proc = engine.proc
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        log.warning("GPU %d: engine did not stop in %.0fs; killing it", engine.gpu, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Children that left the engine's process group are not ours to chase; vLLM keeps its own.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class _RouterServer(uvicorn.Server):
    """uvicorn without its own signal handling: the launcher decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def wait_any(*events: asyncio.Event) -> None:
    """Return as soon as one of ``events`` is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def bind_router(host: str, port: int) -> socket.socket:
    """The router's socket, bound before any engine starts: a port in use is then a clear error
    at once, not a crash once the engines have loaded (uvicorn exits the process on it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"editjudge serve: cannot listen on {host}:{port} for the router: {exc.strerror or exc}"
        ) from None
    return sock


def router_server(args: argparse.Namespace, sup: Supervision) -> _RouterServer:
    settings = Settings(backends=[e.url for e in sup.engines], host=args.host, port=args.port)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=args.drain_timeout,
        access_log=False,
        log_config=None,  # its records go through our handler, which survives a closed stderr
    )
    return _RouterServer(config)


async def run_router(server: uvicorn.Server, sock: socket.socket) -> None:
    """``server.serve()``, except that a failed startup, which uvicorn ends with ``sys.exit``,
    returns like any other end: the engines must still be stopped."""
    with contextlib.suppress(SystemExit):
        await server.serve(sockets=[sock])


async def serve_router(args: argparse.Namespace, sup: Supervision, sock: socket.socket) -> None:
    """Run the router from the first healthy engine until ``sup.stopping``, then drain it: its
    in-flight requests are answered (up to ``--drain-timeout``) while the engines still run."""
    await wait_any(sup.any_healthy, sup.stopping)
    if sup.stopping.is_set():
        return
    log.info("starting the router on http://%s:%d", args.host, args.port)
    server = router_server(args, sup)
    router = asyncio.create_task(run_router(server, sock))
    stopping = asyncio.create_task(sup.stopping.wait())
    await asyncio.wait([router, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not sup.stopping.is_set():
        sup.fail("editjudge serve: the router stopped on its own (see its errors above)")
    log.info("stopping: draining the router, then %d engines", len(sup.engines))
    server.should_exit = True
    await router


def pin_router(cpus: tuple[int, ...]) -> None:
    """Keep this process (the router) on its own cores, if the plan set some aside."""
    if cpus:
        try:
            os.sched_setaffinity(0, set(cpus))
        except OSError as exc:
            log.warning("cannot pin the router to its cores (%s); running unpinned", exc)


async def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (0), or until no engine can start or run (1)."""
    engines, router_cpus = build_engines(args, parse_gpus(args.gpus))
    sock = bind_router(args.host, args.port)
    pin_router(router_cpus)
    sup = Supervision(
        engines, args.vllm_cmd, args.max_backoff, args.max_start_failures, args.stop_timeout
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sup.stopping.set)
    supervisors = []
    for engine in engines:
        task = asyncio.create_task(supervise(engine, sup))
        task.add_done_callback(functools.partial(sup.supervisor_done, engine))
        supervisors.append(task)
    try:
        await serve_router(args, sup, sock)
    finally:
        sup.stopping.set()
        sup.halt.set()
        await asyncio.gather(*supervisors, return_exceptions=True)
        sock.close()
    if sup.fatal:
        say(sup.fatal)
        return 1
    return 0


def say(line: str) -> None:
    """A line for the user on stderr, even if nobody reads it any more."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


EPILOG = """\
When an engine cannot start, serve fails rather than waits: a missing or unexecutable engine
command ends it at once, and an engine that exits before its first healthy check
--max-start-failures times in a row is given up (its last output is logged); the others keep
serving, and with none left serve exits 1. Engines keep running if stdout is closed (a killed
`| tee`): their output then goes to stderr, or nowhere.

exit status: 0 after Ctrl-C or SIGTERM (in-flight requests are answered first); 1 when no engine
can start or run; 2 for a usage error or a broken protocol template.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``editjudge serve`` command line."""
    p = argparse.ArgumentParser(
        prog="editjudge serve",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--gpus", default="all", help="'all' or a list like 0,1,2 (default: all)")
    p.add_argument(
        "--model", required=True, help="model id or path served by every engine (required)"
    )
    p.add_argument("--host", default="0.0.0.0", help="router bind address (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="router port (default: %(default)s)")
    _add_engine_options(p)
    p.add_argument(
        "--router-cpus",
        type=int,
        default=None,
        help="cores kept for the router (default: an eighth of the machine, 1 to 4)",
    )
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin engines to cores or cap their thread pools (default: pinned)",
    )
    _add_supervision_options(p)
    p.add_argument(
        "vllm_args", nargs=argparse.REMAINDER, help="after '--': extra arguments for every engine"
    )
    return p


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine-base-port",
        type=int,
        default=8001,
        help="engine i listens on BASE+i (default: %(default)s)",
    )
    p.add_argument(
        "--engine-host", default="127.0.0.1", help="engine bind address (default: %(default)s)"
    )
    p.add_argument(
        "--vllm-cmd",
        default=DEFAULT_VLLM_CMD,
        help="how to start an engine, e.g. 'python -m vllm.entrypoints.openai.api_server' "
        "(default: '%(default)s')",
    )
    p.add_argument(
        "--api-server-count",
        default="auto",
        help="API server processes per engine: auto (from its cores), N, or 0 (leave it to "
        "vLLM) (default: %(default)s)",
    )


def _add_supervision_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-backoff",
        type=float,
        default=60.0,
        help=f"longest wait before restarting an engine, in seconds; the first wait is "
        f"{INITIAL_BACKOFF_S:g} s and each next one doubles (default: %(default)s)",
    )
    p.add_argument(
        "--max-start-failures",
        type=_positive_int,
        default=3,
        help="give up on an engine that exits this many times in a row before its first healthy "
        "check; serve exits 1 when no engine is left (default: %(default)s)",
    )
    p.add_argument(
        "--drain-timeout",
        type=int,
        default=30,
        help="on Ctrl-C or SIGTERM, how long the router waits for in-flight requests, in "
        "seconds, before the engines stop (default: %(default)s)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="how long an engine gets to stop after SIGTERM before SIGKILL, in seconds "
        "(default: %(default)s)",
    )


def check_engine_command(text: str) -> None:
    """Refuse an empty or unparsable ``--vllm-cmd`` before anything starts."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise SystemExit(f"editjudge serve: --vllm-cmd {text!r}: {exc}") from None
    if not argv:
        raise SystemExit("editjudge serve: --vllm-cmd is empty")


def main(argv: Sequence[str] | None = None) -> int:
    """``editjudge serve``: its exit status."""
    args = build_parser().parse_args(argv)
    if args.vllm_args[:1] == ["--"]:
        args.vllm_args = args.vllm_args[1:]
    check_engine_command(args.vllm_cmd)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[QuietStreamHandler(sys.stderr)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe otherwise
    try:  # before any engine starts: a broken template would only fail once they are up
        check_protocols(Settings())
    except (TemplateError, ValueError) as exc:
        say(f"editjudge serve: cannot start: {exc}")
        return 2
    try:
        return asyncio.run(run(args))
    finally:
        settle_std_streams()


if __name__ == "__main__":
    sys.exit(main())
