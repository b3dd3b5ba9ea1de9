"""Markdown tables: the helpers every table uses, the CPU overhead run's table and the group
workload's columns. (The GPU phases' tables: :mod:`bench.report.gpu`.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.report.numbers import Measurement


def cell(value: Any, spec: str = "") -> str:
    """A table cell: ``-`` for a missing value."""
    return "-" if value is None else format(value, spec)


Columns = list[tuple[str, Callable[[dict[str, Any]], str]]]  # (title, cell of a run) per column


def parsed(run: dict[str, Any]) -> str:
    """A run's parsed replies and their share: ``ok (rate)``."""
    return f"{run.get('ok', 0)} ({cell(run.get('parse_rate'), '.1%')})"


def engine_counter(key: str) -> Callable[[dict[str, Any]], str]:
    """A column of one of vLLM's counters over the run (``bench.engine_counters``), first engine
    (a levers run's ``engine``, where an older file kept only that)."""

    def of(run: dict[str, Any]) -> str:
        first = next(iter((run.get("engine_counters") or {}).values()), None)
        return cell((first or run.get("engine") or {}).get(key))

    return of


def md_table(columns: list[tuple[str, Callable[[Any], str]]], rows: list[Any]) -> list[str]:
    """A markdown table: one (title, cell of a row) per column."""

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    head = [line(t for t, _ in columns), "|" + "---|" * len(columns)]
    return head + [line(f(r) for _, f in columns) for r in rows]


@dataclass
class Row:
    """One system of the overhead benchmark: its best closed-loop and median open-loop rounds."""

    name: str
    kind: str
    peak: Measurement
    fixed: Measurement
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


@dataclass
class Result:
    """The overhead benchmark's run: its table, JSON and markdown."""

    meta: dict[str, Any]
    rows: list[Row]

    def table(self) -> str:
        m, a = self.meta, self.meta["args"]
        d = next((r for r in self.rows if r.kind == "direct"), None)
        out = [
            f"Router overhead: {m['cpu']} x{m['cores']}, commit {m['commit']}, {m['when']}",
            f"fake engines: {a['engines']} x {a['latency'] * 1e3:g} ms; {a['repeat']} interleaved "
            "round(s): best max req/s, median-p99 latency; load avg before/after "
            f"{m['load_avg_1m_before']}/{m['load_avg_1m_after']}",
            "",
            *md_table(self._columns(d), self.rows),
        ]
        if d is not None:
            c = d.peak.cpu_ms_per_req.get("client", 0.0)
            out += [
                "",
                f"Load generator: {a['client_procs']} processes (uvloop + aiohttp, pre-serialised "
                f"bodies); {c:.3f} CPU ms/request, i.e. a ceiling of ~{1000 / c if c else 0:.0f} "
                f"req/s per core; it sustained {d.peak.req_s} req/s straight to the engines "
                "(itself sharing the cores with them).",
            ]
        return "\n".join(out)

    def _columns(self, d: Row | None) -> list[tuple[str, Callable[[Row], str]]]:
        vr = next((r for r in self.rows if r.kind == "vllm-router"), None)
        rate = self.rows[0].fixed.rate if self.rows else 0

        def added(r: Row, key: str) -> str:
            if d is None or r.kind == "direct":
                return "-"
            return f"{getattr(r.fixed, key) - getattr(d.fixed, key):+.2f}"

        def err(m: Measurement) -> str:
            return f" ({m.errors} err)" if m.errors else ""

        def cpu(r: Row, who: str) -> str:
            routed = r.kind != "direct" or who == "client"
            return f"{r.peak.cpu_ms_per_req.get(who, 0.0):.2f}" if routed else "-"

        return [
            ("system", lambda r: r.name),
            ("max req/s", lambda r: f"{r.peak.req_s:g}{err(r.peak)}"),
            ("x direct", lambda r: _ratio(r.peak.req_s, d.peak.req_s if d else None)),
            ("x vllm-router", lambda r: _ratio(r.peak.req_s, vr.peak.req_s if vr else None)),
            (f"p50 ms @{rate:g}/s", lambda r: f"{r.fixed.p50_ms:.2f}"),
            ("p99 ms", lambda r: f"{r.fixed.p99_ms:.2f}{err(r.fixed)}"),
            ("added p50", lambda r: added(r, "p50_ms")),
            ("added p99", lambda r: added(r, "p99_ms")),
            ("router CPU ms/req", lambda r: cpu(r, "router")),
            ("client CPU ms/req", lambda r: cpu(r, "client")),
        ]

    def save(self, out: Path, tag: str) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        stem = "router_overhead" + (f"-{tag}" if tag else "")
        js, md = out / f"{stem}.json", out / f"{stem}.md"
        payload = {"meta": self.meta, "rows": [asdict(r) for r in self.rows]}
        js.write_text(json.dumps(payload, indent=2) + "\n")
        md.write_text(self.table() + "\n")
        return [js, md]


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


GROUP_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("route", lambda r: r["route"]),
    ("policy", lambda r: r["policy"]),
    ("items/s", lambda r: cell(r.get("items_per_s"), ".2f")),
    ("p50 ms", lambda r: cell(r.get("p50_ms"), ".0f")),
    ("p99 ms", lambda r: cell(r.get("p99_ms"), ".0f")),
    ("cached (engine)", lambda r: cell(r.get("cached_ratio_engine"), ".3f")),
    ("cached (router)", lambda r: cell(r.get("cached_ratio_router"), ".3f")),
    ("group locality", lambda r: cell(r.get("group_locality"), ".2f")),
    ("errors", lambda r: cell(r.get("errors"))),
]
