"""``bench.gpu_bench`` phase files as the markdown tables of BENCHMARKS.md.

Three kinds of run, one table each, every table headed by the card(s), model and commit its runs
came from (phases of one results folder may come from different leases):

* load-generator runs (``direct-N``, ``router-N``, ``dp-N``, ...: phases scaling, placement, dp),
  with the ratios between them;
* user-path runs (``userpath-N``, ``userpath-1``, ``dp-userpath-N``): ``editjudge score`` with its
  defaults against ``editjudge serve`` with its defaults; parse rate, busy % and memory per GPU,
  and the scaling efficiency items/s(N) / (N x items/s(1));
* router settings on the same engines (``arm-NAME``, phase routers): items/s, what parsed, busy %
  and vLLM's step counters per arm;
* the in-flight curve (``curve-K``): items/s and busy % against the items a client keeps in flight;
* engine and router settings, a GPU (or a serve start) per arm (phase levers:
  :mod:`~bench.report.levers`).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from bench.report import levers
from bench.report.tables import Columns, cell, engine_counter, md_table, parsed

PHASES = ("scaling", "placement", "dp", "hf", "userpath", "routers", "curve", "levers")


def load(d: Path) -> dict[str, dict[str, Any]]:
    """Every run of every phase file in ``d`` by name, each with its phase's card, model, commit."""
    runs: dict[str, dict[str, Any]] = {}
    for name in PHASES:
        f = d / f"{name}.json"
        if not f.exists():
            continue
        phase = json.loads(f.read_text())
        where = {k: phase.get(k) for k in ("card", "model", "commit")}
        if "error" in phase:
            runs[f"{name} (failed)"] = {
                "name": f"{name} (failed)",
                "error": phase["error"],
                **where,
            }
        for run in levers.arm_runs(phase) if name == "levers" else phase.get("runs", []):
            run.setdefault("name", name)
            run.setdefault("kind", "hf" if name == "hf" else "loadgen")
            runs[run["name"]] = {**run, **where, "phase": name, "phase_meta": phase}
    return runs


def mean_busy(run: dict[str, Any]) -> str:
    """Mean busy % of the GPUs the run used (idle ones would only dilute it)."""
    values = [v for v in (run.get("gpu_busy_pct") or {}).values() if v > 1.0]
    return f"{sum(values) / len(values):.0f}" if values else "-"


def per_gpu(values: dict[str, float] | None, scale: float = 1.0, spec: str = ".0f") -> str:
    return "/".join(format(v * scale, spec) for v in values.values()) if values else "-"


def caption(title: str, runs: list[dict[str, Any]]) -> str:
    where = sorted({(r.get("card"), r.get("model"), r.get("commit")) for r in runs}, key=str)
    return f"**{title}**: " + "; ".join(f"card {c}, model {m}, commit {s}" for c, m, s in where)


LOADGEN: Columns = [
    ("run", lambda r: r["name"]),
    ("engines/URLs", lambda r: cell(r.get("urls"))),
    ("in flight", lambda r: cell(r.get("concurrency"))),
    ("items/s", lambda r: cell(r.get("items_per_s"))),
    ("p50 s", lambda r: cell(r.get("p50_s"))),
    ("GPU busy %", mean_busy),
    ("decode step ms", lambda r: cell(r.get("decode_step_ms"))),
    ("share", lambda r: ", ".join(f"{v:.2f}" for v in (r.get("share") or {}).values())),
    ("errors", lambda r: str(sum((r.get("errors") or {}).values()))),
]
USERPATH: Columns = [
    ("run", lambda r: r["name"]),
    ("engines", lambda r: cell(r.get("engines"))),
    ("items in flight (client's plan)", lambda r: cell(r.get("in_flight"))),
    ("items", lambda r: cell(r.get("items"))),
    ("wall s", lambda r: cell(r.get("seconds"))),
    ("items/s", lambda r: cell(r.get("items_per_s"))),
    ("steady items/s", lambda r: cell(r.get("steady_items_per_s"))),
    ("parsed (ok)", parsed),
    ("errors by code", lambda r: ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"),
    ("GPU busy % per GPU", lambda r: per_gpu(r.get("gpu_busy_pct"))),
    ("GPU GiB peak per GPU", lambda r: per_gpu(r.get("gpu_mem_peak_mib"), 1 / 1024, ".1f")),
]
CURVE: Columns = [
    ("items in flight", lambda r: cell(r.get("in_flight"))),
    ("items", lambda r: cell(r.get("items"))),
    ("items/s", lambda r: cell(r.get("items_per_s"))),
    ("steady items/s", lambda r: cell(r.get("steady_items_per_s"))),
    (
        "GPU busy % per GPU",
        lambda r: per_gpu(r.get("gpu_busy_pct_steady") or r.get("gpu_busy_pct")),
    ),
    ("parsed (ok)", parsed),
    ("errors", lambda r: str(sum((r.get("errors") or {}).values()))),
]


def _settings(r: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in (r.get("router_env") or {}).items()) or "(none)"


ROUTER_ARMS: Columns = [
    ("arm", lambda r: cell(r.get("arm"))),
    ("router settings", _settings),
    ("items", lambda r: cell(r.get("items"))),
    ("parsed (ok)", parsed),
    ("items/s", lambda r: cell(r.get("items_per_s"))),
    ("GPU busy % per GPU", lambda r: per_gpu(r.get("gpu_busy_pct"))),
    ("steps", engine_counter("steps")),
    ("mean step ms", engine_counter("step_ms_mean")),
    ("tokens/step", engine_counter("tokens_per_step")),
    ("generated tokens/request", engine_counter("generated_tokens_per_request")),
    ("inter-token ms", engine_counter("itl_ms_mean")),
]


def _ips(runs: dict[str, dict[str, Any]], name: str) -> float | None:
    value = runs.get(name, {}).get("items_per_s")
    return float(value) if value else None


def loadgen_ratios(runs: dict[str, dict[str, Any]]) -> list[str]:
    out, t1 = [], _ips(runs, "direct-1")
    parts = [k.split("-") for k in runs]
    sizes = sorted(int(p[1]) for p in parts if len(p) == 2 and p[0] == "router" and p[1].isdigit())
    for n in sizes:
        r, d = _ips(runs, f"router-{n}"), _ips(runs, f"direct-{n}")
        line = f"- N={n}:"
        if t1 and r:
            line += f" scaling efficiency through editjudge {r / (n * t1):.2f}"
        if t1 and d:
            line += f", direct {d / (n * t1):.2f}"
        if r and d:
            line += f"; router / direct {r / d:.2f}"
        out.append(line)
    n = max(sizes, default=0)
    best = _ips(runs, f"router-{n}")
    for dp in (f"dp-{n}", f"dp-api4-{n}"):
        if best and (other := _ips(runs, dp)):
            out.append(f"- editjudge N={n} / vLLM {dp}: {best / other:.2f}x")
    if best and (before := _ips(runs, f"router-{n}-unpinned")):
        out.append(
            f"- placement defaults / unpinned, through editjudge at N={n}: {best / before:.2f}x"
        )
    if best and n and (hf := _ips(runs, "hf")):
        out.append(f"- per GPU, editjudge / transformers batch-2: {best / n / hf:.1f}x")
    return out


def userpath_ratios(runs: dict[str, dict[str, Any]]) -> list[str]:
    out, one = [], _ips(runs, "userpath-1")
    for name, run in runs.items():
        n, ips = run.get("engines"), run.get("items_per_s")
        if run.get("kind") != "userpath" or name == "userpath-1" or not (n and ips):
            continue
        if one and name.startswith("userpath-"):
            out.append(
                f"- {name}: scaling efficiency items/s(N) / (N x items/s(1)) "
                f"= {ips / (n * one):.2f}"
            )
        if name.startswith("dp-") and (ours := _ips(runs, f"userpath-{n}")):
            out.append(f"- userpath-{n} / {name} (vLLM's own DP): {ours / ips:.2f}x")
    return out


def render(d: Path) -> str:
    """Every table the phase files in ``d`` hold."""
    runs = load(d)
    out: list[str] = []
    failed = [r for r in runs.values() if "error" in r]
    for r in failed:
        out.append(f"- {r['name']} on {r.get('card')}: {r['error'][:300]}")
    for title, kind, columns, ratios in (
        ("Load generator runs", "loadgen", LOADGEN, loadgen_ratios),
        (
            "User path: editjudge serve + editjudge score, shipped defaults",
            "userpath",
            USERPATH,
            userpath_ratios,
        ),
        (
            "Router settings on the same engines, one after another (phase routers)",
            "router_arm",
            ROUTER_ARMS,
            None,
        ),
        (
            "In-flight curve through the launcher's router (editjudge score --batch-size 16)",
            "curve",
            CURVE,
            None,
        ),
        (
            "Engine and router settings, a GPU or a serve start per arm (phase levers)",
            "lever",
            levers.LEVERS,
            levers.ratios,
        ),
    ):
        chosen = [r for r in runs.values() if r.get("kind") == kind]
        if not chosen:
            continue
        out += ["", caption(title, chosen), "", *md_table(columns, chosen)]
        out += ["", *ratios(runs)] if ratios else []
        if kind == "userpath":
            out += notes(chosen)
    if "hf" in runs:
        out += [
            "",
            caption("transformers generate, batch 2, one GPU", [runs["hf"]]),
            f"{runs['hf']['items_per_s']} items/s",
        ]
    return "\n".join(out).strip() + "\n"


def notes(runs: list[dict[str, Any]]) -> list[str]:
    """What a user-path table needs said: deviations from the defaults, memory after start."""
    out = []
    for meta in {id(r["phase_meta"]): r["phase_meta"] for r in runs}.values():
        extra = meta.get("engine_args_beyond_defaults")
        if extra:
            out.append(
                f"- {meta['phase']}: NOT the user path for the engines: extra engine "
                f"arguments {' '.join(extra)} ({meta.get('why_extra_args')})"
            )
        after = meta.get("gpu_mem_after_start_mib")
        if after:
            out.append(
                f"- {meta['phase']}: GPU GiB in use after start: {per_gpu(after, 1 / 1024, '.1f')}"
            )
        if meta.get("serve_command"):
            out.append(f"- {meta['phase']}: `{shlex.join(meta['serve_command'])}`")
    return out


class Recorder:
    """One phase file in ``out``, rewritten whole after every run, so that a device call cut off
    mid-phase still returns every run that finished (and a reader never sees half a file)."""

    def __init__(self, out: Path, phase: str, meta: dict[str, Any]) -> None:
        self.path = out / f"{phase}.json"
        self.doc: dict[str, Any] = {"phase": phase, **meta, "runs": []}
        self.t0 = time.monotonic()
        self.save()

    def add(self, run: dict[str, Any]) -> dict[str, Any]:
        self.doc["runs"].append(run)
        self.save()
        return run

    def note(self, **facts: Any) -> None:
        self.doc.update(facts)
        self.save()

    def fail(self, exc: BaseException) -> None:
        self.note(error=f"{type(exc).__name__}: {exc}"[-4000:])

    def save(self) -> None:
        self.doc["seconds"] = round(time.monotonic() - self.t0, 1)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1) + "\n")
        tmp.replace(self.path)
