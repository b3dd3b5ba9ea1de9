"""Soak test: drive the deployed router (fake engines behind it) for N minutes, watch for drift.

Starts ``--engines`` fake engines and the router (``editjudge router``) as separate processes on
loopback, then keeps ``--concurrency`` requests in flight (:mod:`bench.loadgen`, in this process)
with a mix of single items and batches. Every ``--every`` seconds it prints one table row: requests
and items per second, latency p50/p99/max, item errors by code, and the router's RSS and open file
descriptors, so a leak or a latency drift shows as a trend. ``--chaos S`` also ``kill -9``s one
engine every S seconds and restarts it, soaking failover.

Not part of the test suite (it runs for minutes). Run it from the repository root, one at a time::

    flock /tmp/editjudge-heavy.lock .venv/bin/python -m bench.soak --minutes 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from PIL import Image

from bench import loadgen, report
from bench.loadgen import Reply
from bench.procs import Server, fake_engine, free_port
from bench.procs import router as start_router
from bench.workload import BodySource


@dataclass
class Window:
    """What happened during one reporting interval."""

    latencies: list[float] = field(default_factory=list)
    items: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, sent: float, done: float, reply: Reply) -> None:
        self.latencies.append(done - sent)
        self.items += len(reply.items)
        self.statuses.update(s for _, s in reply.items if s != "ok")


def _images(n: int, side: int) -> list[str]:
    out = []
    rng = random.Random(0)
    for _ in range(n):
        buf = io.BytesIO()
        Image.frombytes("RGB", (side, side), rng.randbytes(3 * side * side)).save(buf, "PNG")
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def bodies(images: list[str], batch: int, n: int = 512) -> list[bytes]:
    """A mix of single items and batches of 1..``batch`` (half each), cycled through."""
    rng = random.Random(1)

    def one(i: int) -> dict[str, object]:
        return {
            "image": rng.choice(images),
            "source_image": images[0],
            "instruction": f"make {i} blue",
        }

    out = []
    for _ in range(n):
        body = (
            one(0)
            if rng.random() < 0.5
            else {"items": [one(i) for i in range(rng.randint(1, batch))]}
        )
        out.append(orjson.dumps(body))
    return out


HEADER = (
    "| t (s) | req/s | items/s | p50 ms | p99 ms | max ms | non-200 / item errors "
    "| RSS MiB | fds |\n|---|---|---|---|---|---|---|---|---|"
)


def _row(t: float, w: Window, every: float, router: Server) -> str:
    lat = [x * 1000 for x in w.latencies]
    p50, p99 = report.pct(lat, 0.5), report.pct(lat, 0.99)
    errors = sum(w.statuses.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(w.statuses.items()))
    return (
        f"| {t:5.0f} | {len(lat) / every:6.1f} | {w.items / every:7.1f} "
        f"| {p50:6.1f} | {p99:6.1f} | {max(lat, default=0):6.1f} "
        f"| {errors}{' (' + detail + ')' if detail else ''} | {router.rss_kib() / 1024:6.1f} "
        f"| {router.fds()} |"
    )


async def _chaos(engines: list[Server], latency: float, every: float, stop: float) -> None:
    """kill -9 one engine every ``every`` seconds and bring it back on the same port."""
    turn = 0
    while time.monotonic() + every < stop:
        await asyncio.sleep(every)
        i = turn % len(engines)
        port = int(engines[i].url.rsplit(":", 1)[1])
        engines[i].kill9()
        print(f"  chaos: kill -9 engine {i} ({engines[i].url})", file=sys.stderr)
        await asyncio.sleep(1.0)
        engines[i] = fake_engine(port, latency, engines[i].log.parent)
        await asyncio.to_thread(engines[i].wait_ready)
        turn += 1


async def soak(args: argparse.Namespace, tmp: Path) -> None:
    engines = [fake_engine(free_port(), args.latency, tmp) for _ in range(args.engines)]
    env = {"EDITJUDGE_LOG_LEVEL": "warning", "EDITJUDGE_HEALTH_INTERVAL_S": "1"}
    router = start_router([e.url for e in engines], free_port(), env, tmp / "router.log")
    try:
        for e in engines:
            e.wait_ready()
        router.wait_ready("/ready")
        source = BodySource(bodies(_images(8, args.image_side), args.batch))
        job = loadgen.Job(
            (router.url + "/score",),
            source,
            concurrency=args.concurrency,
            duration_s=args.minutes * 60,
            timeout_s=120,
        )
        state = {"window": Window()}
        worker = loadgen.Worker(job, 0, lambda s, d, r: state["window"].add(s, d, r))
        start = time.monotonic()
        stop = start + args.minutes * 60
        tasks: list[asyncio.Task[object]] = [asyncio.create_task(worker.run(start))]
        if args.chaos:
            tasks.append(asyncio.create_task(_chaos(engines, args.latency, args.chaos, stop)))
        print(
            f"soak: {args.minutes} min, {args.engines} fake engines ({args.latency * 1000:.0f}"
            f" ms/call), {args.concurrency} clients, batches up to {args.batch},"
            f" {args.image_side}px PNGs, chaos every {args.chaos or '-'} s\n"
        )
        print(HEADER)
        while time.monotonic() < stop:
            await asyncio.sleep(min(args.every, max(0.0, stop - time.monotonic())))
            window, state["window"] = state["window"], Window()
            print(_row(time.monotonic() - start, window, args.every, router), flush=True)
        await asyncio.gather(*tasks)
    finally:
        router.kill9()
        for e in engines:
            e.kill9()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds per table row")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05, help="fake engine s per call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8, help="largest batch sent")
    parser.add_argument("--image-side", type=int, default=128)
    parser.add_argument("--chaos", type=float, default=0.0, help="kill -9 an engine every S s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="editjudge-soak-") as tmp:
        loadgen.run_loop(soak(args, Path(tmp)))


if __name__ == "__main__":
    main()
