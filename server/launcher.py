"""``editjudge serve``: one vLLM server per GPU plus the router, in one supervised process tree.

Each engine runs as ``vllm serve --model M --port BASE+i`` with ``CUDA_VISIBLE_DEVICES=i``, pinned
to its share of the CPU cores (:mod:`server.placement`), its output prefixed with ``[GPU i]``. The
router starts in this process as soon as the first engine is healthy and routes to the others as
they come up. An engine that dies is restarted with exponential backoff while the router keeps
routing to the rest. SIGTERM or Ctrl-C drains the router's in-flight requests, then stops every
engine (SIGTERM to its process group, SIGKILL after ``--stop-timeout``), leaving no process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import httpx
import uvicorn

from . import placement
from .app import check_protocols, create_app
from .config import Settings
from .protocols import TemplateError

log = logging.getLogger("editjudge.launcher")

LINE_LIMIT = 1 << 20  # longest engine output line kept whole (progress bars redraw with \r only)
EXIT_POLL_S = 0.2


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
        if isinstance(sys.exc_info()[1], OSError | ValueError):
            mute(self.stream)
            return
        super().handleError(record)


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
        output.write(prefix + line)


async def start(engine: Engine) -> asyncio.subprocess.Process:
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
    engine.proc, engine.started_at = proc, time.monotonic()
    log.info("GPU %d: started engine (pid %d) on port %d", engine.gpu, proc.pid, engine.port)
    return proc


async def supervise(
    engine: Engine, stopping: asyncio.Event, max_backoff_s: float, output: EngineOutput
) -> None:
    """Keep the engine running until ``stopping`` is set, restarting it with backoff."""
    backoff = 1.0
    while not stopping.is_set():
        proc = await start(engine)
        assert proc.stdout is not None
        await wait_exited(engine, proc, proc.stdout, output)
        if stopping.is_set():
            return
        uptime = time.monotonic() - engine.started_at
        if uptime > 300:
            backoff = 1.0  # it ran fine for a while: this is a new failure, not a crash loop
        log.warning(
            "GPU %d: engine exited with %s after %.0fs; restarting in %.0fs",
            engine.gpu,
            proc.returncode,
            uptime,
            backoff,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=backoff)
        backoff = min(max_backoff_s, backoff * 2)


async def wait_exited(
    engine: Engine,
    proc: asyncio.subprocess.Process,
    stdout: asyncio.StreamReader,
    output: EngineOutput,
) -> None:
    """Wait for the engine's main process to exit, then end what it left behind.

    vLLM's API server starts an EngineCore (and workers) in its process group. If the API server
    dies alone (a crash, ``kill -9``), those children live on: they keep the GPU's memory and our
    output pipe open, so neither a restart nor a clean stop could happen. The group goes with it.
    """
    pumping = asyncio.create_task(pump(engine, stdout, output))
    # Process.wait() also waits for the pipes to close, which orphans would delay forever; the
    # exit status is known as soon as the main process is reaped. A closed pipe alone is no exit.
    while proc.returncode is None:  # noqa: ASYNC110 (asyncio offers no exit-only event)
        await asyncio.sleep(EXIT_POLL_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _, reading = await asyncio.wait([pumping], timeout=5.0)
    for task in reading:  # something outside the group still holds the pipe: stop reading it
        task.cancel()
    await proc.wait()


async def stop_engine(engine: Engine, timeout_s: float) -> None:
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


async def wait_first_healthy(engines: Sequence[Engine], stopping: asyncio.Event) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as client:
        while not stopping.is_set():
            for e in engines:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{e.url}/health")).status_code == 200:
                        log.info("GPU %d is healthy: starting the router", e.gpu)
                        return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
    return False


class _RouterServer(uvicorn.Server):
    """uvicorn without its own signal handling: the launcher decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(args: argparse.Namespace) -> int:
    engines, router_cpus = build_engines(args, parse_gpus(args.gpus))
    if router_cpus:
        try:
            os.sched_setaffinity(0, set(router_cpus))
        except OSError as exc:
            log.warning("cannot pin the router to its cores (%s); running unpinned", exc)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    output = EngineOutput()
    supervisors = [
        asyncio.create_task(supervise(e, stopping, args.max_backoff, output)) for e in engines
    ]
    server: _RouterServer | None = None
    router_task: asyncio.Task[None] | None = None
    if await wait_first_healthy(engines, stopping):
        settings = Settings(backends=[e.url for e in engines], host=args.host, port=args.port)
        config = uvicorn.Config(
            create_app(settings),
            host=args.host,
            port=args.port,
            log_level="info",
            timeout_graceful_shutdown=args.drain_timeout,
            access_log=False,
            log_config=None,  # its records go through our handler, which survives a closed stderr
        )
        server = _RouterServer(config)
        router_task = asyncio.create_task(server.serve())
        await asyncio.wait(
            [router_task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED
        )
    log.info("stopping: draining the router, then %d engines", len(engines))
    stopping.set()
    if server is not None and router_task is not None:
        server.should_exit = True
        await router_task
    await asyncio.gather(*(stop_engine(e, args.stop_timeout) for e in engines))
    await asyncio.gather(*supervisors, return_exceptions=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="editjudge serve", description=__doc__.splitlines()[0])
    p.add_argument("--gpus", default="all", help="'all' or a list like 0,1,2 (default: all)")
    p.add_argument("--model", required=True, help="model id or path served by every engine")
    p.add_argument("--host", default="0.0.0.0", help="router bind address")
    p.add_argument("--port", type=int, default=8000, help="router port (default 8000)")
    p.add_argument("--engine-base-port", type=int, default=8001, help="engine i listens on BASE+i")
    p.add_argument("--engine-host", default="127.0.0.1", help="engine bind address")
    p.add_argument(
        "--vllm-cmd",
        default="vllm serve",
        help="how to start an engine (default 'vllm serve'; e.g. "
        "'python -m vllm.entrypoints.openai.api_server')",
    )
    p.add_argument(
        "--api-server-count",
        default="auto",
        help="API server processes per engine: auto (from its cores), N, or 0 (omit)",
    )
    p.add_argument("--router-cpus", type=int, default=None, help="cores kept for the router")
    p.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin engines to cores or cap their thread pools",
    )
    p.add_argument("--max-backoff", type=float, default=60.0, help="longest restart backoff (s)")
    p.add_argument("--drain-timeout", type=int, default=30, help="router drain on stop (s)")
    p.add_argument("--stop-timeout", type=float, default=30.0, help="engine stop grace (s)")
    p.add_argument(
        "vllm_args", nargs=argparse.REMAINDER, help="after '--': extra arguments for every engine"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.vllm_args[:1] == ["--"]:
        args.vllm_args = args.vllm_args[1:]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[QuietStreamHandler(sys.stderr)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per startup probe otherwise
    try:  # before any engine starts: a broken template would only fail once they are up
        check_protocols(Settings())
    except (TemplateError, ValueError) as exc:
        sys.stderr.write(f"editjudge serve: cannot start: {exc}\n")
        return 2
    try:
        return asyncio.run(run(args))
    finally:
        settle_std_streams()


if __name__ == "__main__":
    sys.exit(main())
