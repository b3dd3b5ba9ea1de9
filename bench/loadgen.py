"""The one HTTP load generator of every benchmark: closed loop or open loop, one or more processes.

A run sends *requests*; a request is one or more bodies POSTed together to one URL (a VIEScore item
sent straight to an engine is its two chat completions), and carries one or more *items* (a
``/score`` batch or group carries several). What to send and how to read a reply come from a
:class:`Source` (:mod:`bench.workload`). Three loops:

* closed loop over ``tasks`` requests (the GPU runs): ``concurrency`` in flight until all are done;
* closed loop over a time window (``tasks=0``): as many as ``concurrency`` lanes can do after
  ``warmup_s``, for ``duration_s`` (max throughput);
* open loop (``rate`` > 0): requests at a fixed total rate; latency is measured from the
  *scheduled* send time, so a lagging generator shows up as latency instead of hiding it (no
  coordinated omission), and the lag itself is reported.

Each worker process runs aiohttp (on uvloop where installed) with keep-alive connections, sends
each request to the URL with the fewest of its own requests in flight (client-side
least-outstanding), and reports its CPU time inside the window, which gives the generator's
ceiling. Sources build their bodies in ``prepare``, in the worker, before the clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp

_HEADERS = {"content-type": "application/json"}
T = TypeVar("T")


@dataclass(frozen=True)
class Reply:
    """What one request came back with: (backend, status) per item, and counters to add up."""

    items: tuple[tuple[str, str], ...]  # status: "ok" or an error code
    counters: Mapping[str, int] = field(default_factory=dict)
    detail: str = ""  # for an error: a sample of what came back

    @property
    def ok(self) -> bool:
        return all(status == "ok" for _, status in self.items)


class Source(Protocol):
    """The workload side of a run."""

    def prepare(self, indices: range) -> None:
        """Build the bodies of requests ``indices`` (closed loop over ``tasks`` only)."""

    def task(self, i: int) -> Sequence[bytes]:
        """The bodies of request ``i``, sent together to one URL."""

    def read(self, url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
        """The items of request ``i`` from its bodies' (HTTP status, body) replies."""


@dataclass(frozen=True)
class Job:
    """What every worker process does."""

    urls: tuple[str, ...]  # endpoints (``.../score``, ``.../v1/chat/completions``)
    source: Source
    workers: int = 1  # 1: in this process
    concurrency: int = 64  # closed loop: requests in flight, over all workers
    tasks: int = 0  # closed loop over exactly this many requests; 0: over a time window
    rate: float = 0.0  # > 0: open loop at this many requests per second, over all workers
    warmup_s: float = 0.0
    duration_s: float = 10.0
    timeout_s: float = 1800.0
    cpus: tuple[int, ...] = ()  # pin the workers to these cores


@dataclass
class Outcome:
    """What one worker measured (requests sent inside the window, all of them with ``tasks``)."""

    latencies: list[float] = field(default_factory=list)  # s, requests whose items were all ok
    lags: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send
    statuses: Counter[str] = field(default_factory=Counter)  # per item
    backends: Counter[str] = field(default_factory=Counter)  # ok items per backend
    counters: Counter[str] = field(default_factory=Counter)
    local: list[bool] = field(default_factory=list)  # multi-item requests: one backend for all
    errors: int = 0  # requests with an item not ok
    error_sample: str = ""
    cpu_s: float = 0.0
    sent: int = 0
    first: float = math.inf  # monotonic time of the first send and the last reply
    last: float = 0.0

    def add(self, reply: Reply, latency: float) -> None:
        self.statuses.update(status for _, status in reply.items)
        self.backends.update(b for b, status in reply.items if status == "ok")
        self.counters.update(reply.counters)
        if len(reply.items) > 1:
            self.local.append(len({b for b, s in reply.items if s == "ok"}) == 1)
        if reply.ok:
            self.latencies.append(latency)
        else:
            self.errors += 1
            self.error_sample = self.error_sample or reply.detail or repr(reply.items[:1])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


OnReply = Callable[[float, float, Reply], None]  # (scheduled send, reply time, reply)


class Worker:
    """One worker's share of a job; ``on_reply`` sees every reply as it comes (the soak's rows)."""

    def __init__(self, job: Job, index: int, on_reply: OnReply | None = None) -> None:
        self.job, self.index, self.on_reply = job, index, on_reply
        self.in_flight = dict.fromkeys(job.urls, 0)
        self.out = Outcome()
        self.win0 = self.win1 = 0.0

    def indices(self) -> range:
        stop = self.job.tasks or 1 << 40
        return range(self.index, stop, self.job.workers)

    async def run(self, start: float) -> Outcome:
        """Send from monotonic time ``start`` until the job is done; what was measured."""
        job = self.job
        self.win0 = start + job.warmup_s
        self.win1 = math.inf if job.tasks else self.win0 + job.duration_s
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=job.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            loop = self._open_loop() if job.rate > 0 else self._closed_loop()
            if job.tasks:
                c0 = _cpu()
                await loop
                self.out.cpu_s = _cpu() - c0
            else:
                await asyncio.gather(loop, self._meter())
        return self.out

    async def _meter(self) -> None:
        await asyncio.sleep(max(0.0, self.win0 - time.monotonic()))
        c0 = _cpu()
        await asyncio.sleep(max(0.0, self.win1 - time.monotonic()))
        self.out.cpu_s = _cpu() - c0

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        async with self.session.post(url, data=body, headers=_HEADERS) as r:
            return r.status, await r.read()

    async def _send(self, i: int, t_ref: float) -> None:
        url = min(self.job.urls, key=self.in_flight.__getitem__)
        bodies = self.job.source.task(i)
        self.in_flight[url] += len(bodies)
        t_sent = time.monotonic()
        try:
            replies = await asyncio.gather(*(self._post(url, b) for b in bodies))
            reply = self.job.source.read(url, replies)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reply = Reply(((url, type(exc).__name__),), detail=repr(exc)[:300])
        finally:
            self.in_flight[url] -= len(bodies)
        t_end = time.monotonic()
        if self.on_reply is not None:
            self.on_reply(t_ref, t_end, reply)
        if self.win0 <= t_ref < self.win1:
            self.out.first, self.out.last = min(self.out.first, t_sent), max(self.out.last, t_end)
            self.out.add(reply, t_end - t_ref)

    async def _closed_loop(self) -> None:
        todo: Iterator[int] = iter(self.indices())
        lanes = max(1, self.job.concurrency // self.job.workers)

        async def lane() -> None:
            for i in todo:  # one shared iterator: each index goes to exactly one lane
                if (t := time.monotonic()) >= self.win1:
                    return
                self.out.sent += 1
                await self._send(i, t)

        await asyncio.gather(*(lane() for _ in range(lanes)))

    async def _open_loop(self) -> None:
        interval = self.job.workers / self.job.rate
        t_next = self.win0 - self.job.warmup_s + self.index / self.job.rate
        tasks: set[asyncio.Task[None]] = set()
        for i in self.indices():
            if t_next >= self.win1:
                break
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            if self.win0 <= t_next < self.win1:
                self.out.lags.append(time.monotonic() - t_next)
            task = asyncio.create_task(self._send(i, t_next))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.out.sent += 1
            t_next += interval
        if tasks:
            await asyncio.wait(tasks, timeout=30)


def run_loop(main: Awaitable[T]) -> T:
    """Run ``main`` on uvloop where it is installed (the GPU box may lack it), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def _worker_main(job: Job, k: int, ready: Any, go: Any, start: Any, results: Any) -> None:
    try:
        if job.cpus:
            with contextlib.suppress(OSError):  # some sandboxes refuse affinity
                os.sched_setaffinity(0, set(job.cpus))
        worker = Worker(job, k)
        if job.tasks:
            job.source.prepare(worker.indices())
        ready.put(k)
        go.wait()
        results.put((k, run_loop(worker.run(start.value))))
    except BaseException as exc:  # the parent waits for every worker: never leave it hanging
        ready.put(k)
        results.put((k, f"worker {k} failed: {exc!r}"))
        raise


def run(job: Job, on_start: Callable[[float], None] | None = None) -> list[Outcome]:
    """Run ``job``: in this process with one worker, else on ``job.workers`` forked processes that
    all start once every one of them has built its bodies. ``on_start`` learns the monotonic time
    the first requests go out (to measure something else over the same window)."""
    if job.workers == 1:
        worker = Worker(job, 0)
        if job.tasks:
            job.source.prepare(worker.indices())
        start = time.monotonic()
        if on_start is not None:
            on_start(start)
        return [run_loop(worker.run(start))]
    ctx = mp.get_context("fork")
    ready, results, go, when = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = [
        ctx.Process(target=_worker_main, args=(job, k, ready, go, when, results))
        for k in range(job.workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    when.value = time.monotonic() + 0.2  # every worker sends its first request at this time
    if on_start is not None:
        on_start(when.value)
    go.set()
    got = dict(results.get() for _ in procs)
    for p in procs:
        p.join()
    failed = [v for v in got.values() if isinstance(v, str)]
    if failed:
        raise RuntimeError("; ".join(failed))
    return [got[k] for k in range(job.workers)]
