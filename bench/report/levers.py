"""The ``levers`` phase file (``bench.levers``) as a table: one row per arm of every pair, with its
workload (edits per source) and vLLM's counters (requests running, prefix-cache hits, tokens per
step, preemptions), and each arm's items/s against the ``default`` arm's."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

from bench.report.tables import Columns, cell, engine_counter, parsed


def arm_runs(phase: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every measured run of a levers file (``run-ARM``; warm-ups are not kept there), and each
    pair that failed, by name."""
    for pair in phase.get("runs", []):
        if "error" in pair:
            yield {"name": f"{pair['name']} (failed)", "error": pair["error"]}
        for run in pair.get("runs", []):  # named by pair too: an arm may be in two pairs
            name = f"{pair['name']}/{run['name']}"
            yield {**run, "name": name, "kind": "lever", "pair_name": pair["name"]}


def _setting(r: dict[str, Any]) -> str:
    words = [*r.get("serve_options", []), *r.get("engine_args", [])]
    words += [f"{k}={v}" for k, v in (r.get("router_env") or {}).items()]
    return f"`{shlex.join(words)}`" if words else "(shipped defaults)"


def _running(r: dict[str, Any]) -> str:
    windows = list((r.get("engine_windows") or {}).values())
    return cell(windows[0].get("running_mean")) if windows else "-"


LEVERS: Columns = [
    ("pair", lambda r: r["pair_name"]),
    ("arm", lambda r: cell(r.get("arm"))),
    ("setting", _setting),
    ("edits per source", lambda r: cell(r.get("edits_per_source", 1))),
    ("items", lambda r: cell(r.get("items"))),
    ("parsed (ok)", parsed),
    ("items/s", lambda r: cell(r.get("items_per_s"))),
    ("GPU busy %", lambda r: cell(r.get("arm_gpu_busy_pct"))),
    ("running (mean)", _running),
    ("prefix-cache hits", engine_counter("prefix_cache_hit_rate")),
    ("tokens/step", engine_counter("tokens_per_step")),
    ("mean step ms", engine_counter("step_ms_mean")),
    ("preemptions", engine_counter("preemptions")),
]


def ratios(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Each arm's items/s over the ``default`` arm's (the first run of it)."""
    arms = [r for r in runs.values() if r.get("kind") == "lever" and r.get("items_per_s")]
    base = next((r for r in arms if r.get("arm") == "default"), None)
    if base is None:
        return []
    return [
        f"- {r['arm']} ({r['pair_name']}) / default ({base['pair_name']}): "
        f"{r['items_per_s'] / base['items_per_s']:.2f}x items/s"
        for r in arms
        if r is not base
    ]
