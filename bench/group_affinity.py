#!/usr/bin/env python3
"""GRPO-like groups through editjudge: /score/group vs /score, affinity vs least-outstanding.

Workload (the shape of ../shared/gpu/load.py): groups of K candidate edits (default 8) that share a
512x512 JPEG source image and an instruction; every candidate is a unique 512x512 JPEG. Each request
carries one group, either as ``POST /score/group`` or as a ``POST /score`` batch of K items, with a
fixed number of requests in flight (closed loop). Four setups run in one invocation:

    route in {group, batch}  x  routing policy in {least_outstanding, affinity}

Every setup uses its own images, so no setup profits from another's cache. For each setup the
script reports throughput (items/s), request latency, the engines' prefix-cache hit ratio
(vLLM's own prefix_cache_hits / prefix_cache_queries counters, in tokens, priming requests
included), the cached prompt tokens the router reported, and group locality (the share of groups
whose K candidates were all scored on one engine). It prints a table with the card name
(nvidia-smi), the commit and vLLM's version, and writes everything as JSON to ``--out``.

Engines are started beforehand, one per GPU, for example (dummy Qwen2.5-VL-7B, see
../shared/gpu/README.md)::

    CUDA_VISIBLE_DEVICES=0 VLLM_USE_FLASHINFER_SAMPLER=0 \\
      python3 -m vllm.entrypoints.openai.api_server \\
      --model /tmp/qwen25vl-7b --load-format dummy --served-model-name judge --port 8001 \\
      --enable-prefix-caching --enable-prompt-tokens-details \\
      --limit-mm-per-prompt '{"image": 2, "video": 0}' \\
      --structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'

then, from the repository root::

    python3 bench/group_affinity.py --engines http://127.0.0.1:8001 http://127.0.0.1:8002 \\
      --out bench/results/group_affinity-2xH100.json

By default the script starts one router per policy (``python -m server`` from this checkout, on a
free local port) with ``EDITJUDGE_REASONING=false``; ``--router URL`` uses a running router instead
(then only its own policy is measured). Needs only the standard library, httpx and Pillow here, and
the server package's dependencies for the router it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/json"}
POLICIES = ("least_outstanding", "affinity")
ROUTES = ("group", "batch")


def jpeg(seed: int, size: int = 512) -> str:
    """A unique JPEG (solid colour plus noise, as in load.py) as a data URL."""
    rnd = random.Random(seed)
    im = Image.new("RGB", (size, size), tuple(rnd.randrange(256) for _ in range(3)))
    px = im.load()
    for _ in range(3000):
        px[rnd.randrange(size), rnd.randrange(size)] = tuple(rnd.randrange(256) for _ in range(3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def workload(groups: int, k: int, seed: int, size: int) -> list[dict[str, Any]]:
    """``groups`` groups of ``k`` candidates; ``seed`` keeps setups apart."""
    out = []
    for g in range(groups):
        base = seed + g * (k + 1)
        out.append(
            {
                "source_image": jpeg(base, size),
                "instruction": f"Instruction {g}: make the sky purple and add a red kite.",
                "images": [jpeg(base + 1 + c, size) for c in range(k)],
                "ids": [f"g{g}-c{c}" for c in range(k)],
            }
        )
    return out


def request_body(group: dict[str, Any], route: str, protocol: str) -> bytes:
    if route == "group":
        return json.dumps({**group, "protocol": protocol}).encode()
    items = [
        {
            "id": i,
            "image": img,
            "source_image": group["source_image"],
            "instruction": group["instruction"],
        }
        for i, img in zip(group["ids"], group["images"], strict=True)
    ]
    return json.dumps({"items": items, "protocol": protocol}).encode()


async def drive(url: str, route: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Closed loop: ``concurrency`` requests in flight until every body has been sent."""
    path = "/score/group" if route == "group" else "/score"
    latencies: list[float] = []
    groups: list[list[dict[str, Any]]] = []
    reported = {"prompt_tokens": 0, "cached_prompt_tokens": 0}
    failures: list[str] = []
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                try:
                    r = await client.post(path, content=body, headers=JSON)
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
                data = r.json()
                groups.append(data["results"])
                for key in reported:
                    reported[key] += data.get(key) or 0

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "latencies": latencies,
        "groups": groups,
        "reported": reported,
        "failures": failures,
    }


def engine_counters(engines: list[str]) -> dict[str, float] | None:
    """Sum of vLLM's prefix-cache query/hit and prompt-token counters over ``engines``."""
    names = {
        "queries": r"prefix_cache_queries_total",
        "hits": r"prefix_cache_hits_total",
        "prompt": r"prompt_tokens_total",
    }
    totals = dict.fromkeys(names, 0.0)
    found = False
    for url in engines:
        try:
            text = httpx.get(f"{url}/metrics", timeout=10).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith("#") or "external" in line:
                continue
            for key, suffix in names.items():
                match = re.match(
                    rf"^vllm:(?:gpu_)?{suffix}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)$", line
                )
                if match:
                    totals[key] += float(match.group(1))
                    found = True
    return totals if found else None


def summarize(
    route: str, policy: str, k: int, run: dict[str, Any], before: Any, after: Any
) -> dict[str, Any]:
    results = [r for group in run["groups"] for r in group]
    ok = [r for r in results if r["status"] == "ok"]
    lat = sorted(run["latencies"])
    per_engine: dict[str, int] = {}
    for r in ok:
        per_engine[r["backend"]] = per_engine.get(r["backend"], 0) + 1
    local = [len({r["backend"] for r in g if r["status"] == "ok"}) == 1 for g in run["groups"]]
    row: dict[str, Any] = {
        "route": route,
        "policy": policy,
        "items": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok) + k * len(run["failures"]),
        "seconds": round(run["seconds"], 3),
        "items_per_s": round(len(ok) / run["seconds"], 2) if run["seconds"] else None,
        "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "p99_ms": round(1000 * lat[max(0, int(len(lat) * 0.99) - 1)], 1) if lat else None,
        "cached_tokens_router": sum(r.get("cached_prompt_tokens") or 0 for r in ok),
        "group_locality": round(sum(local) / len(local), 3) if local else None,
        "per_engine_items": per_engine,
        "failures": run["failures"][:5],
    }
    if before and after:
        queries, hits = after["queries"] - before["queries"], after["hits"] - before["hits"]
        row["prompt_tokens_engine"] = int(after["prompt"] - before["prompt"])
        row["cached_ratio_engine"] = round(hits / queries, 4) if queries else None
    else:
        row["prompt_tokens_engine"] = row["cached_ratio_engine"] = None
    if route == "group" and run["reported"]["prompt_tokens"]:
        rep = run["reported"]
        row["cached_ratio_router"] = round(rep["cached_prompt_tokens"] / rep["prompt_tokens"], 4)
    return row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def router(engines: list[str], policy: str, extra_env: dict[str, str], log: Path) -> Iterator[str]:
    """``python -m server`` from this checkout in front of ``engines``; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "EDITJUDGE_BACKENDS": ",".join(engines),
            "EDITJUDGE_HOST": "127.0.0.1",
            "EDITJUDGE_PORT": str(port),
            "EDITJUDGE_ROUTING_POLICY": policy,
            "EDITJUDGE_REASONING": "false",
            "EDITJUDGE_HEALTH_INTERVAL_S": "1",
            "EDITJUDGE_LOG_LEVEL": "warning",
            **extra_env,
        }
    )
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(
                    f"router exited with {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            raise SystemExit(f"router not ready after 120 s; see {log}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def card() -> str:
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
        if names:
            return f"{len(names)}x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
    return f"no GPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def commit(override: str | None) -> str:
    if override:
        return override
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    if out.returncode == 0:
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    return os.environ.get("EDITJUDGE_COMMIT", "unknown")


def engine_info(url: str) -> dict[str, Any]:
    info: dict[str, Any] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
        info["model"] = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
        info["vllm_version"] = httpx.get(f"{url}/version", timeout=10).json().get("version")
    return info


def measure(
    url: str, policy: str, engines: list[str], args: argparse.Namespace, setup_seed: int
) -> list[dict[str, Any]]:
    """Warm up, then run both routes under one router; one row per route."""
    warm = workload(max(2, len(engines)), args.k, seed=setup_seed, size=args.size)
    for route in ROUTES:
        asyncio.run(
            drive(url, route, [request_body(g, route, args.protocol) for g in warm], len(warm))
        )
    rows = []
    for r, route in enumerate(ROUTES):
        groups = workload(
            args.groups, args.k, seed=setup_seed + (r + 1) * 10_000_000, size=args.size
        )
        bodies = [request_body(g, route, args.protocol) for g in groups]
        before = engine_counters(engines)
        run = asyncio.run(drive(url, route, bodies, args.concurrency))
        rows.append(summarize(route, policy, args.k, run, before, engine_counters(engines)))
        print(format_row(rows[-1]), flush=True)
    return rows


# (title, key, format): the printed table; the JSON has every field
COLUMNS = [
    ("route", "route", "<6"),
    ("policy", "policy", "<18"),
    ("items/s", "items_per_s", ">8.2f"),
    ("p50_ms", "p50_ms", ">8.0f"),
    ("p99_ms", "p99_ms", ">8.0f"),
    ("cached(engine)", "cached_ratio_engine", ">14.3f"),
    ("cached(router)", "cached_ratio_router", ">14.3f"),
    ("locality", "group_locality", ">8.2f"),
    ("errors", "errors", ">6"),
]
HEADER = " ".join(format(title, re.sub(r"\.\d+f$", "", spec)) for title, _, spec in COLUMNS)


def format_row(row: dict[str, Any]) -> str:
    cells = []
    for _, key, spec in COLUMNS:
        value = row.get(key)
        width = re.sub(r"\.\d+f$", "", spec)
        cells.append(format("-", width) if value is None else format(value, spec))
    return " ".join(cells)


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput ratios between setups (means over repeats)."""
    runs: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["items_per_s"]:
            runs.setdefault((r["route"], r["policy"]), []).append(r["items_per_s"])
    by = {key: statistics.fmean(values) for key, values in runs.items()}
    out = {}
    for route in ROUTES:
        if (route, "affinity") in by and (route, "least_outstanding") in by:
            out[f"{route}: affinity / least_outstanding"] = round(
                by[(route, "affinity")] / by[(route, "least_outstanding")], 3
            )
    for policy in POLICIES:
        if ("group", policy) in by and ("batch", policy) in by:
            out[f"{policy}: group / batch"] = round(
                by[("group", policy)] / by[("batch", policy)], 3
            )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--engines", nargs="+", default=[], help="vLLM base URLs, one per GPU (spaces or commas)"
    )
    p.add_argument("--router", help="use this running router instead of starting one per policy")
    p.add_argument("--groups", type=int, default=64, help="groups per setup (default 64)")
    p.add_argument("--k", type=int, default=8, help="candidates per group (default 8)")
    p.add_argument(
        "--concurrency", type=int, default=0, help="requests in flight (default 8 per engine)"
    )
    p.add_argument("--protocol", default="expected", help="scoring protocol (default expected)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument("--epsilon", type=float, default=0.25, help="affinity bounded-load slack")
    p.add_argument("--repeats", type=int, default=1, help="run all setups this many times")
    p.add_argument(
        "--router-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra EDITJUDGE_* for started routers",
    )
    p.add_argument(
        "--commit", help="commit id to record (default: git rev-parse, else $EDITJUDGE_COMMIT)"
    )
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    args = p.parse_args(argv)
    urls = [u for arg in args.engines for u in arg.split(",")]
    args.engine_list = [u.strip().rstrip("/") for u in urls if u.strip()]
    if not args.engine_list and not args.router:
        p.error("give --engines (and/or --router)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engines: list[str] = args.engine_list
    if args.router and not engines:
        engines = [b["url"] for b in httpx.get(f"{args.router}/backends", timeout=10).json()]
    args.concurrency = args.concurrency or 8 * len(engines)
    extra = dict(kv.split("=", 1) for kv in args.router_env)
    extra["EDITJUDGE_AFFINITY_EPSILON"] = str(args.epsilon)
    meta = {
        "card": card(),
        "commit": commit(args.commit),
        **engine_info(engines[0]),
        "engines": len(engines),
        "k": args.k,
        "groups_per_setup": args.groups,
        "concurrency_requests": args.concurrency,
        "protocol": args.protocol,
        "image_size": args.size,
        "epsilon": args.epsilon,
        "router": args.router or "started per policy (python -m server)",
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(json.dumps(meta), flush=True)
    print(HEADER, flush=True)
    log = args.out.parent / f"{args.out.stem}.router.log"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for p, policy in enumerate(POLICIES):
            seed = (rep * len(POLICIES) + p + 1) * 100_000_000
            if args.router:
                policy = (
                    httpx.get(f"{args.router}/info", timeout=10).json().get("routing_policy", "?")
                )
                rows += [
                    {**r, "repeat": rep} for r in measure(args.router, policy, engines, args, seed)
                ]
                break
            with router(engines, policy, extra, log) as url:
                rows += [{**r, "repeat": rep} for r in measure(url, policy, engines, args, seed)]
    summary = ratios(rows)
    for name, value in summary.items():
        print(f"{name}: {value}")
    args.out.write_text(
        json.dumps({"meta": meta, "setups": rows, "ratios": summary}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0 if any(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
