"""The user's path on GPUs with shipped defaults (issue 13): ``editjudge serve`` and ``editjudge
score`` as a user types them, reporting how many replies parsed, not only how fast they came.

One serve start feeds every phase (a large model's engines take minutes of a 10-minute device call
to start), in this order:

userpath  ``editjudge serve --gpus all --model DIR -- --load-format dummy``: no other engine flag
          and no ``EDITJUDGE_*`` setting. While the engines start, pairs of 1024x1024 JPEGs are
          written (each edit with its own source; disjoint between runs, so that no run warms
          another's caches). After a short warm-up, ``editjudge score INPUT -o OUT --server URL``
          with the CLI's defaults scores 900 pairs (``userpath-N``); then a second router
          (``editjudge router``, defaults, ``EDITJUDGE_BACKENDS`` = engine 0 only) 300 pairs
          (``userpath-1``). Scaling efficiency = items/s(N) / (N x items/s(1)). Then N x 300
          pairs through the launcher's router (``userpath-N-matched``): as much work per engine as
          ``userpath-1`` had, since 900 pairs on many engines are mostly ramp and tail.
routers   ``bench.router_arms``: router settings (``--router-arm``) priced on the same engines, one
          after another, each through a second router, against one with no setting.
curve     the same launcher's router, ``editjudge score --batch-size 16 --concurrency K/16`` for K
          items in flight (64 ... 1024): items/s and GPU busy % per point.

Every run records wall time, items/s (and the steady rate between 10% and 90% of the items), what
parsed and the error codes of the rest, GPU busy % and peak memory per GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import gpu_watch, router_arms
from bench.images import pairs_folder, write_pairs
from bench.measure import measure
from bench.procs import (
    Server,
    child_env,
    free_port,
    log,
    serve_argv,
    serving_router,
    stop_serve,
    wait_all_healthy,
)
from bench.report import Recorder
from editjudge.server.config import Settings

PHASES = ("userpath", "routers", "curve")
WHY_EXTRA = "vLLM on the CPU needs them (given with --cpu-engine-args)"


def serve_command(args: argparse.Namespace) -> list[str]:
    """``editjudge serve`` as the user types it; the options a run changes, only if it does."""
    gpus = "all" if args.gpus == "all" else ",".join(str(i) for i in range(int(args.gpus)))
    options = {
        "--port": str(args.port),
        "--engine-base-port": str(args.engine_base_port),
        "--vllm-cmd": args.vllm_cmd,
    }
    engine_args = ["--load-format", "dummy", *shlex.split(args.cpu_engine_args)]
    return serve_argv(gpus, args.model_dir, options, engine_args=engine_args)


def pair_sets(args: argparse.Namespace, phases: list[str], gpus: int) -> dict[str, tuple[int, int]]:
    """Name -> (first pair, pairs) of every run the phases make on ``gpus`` engines; the ranges
    never overlap."""
    sets = {"warmup": (0, args.warmup_pairs)}
    if "userpath" in phases:
        sets["userpath-N"] = (100_000, args.userpath_pairs)
        sets["userpath-1"] = (200_000, args.one_engine_pairs)
        matched = gpus * args.one_engine_pairs
        if gpus > 1 and matched != args.userpath_pairs:
            sets["userpath-matched"] = (300_000, matched)
    if "routers" in phases:
        sets.update(router_arms.pair_sets(args, gpus))
    if "curve" in phases:
        for k, in_flight in enumerate(args.curve_inflight):
            count = args.curve_items or max(256, 2 * in_flight)
            sets[f"curve-{in_flight}"] = (1_000_000 * (k + 1), count)
    return sets


def write_set(args: argparse.Namespace, name: str, first: int, count: int) -> Path:
    """The run ``name``'s pairs, in a folder of their own under ``--work``; its listing."""
    k = args.edits_per_source
    folder = pairs_folder(args.work, f"{name}-{args.image_side}px", k)
    return write_pairs(folder, first, count, args.image_side, edits_per_source=k)


@contextlib.contextmanager
def default_router(
    backend: str, args: argparse.Namespace, tag: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``editjudge router`` with its defaults (plus ``env``) in front of ``backend`` alone, on
    another port."""
    with serving_router([backend], free_port(), env or {}, args.work / f"router-{tag}.log") as url:
        yield url


def phase_userpath(
    args: argparse.Namespace, url: str, engines: list[str], inputs: dict[str, Path], rec: Recorder
) -> None:
    n = len(engines)
    facts = {"kind": "userpath", "image_side": args.image_side, "client": "editjudge score"}
    routed = "editjudge serve (the launcher's router)"
    big = rec.add(
        measure(args, f"userpath-{n}", inputs["userpath-N"], url, engines=n, router=routed, **facts)
    )
    if n < 2:
        rec.note(scaling_efficiency=None, why_no_one_engine_run="one engine: userpath-N is it")
        return
    with default_router(engines[0], args, "one-engine") as one:
        routed = f"editjudge router, defaults, {engines[0]} only"
        small = rec.add(
            measure(
                args, "userpath-1", inputs["userpath-1"], one, engines=1, router=routed, **facts
            )
        )
    rec.note(scaling_efficiency=_efficiency(big, small, n))
    if "userpath-matched" in inputs:
        name, matched = f"userpath-{n}-matched", inputs["userpath-matched"]
        routed = "editjudge serve (the launcher's router)"
        run = rec.add(measure(args, name, matched, url, engines=n, router=routed, **facts))
        rec.note(scaling_efficiency_matched=_efficiency(run, small, n))


def _efficiency(big: dict[str, Any], small: dict[str, Any], n: int) -> dict[str, float | None]:
    """items/s of ``n`` engines over ``n`` x one engine's, from wall and from steady rates."""
    out = {}
    for key in ("items_per_s", "steady_items_per_s"):
        n_rate, one_rate = big.get(key), small.get(key)
        out[key] = round(n_rate / (n * one_rate), 3) if n_rate and one_rate else None
    return out


def phase_curve(
    args: argparse.Namespace, url: str, engines: list[str], inputs: dict[str, Path], rec: Recorder
) -> None:
    for k in args.curve_inflight:
        options = ["--batch-size", "16", "--concurrency", str(max(1, k // 16))]
        rec.add(
            measure(
                args,
                f"curve-{k}",
                inputs[f"curve-{k}"],
                url,
                options,
                kind="curve",
                engines=len(engines),
                image_side=args.image_side,
            )
        )


def through_router(args: argparse.Namespace, engine: str, n: int, rec: Recorder) -> None:
    """The user path's ``userpath-N`` workload through ``editjudge router`` in front of one
    endpoint that stands for ``n`` GPUs (``vllm serve --data-parallel-size n``), at the load
    editjudge gives ``n`` engines: the router's window ceiling for that one backend is ``n`` times
    its default (else the router would hold ``n`` GPUs to one engine's share), and the client
    sends what the router then suggests."""
    first, count = pair_sets(args, ["userpath"], n)["userpath-N"]
    pairs = write_set(args, "userpath-N", first, count)
    ceiling = n * Settings.model_fields["max_in_flight_per_backend"].default
    env = {"EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": str(ceiling)}
    with default_router(engine, args, "dp", env) as url:
        suggested = httpx.get(f"{url}/info", timeout=10).json()["capacity"]
        conc = -(-suggested["suggested_items_in_flight"] // 16)
        options = ["--batch-size", "16", "--concurrency", str(conc)]
        routed = f"editjudge router, window ceiling {ceiling}, in front of {engine}"
        rec.add(
            measure(
                args,
                f"dp-userpath-{n}",
                pairs,
                url,
                options,
                kind="userpath",
                engines=n,
                image_side=args.image_side,
                router=routed,
            )
        )


@dataclass
class Started:
    """A serve whose engines are all healthy, and the pair files of every run."""

    serve: Server
    engines: list[str]
    inputs: dict[str, Path]


def start(args: argparse.Namespace, phases: list[str], facts: dict[str, Any]) -> Started:
    """Start ``editjudge serve``, write the pairs while its engines start, wait for all of them,
    warm up; what was learnt goes into ``facts``."""
    t0 = time.monotonic()
    serve = Server(
        "editjudge serve",
        facts["serve_command"],
        f"http://127.0.0.1:{args.port}",
        log=args.work / "serve.log",
    )
    try:
        gpus = gpu_watch.count() if args.gpus == "all" else int(args.gpus)
        sets = pair_sets(args, phases, gpus)
        inputs = {k: write_set(args, k, a, n) for k, (a, n) in sets.items()}
        log(f"wrote {sum(n for _, n in sets.values())} pairs in {time.monotonic() - t0:.0f}s")
        engines = wait_all_healthy(serve, args.start_timeout)
        facts["serve_ready_s"] = round(time.monotonic() - t0, 1)
        facts["gpu_mem_after_start_mib"] = gpu_watch.memory_used()
        facts["router_info"] = httpx.get(f"{serve.url}/info", timeout=10).json()
        log(
            f"editjudge serve: {len(engines)} engines healthy {facts['serve_ready_s']}s after start"
        )
        facts["warmup"] = measure(args, "warmup", inputs["warmup"], serve.url, kind="warmup")
        return Started(serve, engines, inputs)
    except BaseException:
        facts["serve_log_tail"] = serve.tail()
        stop_serve(serve)
        raise


def session(args: argparse.Namespace, meta: dict[str, Any], phases: list[str]) -> None:
    """Start ``editjudge serve`` once, run the user-path ``phases`` on it in order, stop it."""
    recs = {p: Recorder(args.out, p, meta) for p in phases}
    facts: dict[str, Any] = {
        "serve_command": serve_command(args),
        "serve_editjudge_env": sorted(k for k in child_env() if k.startswith("EDITJUDGE_")),
        "engine_args_beyond_defaults": shlex.split(args.cpu_engine_args),
        "why_extra_args": WHY_EXTRA if args.cpu_engine_args else None,
    }
    if args.cpu_engine_args:
        log(f"NOT the user path for the engines: extra arguments {args.cpu_engine_args}")
        log(f"  ({WHY_EXTRA})")
    try:
        started = start(args, phases, facts)
    except Exception as exc:
        for rec in recs.values():
            rec.note(**facts)
            rec.fail(exc)
        return
    try:
        for name in PHASES:
            if name not in recs:
                continue
            recs[name].note(**facts)
            try:
                if name == "routers":
                    router_arms.phase_routers(
                        args, started.serve, started.engines, started.inputs, recs[name]
                    )
                else:
                    phase = phase_userpath if name == "userpath" else phase_curve
                    phase(args, started.serve.url, started.engines, started.inputs, recs[name])
            except Exception as exc:
                log(f"phase {name} failed: {exc!r}")
                recs[name].fail(exc)
    finally:
        stop_serve(started.serve)
