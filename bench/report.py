"""Turn ``bench.gpu_bench`` phase files into the markdown tables of BENCHMARKS.md.

usage: python -m bench.report RESULTS_DIR  (reads scaling.json, placement.json, dp.json, hf.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load(d: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    meta: dict[str, Any] = {}
    runs: dict[str, dict[str, Any]] = {}
    for name in ("scaling", "placement", "dp", "hf"):
        f = d / f"{name}.json"
        if not f.exists():
            continue
        phase = json.loads(f.read_text())
        meta = meta or {k: v for k, v in phase.items() if k not in ("runs", "phase")}
        if "error" in phase:
            runs[f"{name} (failed)"] = {"name": f"{name} (failed)", "error": phase["error"]}
        for run in phase.get("runs", []):
            run.setdefault("name", name)
            runs[run["name"]] = run
    return meta, runs


def busy(run: dict[str, Any]) -> str:
    """Mean busy time of the GPUs the run used (idle ones would only dilute it)."""
    values = [v for v in (run.get("gpu_busy_pct") or {}).values() if v > 1.0]
    return f"{sum(values) / len(values):.0f}" if values else "-"


def row(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"| {run['name']} | failed: {run['error'][:80]} | | | | | | |"
    share = ", ".join(f"{v:.2f}" for v in (run.get("share") or {}).values())
    errs = sum((run.get("errors") or {}).values())
    return (
        f"| {run['name']} | {run.get('urls', '-')} | {run.get('concurrency', '-')} | "
        f"{run['items_per_s']} | {run.get('p50_s', '-')} | {busy(run)} | "
        f"{run.get('decode_step_ms') or '-'} | {share} | {errs} |"
    )


def ratios(runs: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    t1 = runs.get("direct-1", {}).get("items_per_s")
    sizes = sorted(
        int(k.split("-")[1])
        for k in runs
        if k.startswith("router-") and k.split("-")[1].isdigit() and len(k.split("-")) == 2
    )
    for n in sizes:
        r, d = runs.get(f"router-{n}", {}), runs.get(f"direct-{n}", {})
        line = f"- N={n}:"
        if t1 and r.get("items_per_s"):
            line += f" scaling efficiency through editjudge {r['items_per_s'] / (n * t1):.2f}"
        if t1 and d.get("items_per_s"):
            line += f", direct {d['items_per_s'] / (n * t1):.2f}"
        if r.get("items_per_s") and d.get("items_per_s"):
            line += f"; router / direct {r['items_per_s'] / d['items_per_s']:.2f}"
        out.append(line)
    n = max(sizes, default=0)
    best = runs.get(f"router-{n}", {}).get("items_per_s")
    for dp in (f"dp-{n}", f"dp-api4-{n}"):
        if best and runs.get(dp, {}).get("items_per_s"):
            out.append(f"- editjudge N={n} / vLLM {dp}: {best / runs[dp]['items_per_s']:.2f}x")
    before = runs.get(f"router-{n}-unpinned", {}).get("items_per_s")
    if best and before:
        out.append(
            f"- placement defaults / unpinned, through editjudge at N={n}: {best / before:.2f}x"
        )
    hf = runs.get("hf", {}).get("items_per_s")
    if hf and best and n:
        out.append(f"- per GPU, editjudge / transformers batch-2: {best / n / hf:.1f}x")
    return out


def render(d: Path) -> str:
    meta, runs = load(d)
    head = (
        f"Card: {meta.get('card')}; commit {meta.get('commit')}; {meta.get('cpus')} CPU cores "
        f"({meta.get('loadgen_cpus')} for the load generator); "
        f"{meta.get('items_per_engine')} items and {meta.get('conc_per_engine')} in flight "
        "per engine.\n\n"
    )
    table = [
        "| run | engines/URLs | in flight | items/s | p50 s | GPU busy % | decode step ms | "
        "share | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table += [
        row(r) for r in runs.values() if r["name"] != "hf" and ("items_per_s" in r or "error" in r)
    ]
    if "hf" in runs:
        table.append(
            f"| transformers generate, batch 2 | 1 GPU | 2 | {runs['hf']['items_per_s']}"
            " | - | - | - | - | - |"
        )
    return head + "\n".join(table) + "\n\n" + "\n".join(ratios(runs)) + "\n"


if __name__ == "__main__":
    print(render(Path(sys.argv[1])))
