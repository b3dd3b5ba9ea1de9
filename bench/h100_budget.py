"""On an H200: does an H100-sized memory budget start the model at the shipped defaults?

0.54 of an H200's 140.4 GiB (``--gpu-memory-utilization 0.54``) stands for the shipped 0.95 of an
H100's 79.6 GiB. This starts ``editjudge serve --gpus 0 --model DIR -- --load-format dummy
--gpu-memory-utilization 0.54`` (every other engine setting the shipped default, among them
``--max-model-len 16384``), records what vLLM says it has room for (KV cache tokens, concurrency at
the full context), then scores pairs of 1024x1024 JPEGs through it with ``editjudge score`` and
its defaults. Writes ``OUT/h100-budget.json``.

    python3 -m bench.h100_budget --model-dir /tmp/q30b --out $OUT --commit SHA
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from bench import gpu_watch
from bench.gpu_bench import model_info
from bench.images import write_pairs
from bench.measure import measure
from bench.procs import Server, free_port, log, serve_argv, stop_serve
from bench.report import Recorder
from bench.report.numbers import commit

ROOT = Path(__file__).resolve().parent.parent
KV = re.compile(r"GPU KV cache size: ([\d,]+) tokens")
CONCURRENCY = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")


def engine_facts(log_text: str) -> dict[str, Any]:
    """What vLLM logged about its KV cache (the last engine start in the log)."""
    kv = KV.findall(log_text)
    conc = CONCURRENCY.findall(log_text)
    return {
        "kv_cache_tokens": int(kv[-1].replace(",", "")) if kv else None,
        "max_concurrency_at_context": float(conc[-1][1]) if conc else None,
        "context_tokens": int(conc[-1][0].replace(",", "")) if conc else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/editjudge-budget"))
    p.add_argument("--commit", default=None)
    p.add_argument("--fraction", default="0.54", help="--gpu-memory-utilization of the engine")
    p.add_argument("--pairs", type=int, default=300)
    p.add_argument("--start-timeout", type=float, default=300)
    p.add_argument("--vllm-cmd", help="how an engine starts (default: editjudge serve's, vllm)")
    args = p.parse_args(argv)
    for folder in (args.out, args.work):
        folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    engine_args = ["--load-format", "dummy", "--gpu-memory-utilization", args.fraction]
    options = {"--port": str(port), "--vllm-cmd": args.vllm_cmd}
    command = serve_argv("0", args.model_dir, options, engine_args=engine_args)
    model, _ = model_info(args.model_dir)
    meta = {"card": gpu_watch.card(), "model": model, "commit": commit(override=args.commit)}
    rec = Recorder(args.out, "h100-budget", {**meta, "serve_command": command})
    log(f"h100-budget on {meta['card']}: {' '.join(command)}")
    serve = Server("editjudge serve", command, f"http://127.0.0.1:{port}", log=args.work / "s.log")
    try:
        pairs = write_pairs(args.work / "pairs", 7_000_000, args.pairs, 1024)
        rec.note(ready_s=round(serve.wait_ready("/ready", args.start_timeout), 1))
        models = httpx.get(f"{serve.url}/v1/models", timeout=10).json()
        rec.note(
            **engine_facts(serve.log.read_text(errors="replace")),
            gpu_mem_after_start_mib=gpu_watch.memory_used(),
            router_info=httpx.get(f"{serve.url}/info", timeout=10).json(),
            models=models,
        )
        rec.add(measure(args, "h100-budget-1", pairs, serve.url, engines=1, kind="userpath"))
    except Exception as exc:
        rec.fail(exc)
        rec.note(serve_log_tail=serve.tail())
        log(f"h100-budget failed: {exc!r}")
    finally:
        stop_serve(serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
