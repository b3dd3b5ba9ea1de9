"""GPU benchmarks: editjudge on one engine per GPU, against direct clients and the alternatives.

Runs on a lent GPU box in phases and writes one JSON file per phase to ``--out``, rewritten after
every run (a device call cut off mid-phase keeps what finished); logs and nvidia-smi samples go to
``--work``, so that ``--out`` holds at most 8 files. ``python -m bench.report OUT`` prints the
tables of BENCHMARKS.md. Every phase records the card, the model and the commit.

Phases (``bench.gpu_phases``):
  scaling    load generator (bench.loadgen), 512x512 GRPO items: direct-1..N straight to the
             engines and router-1..N through editjudge (launcher with pinned engine flags and
             EDITJUDGE_REASONING=false, as the committed results), then the group workload.
  placement  the same at N=all with the pre-placement settings (--no-pin, one API server).
  dp         vllm serve --data-parallel-size N, direct.
  hf         transformers generate, batch 2, one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import gpu, report
from bench.gpu_phases import ENGINE_ARGS, PHASES, ROUTER_ENV, Box, Context
from bench.procs import log
from bench.report import Recorder


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


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("phases", nargs="+", choices=list(PHASES))
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--gpus", default="all", help="'all' (nvidia-smi) or a number of GPUs")
    p.add_argument("--out", type=Path, required=True, help="phase JSON files (8 at most)")
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/editjudge-bench"),
        help="logs and nvidia-smi samples",
    )
    p.add_argument("--commit", help="commit to record where there is no git (default: git)")
    p.add_argument("--port", type=int, default=8000, help="router port of editjudge serve")
    p.add_argument("--engine-base-port", type=int, default=8001)
    p.add_argument("--vllm-cmd", default="vllm serve", help="how an engine starts")
    p.add_argument("--start-timeout", type=float, default=420)
    _loadgen_options(p.add_argument_group("load generator phases (scaling, placement, dp, hf)"))
    return p.parse_args(argv)


def _loadgen_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--items", type=int, default=300, help="items per engine per run")
    g.add_argument("--conc", type=int, default=64, help="items in flight per engine")
    g.add_argument("--procs", type=int, default=8, help="load generator processes")
    g.add_argument("--loadgen-cpus", type=int, default=None)
    g.add_argument("--hf-batches", type=int, default=20)
    g.add_argument("--group-count", type=int, default=48)
    g.add_argument("--skip-groups", action="store_true")
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
        "card": gpu.card(),
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
    for name in phases:
        rec = Recorder(args.out, name, {**meta, **loadgen_meta} if name != "hf" else meta)
        try:
            PHASES[name](Context(args, box, rec))
        except Exception as exc:
            log(f"phase {name} failed: {exc!r}")
            rec.fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
