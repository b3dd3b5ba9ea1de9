"""Numbers from load-generator outcomes, and the table, JSON and markdown of a benchmark run."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.overhead.loadgen import Outcome


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Measurement:
    """One closed-loop (rate 0) or open-loop run."""

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
            p50_ms=round(_pct(lat, 0.50) * 1e3, 2),
            p90_ms=round(_pct(lat, 0.90) * 1e3, 2),
            p99_ms=round(_pct(lat, 0.99) * 1e3, 2),
            max_ms=round(max(lat, default=float("nan")) * 1e3, 2),
            lag_p99_ms=round(_pct(lags, 0.99) * 1e3, 2) if lags else 0.0,
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


@dataclass
class Row:
    name: str
    kind: str
    peak: Measurement  # closed loop: the round with the highest throughput
    fixed: Measurement  # open loop at the fixed rate: the round with the median p99
    env: dict[str, str] = field(default_factory=dict)
    rounds: dict[str, list[Measurement]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        kind: str,
        peaks: list[Measurement],
        fixed: list[Measurement],
        env: dict[str, str],
    ) -> Row:
        best = max(peaks, key=lambda m: m.req_s)
        median = sorted(fixed, key=lambda m: m.p99_ms)[(len(fixed) - 1) // 2]
        return cls(name, kind, best, median, env, {"peak": peaks, "fixed": fixed})


def commit(root: Path) -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes), read when the run starts."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True).stdout.strip()

    dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


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


@dataclass
class Result:
    meta: dict[str, Any]
    rows: list[Row]

    def _direct(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "direct"), None)

    def _vllm_router(self) -> Row | None:
        return next((r for r in self.rows if r.kind == "vllm-router"), None)

    def table(self) -> str:
        m = self.meta
        direct, vr = self._direct(), self._vllm_router()
        rate = self.rows[0].fixed.rate if self.rows else 0
        out = [
            f"Router overhead: {m['cpu']} x{m['cores']}, commit {m['commit']}, {m['when']}",
            f"fake engines: {m['args']['engines']} x {m['args']['latency'] * 1e3:g} ms; "
            f"{m['args']['repeat']} interleaved round(s): best max req/s, median-p99 latency; "
            f"load avg before/after {m['load_avg_1m_before']}/{m['load_avg_1m_after']}",
            "",
            f"| system | max req/s | x direct | x vllm-router | p50 ms @{rate:g}/s | p99 ms "
            "| added p50 | added p99 | router CPU ms/req | client CPU ms/req |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            out.append(_row_md(r, direct, vr))
        if direct is not None:
            c = direct.peak.cpu_ms_per_req.get("client", 0.0)
            ceiling = 1000.0 / c if c else float("inf")
            out += [
                "",
                f"Load generator: {m['args']['client_procs']} processes (uvloop + aiohttp, "
                f"pre-serialised bodies); {c:.3f} CPU ms/request, i.e. a ceiling of "
                f"~{ceiling:.0f} req/s per core; it sustained {direct.peak.req_s} req/s "
                "straight to the engines (itself sharing the cores with them).",
            ]
        return "\n".join(out)

    def save(self, out: Path, tag: str) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        stem = "router_overhead" + (f"-{tag}" if tag else "")
        js, md = out / f"{stem}.json", out / f"{stem}.md"
        payload = {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}
        js.write_text(json.dumps(payload, indent=2) + "\n")
        md.write_text(self.table() + "\n")
        return [js, md]


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "-"


def _row_md(r: Row, direct: Row | None, vr: Row | None) -> str:
    routed = r.kind != "direct"
    add50 = f"{r.fixed.p50_ms - direct.fixed.p50_ms:+.2f}" if direct and routed else "-"
    add99 = f"{r.fixed.p99_ms - direct.fixed.p99_ms:+.2f}" if direct and routed else "-"
    cells = [
        r.name,
        f"{r.peak.req_s:g}" + (f" ({r.peak.errors} err)" if r.peak.errors else ""),
        _ratio(r.peak.req_s, direct.peak.req_s if direct else None),
        _ratio(r.peak.req_s, vr.peak.req_s if vr else None),
        f"{r.fixed.p50_ms:.2f}",
        f"{r.fixed.p99_ms:.2f}" + (f" ({r.fixed.errors} err)" if r.fixed.errors else ""),
        add50,
        add99,
        f"{r.peak.cpu_ms_per_req.get('router', 0.0):.2f}" if routed else "-",
        f"{r.peak.cpu_ms_per_req.get('client', 0.0):.2f}",
    ]
    return "| " + " | ".join(cells) + " |"
