"""The load side of bench/group_affinity.py: GRPO-like groups, a closed loop, the numbers.

Groups of K candidate edits share a source image and an instruction; every image is a distinct JPEG
with noise (``bench.workload.jpeg``, the shape of ../shared/gpu/load.py). One request carries one
group, as ``POST /score/group`` or as a ``POST /score`` batch of the same K items.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import statistics
import time
from typing import Any

import httpx

from bench.workload import jpeg as jpeg_bytes

JSON = {"content-type": "application/json"}
POLICIES = ("least_outstanding", "affinity")
ROUTES = ("group", "batch")


def jpeg(seed: int, size: int = 512) -> str:
    """A unique JPEG as a data URL."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(seed, size)).decode()


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
