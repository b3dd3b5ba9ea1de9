"""The load-generator phases of ``bench.gpu_bench``: engines started with the benchmark's own
flags (as the committed 2026-11-27 results were), and :mod:`bench.loadgen` driving them directly
or through editjudge.

scaling    direct-1..N straight to the engines and router-1..N through editjudge (launcher with
           pinned engine flags and EDITJUDGE_REASONING=false), then the group workload.
placement  the same at N=all with the pre-placement settings (--no-pin, one API server).
dp         vllm serve --data-parallel-size N: the user-path workload (dp-userpath-N); with
           --dp-loadgen also the load generator's direct runs (dp-N, dp-api4-N).
hf         transformers generate, batch 2, one GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import gpu_watch, loadgen, report, userpath
from bench.procs import ROOT, Server, log, serve_argv, serving_router, stop_serve
from bench.report import Recorder
from bench.workload import ItemSource
from editjudge.server.box.defaults import engine_flags

SERVED = "judge"
ENGINE_ARGS = [
    "--served-model-name",
    SERVED,
    "--load-format",
    "dummy",
    "--max-model-len",
    "4096",
    "--limit-mm-per-prompt",
    '{"image": 2, "video": 0}',
    "--gpu-memory-utilization",
    "0.85",
    "--structured-outputs-config",
    '{"backend": "xgrammar", "disable_any_whitespace": true}',
]
# The load-generator phases' router settings (as in the committed results), not the user path's.
ROUTER_ENV = {
    "EDITJUDGE_HEALTH_INTERVAL_S": "1",
    "EDITJUDGE_REASONING": "false",
    "EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": "1024",
}


class Box:
    """Ports, cores and GPUs of one benchmark machine."""

    def __init__(self, args: argparse.Namespace) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        k = args.loadgen_cpus if args.loadgen_cpus is not None else (12 if len(cpus) >= 32 else 0)
        self.loadgen_cpus = tuple(cpus[len(cpus) - k :]) if k else ()
        self.serve_cpus = cpus[: len(cpus) - k] if k else cpus
        self.gpus = gpu_watch.count() if args.gpus == "all" else int(args.gpus)
        self.router_port, self.engine_base = args.port, args.engine_base_port

    def engines(self, n: int) -> list[str]:
        return [f"http://127.0.0.1:{self.engine_base + i}" for i in range(n)]


@dataclass
class Context:
    """What a load-generator phase works with: the options, the box, its results file."""

    args: argparse.Namespace
    box: Box
    rec: Recorder
    engine_log: Path | None = None  # the engines' output, for their decode-step stats


def measure(
    ctx: Context,
    name: str,
    mode: str,
    urls: Sequence[str],
    engines: int,
    offset: int,
    items: int | None = None,
) -> dict[str, Any]:
    """A warm-up, then ``--items`` per engine (or ``items``) with ``--conc`` per engine in flight
    through the load generator; images from item ``offset`` on."""
    n, conc = items or ctx.args.items * engines, ctx.args.conc * engines
    path = "/v1/chat/completions" if mode == "direct" else "/score"
    endpoints = tuple(u + path for u in urls)

    def job(count: int, first: int) -> loadgen.Job:
        source = ItemSource(mode, SERVED, offset=first)
        cpus = ctx.box.loadgen_cpus
        return loadgen.Job(endpoints, source, ctx.args.procs, conc, tasks=count, cpus=cpus)

    loadgen.run(job(max(conc, 16), offset + 10_000_000))  # compile and caches out of the numbers
    with gpu_watch.watch(ctx.engine_log, ctx.args.work / f"gpu-{name}.csv") as stats:
        outcomes = loadgen.run(job(n, offset))
    result = {
        "name": name,
        "kind": "loadgen",
        "mode": mode,
        "urls": len(urls),
        "n": n,
        "concurrency": conc,
        "procs": ctx.args.procs,
    }
    result.update(report.tally(outcomes), **stats)
    log(
        f"{name}: {result['items_per_s']} items/s p50 {result['p50_s']}s busy "
        f"{result.get('gpu_busy_pct')} step {result.get('decode_step_ms')} ms errors "
        f"{result['errors']}"
    )
    return ctx.rec.add(result)


def start_launcher(ctx: Context, tag: str, flags: Sequence[str]) -> Server:
    """``editjudge serve`` with the load-generator phases' engine flags and router settings."""
    args, box = ctx.args, ctx.box
    options = {
        "--port": str(box.router_port),
        "--engine-base-port": str(box.engine_base),
        "--vllm-cmd": args.vllm_cmd,
    }
    gpus = ",".join(map(str, range(box.gpus)))
    cmd = serve_argv(gpus, args.model_dir, options, flags, [*ENGINE_ARGS, *args.engine_args])
    ctx.engine_log = args.work / f"launcher-{tag}.log"
    url = f"http://127.0.0.1:{box.router_port}"
    proc = Server(f"launcher-{tag}", cmd, url, ROUTER_ENV, log=ctx.engine_log, cpus=box.serve_cpus)
    try:
        for u in [*box.engines(box.gpus), url]:
            proc.wait_ready("/health", args.start_timeout, url=u)
    except BaseException:
        stop_serve(proc, 60)
        raise
    log(f"launcher {tag}: {box.gpus} engines + router healthy")
    return proc


@contextlib.contextmanager
def extra_router(ctx: Context, backends: Sequence[str], port: int) -> Iterator[str]:
    """A router in front of ``backends`` with the load-generator phases' settings."""
    env = {**ROUTER_ENV, "EDITJUDGE_LOG_LEVEL": "warning"}
    with serving_router(backends, port, env, ctx.args.work / f"router-{port}.log") as url:
        yield url


def sizes(total: int) -> list[int]:
    return sorted({1, *(n for n in (2, 4, 8) if n < total), total})


def phase_scaling(ctx: Context) -> None:
    args, box = ctx.args, ctx.box
    proc = start_launcher(ctx, "scaling", [])
    try:
        for k, n in enumerate(sizes(box.gpus)):
            offset = 100_000 * (k + 1)
            measure(ctx, f"direct-{n}", "direct", box.engines(n), n, offset)
        for k, n in enumerate(sizes(box.gpus)):
            offset = 1_000_000 + 100_000 * k
            # At N = all, the launcher's own router with >= 500 items; else one started in front
            # of the first n engines.
            whole = n == box.gpus
            items = max(500, args.items * n) if whole else args.items * n
            with (
                contextlib.nullcontext(proc.url)
                if whole
                else extra_router(ctx, box.engines(n), box.router_port + 100 + n)
            ) as url:
                measure(ctx, f"router-{n}", "router", [url], n, offset, items)
        groups(ctx)
    finally:
        stop_serve(proc, 60)


def groups(ctx: Context) -> None:
    """Group workload through least-outstanding vs affinity routing (same engines)."""
    if ctx.args.skip_groups:
        return
    out = ctx.args.out / "group-affinity.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "group_affinity.py"),
        "--engines",
        *ctx.box.engines(ctx.box.gpus),
        "--out",
        str(out),
        "--groups",
        str(ctx.args.group_count),
        "--commit",
        ctx.rec.doc["commit"],
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    log(f"group_affinity rc={done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    run = {"name": "group-affinity", "kind": "groups", "rc": done.returncode}
    ctx.rec.add({**run, "stdout": done.stdout[-4000:]})


def phase_placement(ctx: Context) -> None:
    """The settings before host-side placement: no pinning, no thread caps, one API server."""
    box = ctx.box
    proc = start_launcher(ctx, "unpinned", ["--no-pin", "--api-server-count", "0"])
    try:
        n = box.gpus
        measure(ctx, f"direct-{n}-unpinned", "direct", box.engines(n), n, 5_000_000)
        measure(ctx, f"router-{n}-unpinned", "router", [proc.url], n, 5_100_000)
    finally:
        stop_serve(proc, 60)


@contextlib.contextmanager
def dp_engine(ctx: Context, tag: str, cmd: list[str]) -> Iterator[str]:
    """``vllm serve --data-parallel-size N`` on the first N GPUs; yields its URL once healthy."""
    n, url = ctx.box.gpus, ctx.box.engines(1)[0]
    ctx.engine_log = ctx.args.work / f"{tag}.log"
    env = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(n)))}
    proc = Server(tag, cmd, url, env, log=ctx.engine_log)
    try:
        log(f"{tag}: healthy in {proc.wait_ready('/health', ctx.args.start_timeout):.0f}s")
        yield url
    finally:
        proc.stop(signal.SIGTERM, 60)


def phase_dp(ctx: Context) -> None:
    """vLLM's own data parallelism: the user-path workload through ``editjudge router`` in front
    of it, the DP engine started with the user path's flags; with ``--dp-loadgen`` also the load
    generator's direct runs on an engine with the load-generator phases' flags."""
    args, n = ctx.args, ctx.box.gpus
    base = [
        *shlex.split(args.vllm_cmd),
        "--model",
        str(args.model_dir),
        "--port",
        str(ctx.box.engine_base),
        "--data-parallel-size",
        str(n),
        "--enable-prompt-tokens-details",
    ]
    # The engine defaults editjudge serve passes (max model length, image limits): the same load
    # on the same engine settings, and without them Qwen3-VL's 256k context does not fit an H100.
    shipped = [token for pair in engine_flags() for token in pair]
    user_flags = ["--load-format", "dummy", *shipped, *shlex.split(args.cpu_engine_args)]
    extra = shlex.split(args.cpu_engine_args)
    ctx.rec.note(
        dp_command=[*base, *user_flags],
        engine_args_beyond_defaults=extra,
        why_extra_args=userpath.WHY_EXTRA if extra else None,
    )
    with dp_engine(ctx, "dp", [*base, *user_flags]) as url:
        userpath.through_router(args, url, n, ctx.rec)
    if not args.dp_loadgen:
        return
    for k, (tag, extra) in enumerate((("dp", []), ("dp-api4", ["--api-server-count", str(n)]))):
        with dp_engine(ctx, f"{tag}-loadgen", [*base, *ENGINE_ARGS, *args.engine_args, *extra]):
            measure(ctx, f"{tag}-{n}", "direct", ctx.box.engines(1), n, 6_000_000 + 100_000 * k)
        if args.dp_once:
            break


def phase_hf(ctx: Context) -> None:
    cmd = [
        sys.executable,
        "-m",
        "bench.hf_baseline",
        str(ctx.args.model_dir),
        str(ctx.args.hf_batches),
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=540, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"hf: {result}")
    ctx.rec.add({"name": "hf", "kind": "hf", **result})


PHASES = {"scaling": phase_scaling, "placement": phase_placement, "dp": phase_dp, "hf": phase_hf}
