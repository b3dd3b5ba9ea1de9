#!/usr/bin/env python3
"""GRPO-like groups through editjudge: /score/group vs /score, affinity vs least-outstanding.

Workload (the shape of ../shared/gpu/load.py; :func:`bench.workload.group`): groups of K candidate
edits (default 8) that share a 512x512 JPEG source image and an instruction; every candidate is a
unique 512x512 JPEG. Each request
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

By default the script starts one router per policy (``editjudge router`` from this checkout, on a
free local port) with ``EDITJUDGE_REASONING=false``; ``--router URL`` uses a running router instead
(then only its own policy is measured). The load comes from :mod:`bench.loadgen` (one process),
the groups from :mod:`bench.workload`, the numbers and table from :mod:`bench.report`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python3 bench/group_affinity.py
    sys.path.insert(0, str(ROOT))

from bench import loadgen, report  # noqa: E402
from bench.gpu_watch import card  # noqa: E402
from bench.procs import free_port, serving_router  # noqa: E402
from bench.workload import BodySource, group, group_body  # noqa: E402

POLICIES = ("least_outstanding", "affinity")
ROUTES = ("group", "batch")
PATHS = {"group": "/score/group", "batch": "/score"}


@contextlib.contextmanager
def router(engines: list[str], policy: str, extra: dict[str, str], log: Path) -> Iterator[str]:
    """``editjudge router`` from this checkout in front of ``engines``; yields its URL."""
    env = {
        "EDITJUDGE_ROUTING_POLICY": policy,
        # dummy weights write junk reasoning up to its length limit: measure scoring, not that
        "EDITJUDGE_REASONING": "false",
        "EDITJUDGE_HEALTH_INTERVAL_S": "1",
        "EDITJUDGE_LOG_LEVEL": "warning",
        **extra,
    }
    with serving_router(engines, free_port(), env, log) as url:
        yield url


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


def drive(url: str, route: str, bodies: list[bytes], concurrency: int) -> list[loadgen.Outcome]:
    """Closed loop: ``concurrency`` requests in flight until every body has been sent."""
    job = loadgen.Job(
        (url + PATHS[route],), BodySource(bodies), concurrency=concurrency, tasks=len(bodies)
    )
    return loadgen.run(job)


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
    warm = groups(max(2, len(engines)), args.k, setup_seed, args.size)
    for route in ROUTES:
        drive(url, route, [group_body(g, route, args.protocol) for g in warm], len(warm))
    rows = []
    for r, route in enumerate(ROUTES):
        made = groups(args.groups, args.k, setup_seed + (r + 1) * 10_000_000, args.size)
        bodies = [group_body(g, route, args.protocol) for g in made]
        before = engine_counters(engines)
        outcomes = drive(url, route, bodies, args.concurrency)
        after = engine_counters(engines)
        delta = {k: after[k] - before[k] for k in after} if before and after else None
        rows.append(report.group_row(route, policy, outcomes, delta))
        print(report.md_table(report.GROUP_COLUMNS, [rows[-1]])[-1], flush=True)
    return rows


def groups(n: int, k: int, seed: int, size: int) -> list[dict[str, Any]]:
    """``n`` groups of ``k`` candidates; ``seed`` keeps setups apart."""
    return [group(g, k, seed, size) for g in range(n)]


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


def describe(args: argparse.Namespace, engines: list[str]) -> dict[str, Any]:
    return {
        "card": card(),
        "commit": report.commit(override=args.commit),
        **engine_info(engines[0]),
        "engines": len(engines),
        "k": args.k,
        "groups_per_setup": args.groups,
        "concurrency_requests": args.concurrency,
        "protocol": args.protocol,
        "image_size": args.size,
        "epsilon": args.epsilon,
        "router": args.router or "started per policy (editjudge router)",
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_all(args: argparse.Namespace, engines: list[str], log: Path) -> list[dict[str, Any]]:
    """Every setup, ``--repeats`` times; one router per policy unless ``--router`` is given."""
    extra = dict(kv.split("=", 1) for kv in args.router_env)
    extra["EDITJUDGE_AFFINITY_EPSILON"] = str(args.epsilon)
    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for p, policy in enumerate(POLICIES):
            seed = (rep * len(POLICIES) + p + 1) * 100_000_000  # fresh images for every setup
            if args.router:
                info = httpx.get(f"{args.router}/info", timeout=10).json()
                found = measure(args.router, info.get("routing_policy", "?"), engines, args, seed)
                rows += [{**r, "repeat": rep} for r in found]
                break
            with router(engines, policy, extra, log) as url:
                rows += [{**r, "repeat": rep} for r in measure(url, policy, engines, args, seed)]
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engines: list[str] = args.engine_list
    if args.router and not engines:
        engines = [b["url"] for b in httpx.get(f"{args.router}/backends", timeout=10).json()]
    args.concurrency = args.concurrency or 8 * len(engines)
    meta = describe(args, engines)
    print(json.dumps(meta), flush=True)
    print("\n".join(report.md_table(report.GROUP_COLUMNS, [])), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = run_all(args, engines, args.out.parent / f"{args.out.stem}.router.log")
    summary = report.group_ratios(rows)
    for name, value in summary.items():
        print(f"{name}: {value}")
    result = {"meta": meta, "setups": rows, "ratios": summary}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if any(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
