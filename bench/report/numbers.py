"""The numbers of a run, from the load generator's outcomes, and where they were measured.

* :class:`Measurement`: a run over a time window (the CPU router overhead), closed or open loop;
* :func:`tally`: a run over a fixed number of requests (GPU runs; :func:`group_row`: groups);
* :func:`commit`, :func:`meta`: which code and machine produced them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import Outcome
from bench.procs import ROOT


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Measurement:
    """One closed-loop (rate 0) or open-loop run over a time window."""

    rate: float
    req_s: float
    ok: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    lag_p99_ms: float  # open loop: how late the generator sent (its own health)
    cpu_ms_per_req: dict[str, float]  # client / engines / router
    cpu_cores: dict[str, float]  # the same as a share of one core
    error_sample: str = ""

    @classmethod
    def of(
        cls, outcomes: list[Outcome], duration: float, cpu: dict[str, float], rate: float
    ) -> Measurement:
        lat = [x for o in outcomes for x in o.latencies]
        lags = [x for o in outcomes for x in o.lags]
        ok = len(lat)
        cpu = {"client": sum(o.cpu_s for o in outcomes), **cpu}
        return cls(
            rate=rate,
            req_s=round(ok / duration, 1),
            ok=ok,
            errors=sum(o.errors for o in outcomes),
            p50_ms=round(pct(lat, 0.50) * 1e3, 2),
            p90_ms=round(pct(lat, 0.90) * 1e3, 2),
            p99_ms=round(pct(lat, 0.99) * 1e3, 2),
            max_ms=round(max(lat, default=float("nan")) * 1e3, 2),
            lag_p99_ms=round(pct(lags, 0.99) * 1e3, 2) if lags else 0.0,
            cpu_ms_per_req={k: round(v / max(ok, 1) * 1e3, 3) for k, v in cpu.items()},
            cpu_cores={k: round(v / duration, 2) for k, v in cpu.items()},
            error_sample=next((o.error_sample for o in outcomes if o.error_sample), ""),
        )

    def summary(self) -> str:
        what = f"{self.req_s} req/s" if not self.rate else f"@{self.rate:g}/s"
        return (
            f"{what}, p50 {self.p50_ms} ms, p99 {self.p99_ms} ms, {self.errors} errors, "
            f"CPU ms/req {self.cpu_ms_per_req}, generator lag p99 {self.lag_p99_ms} ms"
        )


def merged(counters: Iterable[Counter[str]]) -> Counter[str]:
    """The sum of ``counters``, zero counts kept (``Counter.__add__`` drops them)."""
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return total


def tally(outcomes: list[Outcome]) -> dict[str, Any]:
    """A run over a fixed number of requests: items/s from the first send to the last reply."""
    seconds = max(o.last for o in outcomes) - min(o.first for o in outcomes)
    statuses, backends, counters = (
        merged(o.statuses for o in outcomes),
        merged(o.backends for o in outcomes),
        merged(o.counters for o in outcomes),
    )
    lat = [x for o in outcomes for x in o.latencies]
    local = [x for o in outcomes for x in o.local]
    items, ok = sum(statuses.values()), statuses["ok"]
    return {
        "seconds": round(seconds, 2),
        "items_per_s": round(items / seconds, 2) if seconds > 0 else None,
        "p50_s": round(pct(lat, 0.5), 3) if lat else None,
        "p99_s": round(pct(lat, 0.99), 3) if lat else None,
        "items": items,
        "ok": ok,
        "errors": {k: v for k, v in sorted(statuses.items()) if k != "ok"},
        "share": {b: round(n / max(ok, 1), 3) for b, n in sorted(backends.items())},
        "counters": dict(counters),
        "group_locality": round(sum(local) / len(local), 3) if local else None,
        "error_sample": next((o.error_sample for o in outcomes if o.error_sample), ""),
    }


def commit(root: Path = ROOT, override: str | None = None) -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes); ``override``, else
    ``$EDITJUDGE_COMMIT``, where there is no git (a copy on a lent GPU box)."""
    if override:
        return override

    def git(*a: str) -> str:
        done = subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD")
    if not sha:
        return os.environ.get("EDITJUDGE_COMMIT", "unknown")
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def meta(
    args: argparse.Namespace, cpu: str, load_before: float, load_after: float, sha: str
) -> dict[str, Any]:
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": sha,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(load_after, 2),
        "args": {k: v for k, v in vars(args).items() if k not in ("out",)},
    }


def group_row(
    route: str, policy: str, outcomes: list[Outcome], engine: dict[str, float] | None
) -> dict[str, Any]:
    """A group-workload setup's numbers; ``engine``: vLLM's counter deltas over the run, if read."""
    t = tally(outcomes)
    c, ok, s = t["counters"], t["ok"], t["seconds"]
    queries = engine["queries"] if engine else 0
    row = {
        "route": route,
        "policy": policy,
        "items": t["items"],
        "ok": ok,
        "errors": t["items"] - ok,
        "seconds": s,
        "items_per_s": round(ok / s, 2) if s else None,
        "p50_ms": t["p50_s"] and round(1000 * t["p50_s"], 1),
        "p99_ms": t["p99_s"] and round(1000 * t["p99_s"], 1),
        "cached_tokens_router": c.get("item_cached_prompt_tokens", 0),
        "group_locality": t["group_locality"],
        "per_engine_items": {b: round(share * ok) for b, share in t["share"].items()},
        "failures": [t["error_sample"]] if t["error_sample"] else [],
        "prompt_tokens_engine": int(engine["prompt"]) if engine else None,
        "cached_ratio_engine": round(engine["hits"] / queries, 4) if engine and queries else None,
    }
    if route == "group" and c.get("prompt_tokens"):
        row["cached_ratio_router"] = round(c["cached_prompt_tokens"] / c["prompt_tokens"], 4)
    return row


def group_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput ratios between group-workload setups (means over repeats)."""
    runs: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["items_per_s"]:
            runs.setdefault((r["route"], r["policy"]), []).append(r["items_per_s"])
    by = {key: statistics.fmean(values) for key, values in runs.items()}
    out = {}
    for route in ("group", "batch"):
        if (route, "affinity") in by and (route, "least_outstanding") in by:
            ratio = by[(route, "affinity")] / by[(route, "least_outstanding")]
            out[f"{route}: affinity / least_outstanding"] = round(ratio, 3)
    for policy in ("least_outstanding", "affinity"):
        if ("group", policy) in by and ("batch", policy) in by:
            out[f"{policy}: group / batch"] = round(
                by[("group", policy)] / by[("batch", policy)], 3
            )
    return out
