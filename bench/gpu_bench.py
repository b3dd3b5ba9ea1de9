"""GPU benchmarks: editjudge on one engine per GPU, as users run it and against the alternatives.

Runs on a lent GPU box in phases and writes one JSON file per phase to ``--out``, rewritten after
every run (a device call cut off mid-phase keeps what finished); logs, nvidia-smi samples and image
files go to ``--work``, so that ``--out`` holds at most 8 files. ``python -m bench.report OUT``
prints the tables of BENCHMARKS.md. Every phase records the card, the model and the commit.

Phases (``bench.userpath`` runs the first two on one ``editjudge serve`` start, whatever their
order on the command line; ``bench.gpu_phases`` the others):
  userpath   editjudge serve --gpus all with shipped defaults + editjudge score with CLI defaults,
             900 pairs of 1024x1024 JPEGs (userpath-N), then one engine (userpath-1): parse rate,
             scaling efficiency, GPU busy % and memory per GPU.
  routers    router settings (--router-arm NAME=EDITJUDGE_X=V) on the same engines, in turn.
  curve      the same router, editjudge score --batch-size 16 at 64 ... 1024 items in flight.
  scaling    load generator (bench.loadgen), 512x512 GRPO items: direct-1..N straight to the
             engines and router-1..N through editjudge (launcher with pinned engine flags and
             EDITJUDGE_REASONING=false, as the committed results), then the group workload.
  placement  the same at N=all with the pre-placement settings (--no-pin, one API server).
  dp         vllm serve --data-parallel-size N with the user path's engine flags: the user-path
             workload through editjudge router (dp-userpath-N, comparable to userpath-N); with
             --dp-loadgen also the load generator's direct runs (dp-N, dp-api4-N).
  hf         transformers generate, batch 2, one GPU.
  levers     bench.levers: engine and router settings side by side, one arm per GPU at once, with
             vLLM's step counters and (with py-spy) the engine's hottest frames.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import gpu_watch, levers, report, router_arms, userpath
from bench.gpu_phases import ENGINE_ARGS, PHASES, ROUTER_ENV, Box, Context
from bench.procs import log
from bench.report import Recorder
from editjudge.server.box.engines import DEFAULT_VLLM_CMD


def model_info(model_dir: Path) -> tuple[str, dict[str, Any]]:
    """``DIR (Architecture)`` and the config's size fields, to name the model in every table."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return str(model_dir), {}
    text = config.get("text_config") or config
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_experts", "num_experts_per_tok")
    arch = (config.get("architectures") or ["unknown architecture"])[0]
    return f"{model_dir} ({arch})", {
        "architecture": arch,
        **{k: text[k] for k in keys if k in text},
    }


def in_flight_list(text: str) -> list[int]:
    return [int(k) for k in text.split(",") if k.strip()]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("phases", nargs="+", choices=[*userpath.PHASES, "levers", *PHASES])
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--gpus", default="all", help="'all' (nvidia-smi) or a number of GPUs")
    p.add_argument("--out", type=Path, required=True, help="phase JSON files (8 at most)")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/editjudge-bench"),
        help="logs, nvidia-smi samples, image pairs, results of editjudge score",
    )
    p.add_argument("--commit", help="commit to record where there is no git (default: git)")
    p.add_argument("--port", type=int, default=8000, help="router port of editjudge serve")
    p.add_argument("--engine-base-port", type=int, default=8001)
    p.add_argument("--vllm-cmd", default=DEFAULT_VLLM_CMD, help="how an engine starts")
    p.add_argument("--start-timeout", type=float, default=420)
    _user_path_options(p.add_argument_group("user path (userpath, curve; dp's dp-userpath run)"))
    _loadgen_options(p.add_argument_group("load generator phases (scaling, placement, dp, hf)"))
    levers.add_options(p)
    router_arms.add_options(p)
    return p.parse_args(argv)


def _user_path_options(u: argparse._ArgumentGroup) -> None:
    u.add_argument("--image-side", type=int, default=1024)
    u.add_argument(
        "--edits-per-source",
        type=int,
        default=1,
        help="consecutive pairs sharing one source image (levers, userpath, curve)",
    )
    u.add_argument("--userpath-pairs", type=int, default=900)
    u.add_argument("--one-engine-pairs", type=int, default=300)
    u.add_argument("--warmup-pairs", type=int, default=128, help="scored once before the runs")
    u.add_argument("--curve-inflight", type=in_flight_list, default=[64, 128, 256, 512, 1024])
    u.add_argument(
        "--curve-items",
        type=int,
        default=None,
        help="pairs per point (default: 256 or 2x K, whichever is more)",
    )
    u.add_argument(
        "--cpu-engine-args",
        default="",
        help="extra engine arguments, only because vLLM on the CPU needs them; every "
        "result file says the run is then not the user path",
    )


def _loadgen_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--items", type=int, default=300, help="items per engine per run")
    g.add_argument("--conc", type=int, default=64, help="items in flight per engine")
    g.add_argument("--procs", type=int, default=8, help="load generator processes")
    g.add_argument("--loadgen-cpus", type=int, default=None)
    g.add_argument("--hf-batches", type=int, default=20)
    g.add_argument("--group-count", type=int, default=48)
    g.add_argument("--skip-groups", action="store_true")
    g.add_argument("--dp-loadgen", action="store_true", help="dp: also the load generator runs")
    g.add_argument("--dp-once", action="store_true", help="skip the --api-server-count DP run")
    g.add_argument(
        "--engine-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="(last) extra engine arguments of the load generator phases",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    for folder in (args.out, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    box = Box(args)
    model, config = model_info(args.model_dir)
    meta = {
        "card": gpu_watch.card(),
        "model": model,
        "model_config": config,
        "commit": report.commit(override=args.commit),
        "cpus": len(os.sched_getaffinity(0)),
        "gpus": box.gpus,
    }
    loadgen_meta = {
        "loadgen_cpus": len(box.loadgen_cpus),
        "items_per_engine": args.items,
        "conc_per_engine": args.conc,
        "engine_args": ENGINE_ARGS + args.engine_args,
        "router_env": ROUTER_ENV,
    }
    log(f"bench on {meta['card']}, {model}, commit {meta['commit']}, {meta['cpus']} cpus")
    phases = list(dict.fromkeys(args.phases))
    if wanted := [p for p in phases if p in userpath.PHASES]:
        userpath.session(args, meta, wanted)  # first: the phases that share one serve start
    if "levers" in phases:
        levers.phase_levers(args, meta)
    for name in (p for p in phases if p in PHASES):
        uses_loadgen = name in ("scaling", "placement") or (name == "dp" and args.dp_loadgen)
        rec = Recorder(args.out, name, {**meta, **loadgen_meta} if uses_loadgen else meta)
        try:
            PHASES[name](Context(args, box, rec))
        except Exception as exc:
            log(f"phase {name} failed: {exc!r}")
            rec.fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
