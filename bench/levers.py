"""Issue 17's levers, side by side: where an engine waits, and what each engine or router setting
changes, measured on two (or more) GPUs of one box at the same time.

An *arm* is ``NAME=TOKENS``: the tokens before ``--`` are ``editjudge serve`` options, those after
it vLLM engine arguments, and ``EDITJUDGE_X=V`` tokens settings of the arm's router; ``default=``
is the user path (no token at all). A *pair* (``--pair A,B``) starts one ``editjudge serve`` per
arm at once, arm k on GPU k and on the k-th equal block of the box's cores (the same split
``editjudge serve --gpus all`` makes), warms them up, then scores the same number of disjoint
1024x1024 pairs through every arm at the same time with ``editjudge score``'s defaults. Every arm
records items/s, what parsed, its GPU's busy %, the router's windows, and from the engine's
``/metrics`` the deltas of vLLM's step and request counters over the run: steps taken, tokens
per step, mean step time, queue / prefill / decode time per request, cache hit rates. With
``py-spy`` installed, 8 s of the engine core's and one API server's stacks (top frames) too.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import spy
from bench.images import pairs_folder, write_pairs
from bench.measure import measure
from bench.procs import Server, log, serve_argv, stop_serve, wait_all_healthy
from bench.report import Recorder

SETTING = re.compile(r"^EDITJUDGE_[A-Z0-9_]+=")


@dataclass(frozen=True)
class Arm:
    """One engine configuration: serve options, engine arguments, router settings."""

    name: str
    serve_options: tuple[str, ...] = ()
    engine_args: tuple[str, ...] = ()
    router_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Arm:
        name, _, rest = spec.partition("=")
        tokens = shlex.split(rest)
        env = {t.split("=", 1)[0]: t.split("=", 1)[1] for t in tokens if SETTING.match(t)}
        tokens = [t for t in tokens if not SETTING.match(t)]
        cut = tokens.index("--") if "--" in tokens else len(tokens)
        return cls(name.strip(), tuple(tokens[:cut]), tuple(tokens[cut + 1 :]), env)


@dataclass
class Running:
    arm: Arm
    gpu: int
    serve: Server
    engine: str = ""
    inputs: dict[str, Path] = field(default_factory=dict)


def start_arm(args: argparse.Namespace, arm: Arm, gpu: int, cpus: Sequence[int]) -> Running:
    port = args.port + 10 * (gpu + 1)
    options = {"--port": str(port), "--engine-base-port": str(port + 1)}
    options["--vllm-cmd"] = args.vllm_cmd
    engine_args = ["--load-format", "dummy", *arm.engine_args, *shlex.split(args.cpu_engine_args)]
    argv = serve_argv(str(gpu), args.model_dir, options, arm.serve_options, engine_args)
    logfile = args.work / f"serve-{arm.name}.log"
    serve = Server(
        f"serve-{arm.name}",
        argv,
        f"http://127.0.0.1:{port}",
        arm.router_env,
        log=logfile,
        cpus=cpus,
    )
    return Running(arm, gpu, serve)


def blocks(count: int) -> list[list[int]]:
    cpus = sorted(os.sched_getaffinity(0))
    per = len(cpus) // count
    return [cpus[k * per : (k + 1) * per] for k in range(count)]


def run_pair(args: argparse.Namespace, arms: list[Arm], pair_no: int, rec: Recorder) -> None:
    cores = blocks(len(arms))
    t0 = time.monotonic()
    live = [start_arm(args, arm, k, cores[k]) for k, arm in enumerate(arms)]
    eps = args.edits_per_source
    try:
        for k, r in enumerate(live):
            base = 10_000_000 * (pair_no + 1) + 100_000 * k
            for name, offset, count in (
                ("warmup", 0, args.warmup_pairs),
                ("run", 50_000, args.pairs),
            ):
                folder = pairs_folder(args.work, f"lever-{pair_no}-{k}-{name}", eps)
                r.inputs[name] = write_pairs(
                    folder, base + offset, count, args.image_side, edits_per_source=eps
                )
        for r in live:
            r.engine = wait_all_healthy(r.serve, args.start_timeout)[0]
        ready_s = round(time.monotonic() - t0, 1)
        log(f"pair {pair_no}: {[a.name for a in arms]} healthy after {ready_s}s")
        together(args, live, "warmup", {})
        rec.add(
            {
                "name": f"pair-{pair_no}",
                "arms": [a.name for a in arms],
                "ready_s": ready_s,
                "runs": together(args, live, "run", {"pair": pair_no}),
            }
        )
    finally:
        for r in live:
            stop_serve(r.serve)


def together(
    args: argparse.Namespace, live: list[Running], which: str, facts: dict[str, Any]
) -> list[dict[str, Any]]:
    """Score every arm's ``which`` pairs at the same time; one result per arm."""
    results: list[dict[str, Any]] = [{} for _ in live]

    def one(k: int, r: Running) -> None:
        profiled = which == "run" and args.profile
        with spy.during(r.serve, args.work, r.arm.name, args.profile_after_s, profiled) as frames:
            res = measure(
                args,
                f"{which}-{r.arm.name}",
                r.inputs[which],
                r.serve.url,
                **facts,
                arm=r.arm.name,
                gpu=r.gpu,
                serve_options=list(r.arm.serve_options),
                engine_args=list(r.arm.engine_args),
                router_env=r.arm.router_env,
            )
        res["engine"] = next(iter(res["engine_counters"].values()), None)  # its one engine
        res["arm_gpu_busy_pct"] = (res.get("gpu_busy_pct") or {}).get(str(r.gpu))
        res["profile"] = frames or None
        results[k] = res

    threads = [threading.Thread(target=one, args=(k, r)) for k, r in enumerate(live)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def phase_levers(args: argparse.Namespace, meta: dict[str, Any]) -> None:
    arms = {a.name: a for a in (Arm.parse(s) for s in args.arm)}
    rec = Recorder(args.out, "levers", {**meta, "arms": {n: vars(a) for n, a in arms.items()}})
    for k, pair in enumerate(args.pair):
        names = [n.strip() for n in pair.split(",")]
        try:
            run_pair(args, [arms[n] for n in names], k, rec)
        except Exception as exc:
            log(f"pair {names} failed: {exc!r}")
            rec.add(
                {
                    "name": f"pair-{k}",
                    "arms": names,
                    "error": f"{type(exc).__name__}: {exc}"[-3000:],
                }
            )


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("levers (issue 17): arms side by side, one GPU each")
    g.add_argument("--arm", action="append", default=["default="], help="NAME=TOKENS (see above)")
    g.add_argument("--pair", action="append", default=[], help="arm names, one per GPU: A,B")
    g.add_argument("--pairs", type=int, default=300, help="image pairs each arm scores")
    g.add_argument(
        "--profile", action="store_true", help="py-spy the engine during each run (levers, routers)"
    )
    g.add_argument("--profile-after-s", type=float, default=15.0)
