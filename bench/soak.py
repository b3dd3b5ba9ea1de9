"""Soak test: drive the deployed router (fake engines behind it) for N minutes, watch for drift.

Starts ``--engines`` fake engines and the router (``python -m server``) as separate processes on
loopback, then keeps ``--concurrency`` clients busy with a mix of single items and batches. Every
``--every`` seconds it prints one table row: requests and items per second, latency p50/p99/max,
errors, and the router's RSS and open file descriptors, so a leak or a latency drift shows as a
trend. ``--chaos S`` also ``kill -9``s one engine every S seconds and restarts it, soaking failover.

Not part of the test suite (it runs for minutes). Run it from the repository root, one at a time::

    flock /tmp/editjudge-heavy.lock .venv/bin/python -m bench.soak --minutes 5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from tests.helpers import b64
from tests.processes import Proc, start_engine, start_router


@dataclass
class Window:
    """What happened during one reporting interval."""

    latencies: list[float] = field(default_factory=list)
    items: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)


def _images(n: int, side: int) -> list[str]:
    out = []
    rng = random.Random(0)
    for _ in range(n):
        buf = io.BytesIO()
        Image.frombytes("RGB", (side, side), rng.randbytes(3 * side * side)).save(buf, "PNG")
        out.append(b64(buf.getvalue()))
    return out


def _body(rng: random.Random, images: list[str], batch: int) -> tuple[dict[str, object], int]:
    def one(i: int) -> dict[str, object]:
        return {
            "image": rng.choice(images),
            "source_image": images[0],
            "instruction": f"make object {i} blue",
        }

    if rng.random() < 0.5:
        return one(0), 1
    n = rng.randint(1, batch)
    return {"items": [one(i) for i in range(n)]}, n


async def _worker(
    client: httpx.AsyncClient, seed: int, images: list[str], batch: int, stop: float, state: dict
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop:
        body, n = _body(rng, images, batch)
        t0 = time.perf_counter()
        try:
            r = await client.post("/score", json=body)
            if r.status_code != 200:
                key = str(r.status_code)
            elif "items" in body:
                bad = sum(x["status"] != "ok" for x in r.json()["results"])
                key = "200" if not bad else "200+item_errors"
            else:
                key = "200" if r.json()["status"] == "ok" else "200+item_errors"
        except httpx.HTTPError as exc:
            key = type(exc).__name__
        window: Window = state["window"]
        window.latencies.append(time.perf_counter() - t0)
        window.items += n
        window.statuses[key] += 1


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


HEADER = (
    "| t (s) | req/s | items/s | p50 ms | p99 ms | max ms | non-200 / item errors "
    "| RSS MiB | fds |\n|---|---|---|---|---|---|---|---|---|"
)


def _row(t: float, w: Window, every: float, router: Proc) -> str:
    lat = [x * 1000 for x in w.latencies]
    errors = sum(v for k, v in w.statuses.items() if k != "200")
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(w.statuses.items()) if k != "200")
    return (
        f"| {t:5.0f} | {len(lat) / every:6.1f} | {w.items / every:7.1f} | {_pct(lat, 0.5):6.1f} "
        f"| {_pct(lat, 0.99):6.1f} | {max(lat, default=0):6.1f} | {errors}"
        f"{' (' + detail + ')' if detail else ''} | {router.rss_kib() / 1024:6.1f} "
        f"| {_fds(router.pid)} |"
    )


async def _chaos(engines: list[Proc], tmp: Path, latency: float, every: float, stop: float) -> None:
    """kill -9 one engine every ``every`` seconds and bring it back on the same port."""
    turn = 0
    while time.monotonic() + every < stop:
        await asyncio.sleep(every)
        i = turn % len(engines)
        port = int(engines[i].url.rsplit(":", 1)[1])
        engines[i].kill9()
        print(f"  chaos: kill -9 engine {i} ({engines[i].url})", file=sys.stderr)
        await asyncio.sleep(1.0)
        engines[i] = await asyncio.to_thread(start_engine, tmp, port=port, latency=latency)
        turn += 1


async def soak(args: argparse.Namespace, tmp: Path) -> None:
    engines = [start_engine(tmp, latency=args.latency) for _ in range(args.engines)]
    env = {"EDITJUDGE_LOG_LEVEL": "warning", "EDITJUDGE_HEALTH_INTERVAL_S": "1"}
    router = start_router(tmp, [e.url for e in engines], env=env)
    try:
        images = _images(8, args.image_side)
        start = time.monotonic()
        stop = start + args.minutes * 60
        state = {"window": Window()}
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=router.url, timeout=120, limits=limits) as client:
            tasks = [
                asyncio.create_task(_worker(client, i, images, args.batch, stop, state))
                for i in range(args.concurrency)
            ]
            if args.chaos:
                tasks.append(
                    asyncio.create_task(_chaos(engines, tmp, args.latency, args.chaos, stop))
                )
            print(
                f"soak: {args.minutes} min, {args.engines} fake engines ({args.latency * 1000:.0f}"
                f" ms/call), {args.concurrency} clients, batches up to {args.batch},"
                f" {args.image_side}px PNGs, chaos every {args.chaos or '-'} s\n"
            )
            print(HEADER)
            rows = []
            while time.monotonic() < stop:
                await asyncio.sleep(min(args.every, max(0.0, stop - time.monotonic())))
                window, state["window"] = state["window"], Window()
                rows.append(_row(time.monotonic() - start, window, args.every, router))
                print(rows[-1], flush=True)
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
        asyncio.run(soak(args, Path(tmp)))


if __name__ == "__main__":
    main()
