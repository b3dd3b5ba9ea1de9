"""Engine supervision for ``editjudge serve``: start each engine, watch it, restart it, stop it.

An engine that dies is restarted with exponential backoff (1 s, doubling up to ``--max-backoff``).
An engine command that cannot be executed at all ends the launcher at once; an engine that exits
before its first healthy check ``--max-start-failures`` times in a row is given up with an error
quoting its last output lines, and when no engine is left the launcher stops with exit status 1.
A crash after an engine was healthy is no start failure: such an engine is restarted for as long
as its restarts get healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field

import httpx

from .engines import DEFAULT_VLLM_CMD, Engine
from .output import LINE_LIMIT, EngineOutput, pump

log = logging.getLogger("editjudge.launcher")

INITIAL_BACKOFF_S = 1.0  # the first restart delay; each next one doubles, up to --max-backoff
STABLE_UPTIME_S = 300.0  # an engine that ran this long and crashes starts over at the first delay
HEALTH_POLL_S = 0.5
EXIT_POLL_S = 0.2


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
        # asyncio.timeout rather than wait_for here and below: on Python 3.11 wait_for can
        # return as a cancellation arrives and lose it, and then a stop would not stop this loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(backoff):
                await sup.stopping.wait()
        backoff = min(sup.max_backoff_s, backoff * 2)


def report_given_up(engine: Engine, why: str) -> None:
    """The ERROR for an engine that will not be restarted: why, and what it said last."""
    tail = "\n".join(f"    {line}" for line in engine.recent) or "    (no output)"
    advice = f"\nWhat to do: {engine.advice}" if engine.advice else ""
    log.error(
        "GPU %d: giving up on this engine: it %s (--max-start-failures). Its last output:\n%s%s",
        engine.gpu,
        why,
        tail,
        advice,
    )


async def run_once(engine: Engine, sup: Supervision) -> str:
    """Start the engine and wait until it exits or ``sup.halt`` stops it; how it ended."""
    engine.healthy, engine.started_at = False, time.monotonic()
    engine.recent.clear()
    engine.advice = None
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
            async with asyncio.timeout(EXIT_POLL_S):
                await sup.halt.wait()
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
        async with asyncio.timeout(timeout_s):
            await proc.wait()
    except TimeoutError:
        log.warning("GPU %d: engine did not stop in %.0fs; killing it", engine.gpu, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Children that left the engine's process group are not ours to chase; vLLM keeps its own.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
