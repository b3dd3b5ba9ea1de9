"""A multi-process HTTP load generator: closed loop (max throughput) or open loop (fixed rate).

Each worker process runs uvloop + aiohttp with keep-alive connections, renders pre-serialised
bodies (:mod:`bench.overhead.workload`) and, given several URLs, sends each request to the one
with the fewest requests in flight from that process (client-side least-outstanding). Open-loop
latency is measured from the *scheduled* send time, so a lagging generator shows up as latency
instead of hiding it (no coordinated omission), and the lag itself is reported. Each worker also
reports its own CPU time inside the measurement window, which gives the generator's ceiling.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvloop

from bench.overhead.workload import Bodies, Template

_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Job:
    """What every worker process does; ``rate`` > 0 means open loop at that total rate."""

    urls: tuple[str, ...]
    template: Template
    expect: bytes  # a reply without this substring counts as an error
    seed: int
    workers: int = 2
    concurrency: int = 128  # closed loop: total requests in flight
    rate: float = 0.0  # open loop: total requests per second
    warmup_s: float = 3.0
    duration_s: float = 10.0


@dataclass
class Outcome:
    """What one worker measured inside the window."""

    latencies: list[float] = field(default_factory=list)  # seconds, completed OK in window
    lags: list[float] = field(default_factory=list)  # open loop: actual minus scheduled send
    errors: int = 0
    error_sample: str = ""
    cpu_s: float = 0.0
    sent: int = 0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Worker:
    def __init__(self, job: Job, index: int, start: float) -> None:
        self.job, self.index = job, index
        self.bodies = Bodies(job.template, seed=job.seed)
        self.win0 = start + job.warmup_s
        self.win1 = self.win0 + job.duration_s
        self.in_flight = dict.fromkeys(job.urls, 0)
        self.out = Outcome()

    async def run(self) -> Outcome:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        async with aiohttp.ClientSession(connector=connector) as session:
            self.session = session
            meter = asyncio.create_task(self._meter())
            if self.job.rate > 0:
                await self._open_loop()
            else:
                await self._closed_loop()
            await meter
        return self.out

    async def _meter(self) -> None:
        await asyncio.sleep(max(0.0, self.win0 - time.monotonic()))
        c0 = _cpu()
        await asyncio.sleep(max(0.0, self.win1 - time.monotonic()))
        self.out.cpu_s = _cpu() - c0

    async def _send(self, i: int, t_ref: float) -> None:
        url = min(self.job.urls, key=self.in_flight.__getitem__)
        self.in_flight[url] += 1
        body = self.bodies.body(i)
        try:
            async with self.session.post(url, data=body, headers=_HEADERS) as r:
                reply = await r.read()
                ok = r.status == 200 and self.job.expect in reply
        except (aiohttp.ClientError, OSError) as exc:
            ok, reply = False, repr(exc).encode()
        finally:
            self.in_flight[url] -= 1
        t_end = time.monotonic()
        if not (self.win0 <= t_ref < self.win1):
            return
        if ok:
            self.out.latencies.append(t_end - t_ref)
        else:
            self.out.errors += 1
            self.out.error_sample = self.out.error_sample or reply[:300].decode("utf-8", "replace")

    async def _closed_loop(self) -> None:
        per_worker = max(1, self.job.concurrency // self.job.workers)
        counter = iter(range(self.index, 1 << 40, self.job.workers))

        async def lane() -> None:
            while (t := time.monotonic()) < self.win1:
                self.out.sent += 1
                await self._send(next(counter), t)

        await asyncio.gather(*(lane() for _ in range(per_worker)))

    async def _open_loop(self) -> None:
        interval = self.job.workers / self.job.rate
        t_next = self.win0 - self.job.warmup_s + self.index / self.job.rate
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while t_next < self.win1:
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.win0 <= t_next < self.win1:
                self.out.lags.append(time.monotonic() - t_next)
            task = asyncio.create_task(self._send(self.index + n * self.job.workers, t_next))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.out.sent += 1
            n += 1
            t_next += interval
        if tasks:
            await asyncio.wait(tasks, timeout=30)


def _worker_main(job: Job, index: int, start: float, queue: Any) -> None:
    queue.put((index, uvloop.run(_Worker(job, index, start).run())))


def run(job: Job, start: float) -> list[Outcome]:
    """Run ``job`` on ``job.workers`` processes; load starts at monotonic time ``start``."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker_main, args=(job, k, start, queue)) for k in range(job.workers)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return [results[k] for k in range(job.workers)]
