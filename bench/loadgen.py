"""Closed-loop, multi-process load generator for the GPU benchmarks.

Two modes send the same engine work:

* ``direct URL [URL ...]``: every item's VIEScore bodies go straight to one engine, chosen by
  client-side least-outstanding (what a good client without editjudge would do);
* ``router URL``: every item is one ``POST /score`` to editjudge.

Bodies are built before the clock starts. Prints one JSON line: items/s, latency percentiles,
per-backend share and error counts.

usage: python -m bench.loadgen MODE N CONCURRENCY PROCS URL [URL ...] [--model M]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing as mp
import time
from typing import Any

import aiohttp
import orjson

from bench.workload import items

JSON = {"content-type": "application/json"}


async def _direct(
    session: aiohttp.ClientSession, urls: list[str], load: dict[str, int], bodies: list[bytes]
) -> tuple[str, str]:
    url = min(urls, key=lambda u: load[u])
    load[url] += len(bodies)
    try:

        async def call(body: bytes) -> int:
            async with session.post(f"{url}/v1/chat/completions", data=body, headers=JSON) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(call(b) for b in bodies))
    finally:
        load[url] -= len(bodies)
    bad = [s for s in statuses if s != 200]
    return url, f"http_{bad[0]}" if bad else "ok"


async def _routed(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[str, str]:
    async with session.post(f"{url}/score", data=body, headers=JSON) as r:
        raw = await r.read()
        if r.status != 200:
            return "?", f"http_{r.status}"
    res = orjson.loads(raw)
    status = "ok" if res["status"] == "ok" else res["error"]["code"]
    return str(res.get("backend")), status


def worker(k: int, args: argparse.Namespace, q: Any, ready: Any, start: Any) -> None:
    work = items(args.offset + k, args.offset + args.n, args.procs)
    if args.mode == "direct":
        payloads: list[Any] = [w.chat_bodies(args.model, args.reasoning) for w in work]
    else:
        payloads = [w.score_json(args.protocol) for w in work]
    conc = max(1, args.concurrency // args.procs)

    async def run() -> tuple[float, float, list[float], list[tuple[str, str]]]:
        load = {u: 0 for u in args.urls}
        lat: list[float] = []
        out: list[tuple[str, str]] = []
        sem = asyncio.Semaphore(conc)
        timeout = aiohttp.ClientTimeout(total=1800)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

            async def one(p: Any) -> None:
                async with sem:
                    t = time.perf_counter()
                    try:
                        if args.mode == "direct":
                            res = await _direct(session, args.urls, load, p)
                        else:
                            res = await _routed(session, args.urls[0], p)
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        res = ("?", type(exc).__name__)
                    lat.append(time.perf_counter() - t)
                    out.append(res)

            ready.put(k)
            start.wait()
            t0 = time.perf_counter()
            await asyncio.gather(*(one(p) for p in payloads))
            return t0, time.perf_counter(), lat, out

    q.put(asyncio.run(run()))


def run(args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    q, ready, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=worker, args=(k, args, q, ready, start)) for k in range(args.procs)]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has built its payloads and opened its session
        ready.get()
    start.set()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    t0, t1 = min(r[0] for r in results), max(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    outcomes = [o for r in results for o in r[3]]
    share = collections.Counter(b for b, _ in outcomes)
    errors = collections.Counter(s for _, s in outcomes if s != "ok")
    return {
        "mode": args.mode,
        "urls": len(args.urls),
        "n": args.n,
        "concurrency": args.concurrency,
        "procs": args.procs,
        "seconds": round(t1 - t0, 2),
        "items_per_s": round(args.n / (t1 - t0), 2),
        "p50_s": round(lat[len(lat) // 2], 3),
        "p99_s": round(lat[max(0, int(len(lat) * 0.99) - 1)], 3),
        "ok": sum(1 for _, s in outcomes if s == "ok"),
        "errors": dict(errors),
        "share": {k: round(v / len(outcomes), 3) for k, v in sorted(share.items())},
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["direct", "router"])
    p.add_argument("n", type=int)
    p.add_argument("concurrency", type=int)
    p.add_argument("procs", type=int)
    p.add_argument("urls", nargs="+")
    p.add_argument("--model", default="judge")
    p.add_argument("--protocol", default=None)
    p.add_argument("--reasoning", type=int, default=0, help="VIEScore reasoning chars (direct)")
    p.add_argument("--offset", type=int, default=0, help="first item index (fresh images)")
    return p.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(run(parse())))
