"""Router memory against its in-flight budget: peak RSS under load and RSS once the load drained.

For each ``--budgets`` value (MiB of ``EDITJUDGE_MAX_QUEUED_IMAGE_BYTES``) a fresh router process
(``python -m editjudge.server``) starts in front of ``--engines`` fake engines answering in
``--latency`` seconds, all on loopback. ``--requests`` clients then each send one ``/score``
request carrying ``--image-kib`` of incompressible JPEG as the edited image (and as much again as
its source with ``--source``), all at once; a client refused with 429 waits the ``Retry-After`` it
was given and sends again, so the budget stays full until every client has been served. A sampler
polls ``GET /health`` every 50 ms meanwhile and keeps the slowest answer (event-loop stalls).

Printed per budget: the router's RSS before the load, its peak (``VmHWM``), its RSS 1 s and
``--after-s`` s after the last answer, and the goal of issue 18 (peak <= 150 MiB + budget,
+10 %; RSS <= 250 MiB after the load). ``--png-side 6000`` sends that large a solid PNG instead
(a small upload that decodes to ``side**2 * 4`` bytes), the decode-off-the-loop case.

Not part of the test suite (it runs for about a minute per budget and needs several GiB at the
larger budgets before the fix). Run it from the repository root, one at a time::

    flock /tmp/editjudge-heavy.lock .venv/bin/python -m bench.memory --budgets 256,1024,2048
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import os
import random
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
from PIL import Image

from bench.procs import Server, fake_engine, free_port, router

MiB = 1 << 20


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Run:
    """What one budget's load did."""

    budget_mib: int
    base_mib: float = 0.0
    peak_mib: float = 0.0
    after_1s_mib: float = 0.0
    after_mib: float = 0.0
    wall_s: float = 0.0
    health_max_ms: float = 0.0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def goal_mib(self) -> float:
        return 150 + self.budget_mib

    def row(self, after_s: float) -> str:
        ok_peak = self.peak_mib <= self.goal_mib * 1.1
        ok_after = self.after_mib <= 250
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"| {self.budget_mib} | {self.goal_mib:.0f} | {self.base_mib:.0f} "
            f"| {self.peak_mib:.0f} {'ok' if ok_peak else 'OVER'} | {self.after_1s_mib:.0f} "
            f"| {self.after_mib:.0f} {'ok' if ok_after else 'OVER'} | {self.wall_s:.1f} "
            f"| {self.health_max_ms:.0f} | {statuses} |"
        )


HEADER = (
    "| budget MiB | goal: peak <= MiB | RSS before | peak RSS | RSS 1 s after | RSS {after} s after"
    " | load s | slowest /health ms | answers |\n|---|---|---|---|---|---|---|---|---|"
)


def noise_jpeg(kib: int, seed: int) -> bytes:
    """An incompressible JPEG of about ``kib`` KiB."""
    rng = random.Random(seed)
    side = 64
    while True:
        buf = io.BytesIO()
        pixels = rng.randbytes(3 * side * side)
        Image.frombytes("RGB", (side, side), pixels).save(buf, "JPEG", quality=90)
        if len(buf.getvalue()) >= kib * 1024:
            return buf.getvalue()
        side = int(side * 1.15) + 1


def solid_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 30, 200)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def request_body(args: argparse.Namespace) -> bytes:
    if args.png_side:
        item: dict[str, object] = {"image": b64(solid_png(args.png_side))}
    else:
        item = {"image": b64(noise_jpeg(args.image_kib, 1))}
        if args.source:
            item["source_image"] = b64(noise_jpeg(args.image_kib, 2))
    item["instruction"] = "make the sky blue"
    return orjson.dumps(item)


async def client(session: aiohttp.ClientSession, url: str, body: bytes, run: Run) -> None:
    headers = {"content-type": "application/json"}
    while True:
        try:
            async with session.post(url + "/score", data=body, headers=headers) as r:
                await r.read()
                run.statuses[str(r.status)] += 1
                if r.status not in (429, 503):
                    return
                wait = float(r.headers.get("retry-after", "1"))
        except aiohttp.ClientError as exc:
            run.statuses[type(exc).__name__] += 1
            wait = 1.0
        await asyncio.sleep(wait * random.uniform(0.5, 1.0))


async def health_sampler(session: aiohttp.ClientSession, url: str, run: Run) -> None:
    while True:
        t0 = time.perf_counter()
        async with session.get(url + "/health") as r:
            await r.read()
        run.health_max_ms = max(run.health_max_ms, (time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.05)


async def load(router: Server, body: bytes, args: argparse.Namespace, run: Run) -> None:
    # Shorter than the router's keep-alive, so no request goes out on a connection as the
    # router closes it (a reset that would count as an error here, though no fault of the router).
    if args.fresh_connections:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
    else:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2.0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await client(session, router.url, body, Run(0))  # warm-up: model discovery, first paths
        await asyncio.sleep(1.0)
        run.base_mib = router.rss_kib() / 1024
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as probe:
            sampler = asyncio.create_task(health_sampler(probe, router.url, run))
            t0 = time.monotonic()
            await asyncio.gather(
                *(client(session, router.url, body, run) for _ in range(args.requests))
            )
            run.wall_s = time.monotonic() - t0
            sampler.cancel()
    run.peak_mib = router.rss_kib("VmHWM") / 1024
    await asyncio.sleep(1.0)
    run.after_1s_mib = router.rss_kib() / 1024
    await asyncio.sleep(max(0.0, args.after_s - 1.0))
    run.after_mib = router.rss_kib() / 1024


def measure(args: argparse.Namespace, tmp: Path, engines: list[Server], budget_mib: int) -> Run:
    env = {
        "EDITJUDGE_LOG_LEVEL": "warning",
        "EDITJUDGE_HEALTH_INTERVAL_S": "1",
        "EDITJUDGE_MAX_QUEUED_IMAGE_BYTES": str(budget_mib * MiB),
        **dict(pair.split("=", 1) for pair in args.env),
    }
    server = router([e.url for e in engines], free_port(), env, tmp / "router.log")
    run = Run(budget_mib)
    try:
        server.wait_ready("/ready", 60)
        asyncio.run(load(server, request_body(args), args, run))
    finally:
        server.stop(signal.SIGKILL)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="256,1024,2048", help="MiB, comma-separated")
    parser.add_argument("--requests", type=int, default=1000, help="concurrent clients")
    parser.add_argument("--image-kib", type=int, default=512, help="size of each JPEG")
    parser.add_argument("--source", action="store_true", help="send a source image too")
    parser.add_argument("--png-side", type=int, default=0, help="send a solid PNG this large")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--latency", type=float, default=2.0, help="fake engine s per call")
    parser.add_argument("--after-s", type=float, default=5.0)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the router")
    parser.add_argument(
        "--fresh-connections", action="store_true", help="one connection per request (no reuse)"
    )
    args = parser.parse_args()
    images = f"{args.png_side}px solid PNG" if args.png_side else f"{args.image_kib} KiB JPEG"
    if args.source and not args.png_side:
        images += " + same-size source"
    print(
        f"memory: {args.requests} concurrent clients, {images} each, {args.engines} fake engines"
        f" at {args.latency:g} s/call, router env {args.env or '-'}, pid {os.getpid()}\n"
    )
    print(HEADER.format(after=f"{args.after_s:g}"))
    with tempfile.TemporaryDirectory(prefix="editjudge-memory-") as tmp:
        engines = [fake_engine(free_port(), args.latency, Path(tmp)) for _ in range(args.engines)]
        try:
            for e in engines:
                e.wait_ready()
            for budget in (int(b) for b in args.budgets.split(",")):
                print(measure(args, Path(tmp), engines, budget).row(args.after_s), flush=True)
        finally:
            for e in engines:
                e.stop(signal.SIGKILL)


if __name__ == "__main__":
    main()
