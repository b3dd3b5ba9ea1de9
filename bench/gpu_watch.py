"""What the GPUs did during a run: nvidia-smi samples of busy time and memory, the card's name,
and vLLM's decode-step time from its periodic stats lines.

Without nvidia-smi (a CPU smoke run) every GPU number is None, never a made-up zero.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STEP = re.compile(
    r"Avg prompt throughput: ([\d.]+) tokens/s, Avg generation throughput: "
    r"([\d.]+) tokens/s, Running: (\d+) reqs"
)
FIELDS = "timestamp,index,utilization.gpu,memory.used"


def query(fields: str) -> list[list[str]] | None:
    """``nvidia-smi --query-gpu=FIELDS`` as rows of stripped cells; None without nvidia-smi."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]


def card() -> str:
    """``4x NVIDIA H100 80GB HBM3``, or what a machine without nvidia-smi is."""
    rows = query("name")
    if not rows:
        return "no GPU (CPU run)"
    names = [r[0] for r in rows]
    return f"{len(names)}x {names[0]}" if len(set(names)) == 1 else ", ".join(names)


def count() -> int:
    return len(query("index") or [])


def memory_used() -> dict[str, int] | None:
    """MiB in use per GPU now."""
    rows = query("index,memory.used")
    return {r[0]: int(r[1]) for r in rows if r[1].isdigit()} if rows else None


def _epoch(stamp: str) -> float | None:
    with contextlib.suppress(ValueError):
        return dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
    return None


class Sampler:
    """nvidia-smi every 500 ms for the duration of a ``with`` block: busy % and memory per GPU.

    ``utilization.gpu`` is the share of the last sample period in which a kernel ran.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sampler:
        argv = ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits", "-lms"]
        with open(self.path, "wb") as out, contextlib.suppress(OSError):
            self.proc = subprocess.Popen([*argv, "500"], stdout=out, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def samples(self) -> list[tuple[float | None, str, int, int]]:
        """(epoch seconds, GPU, busy %, memory MiB) per sample line."""
        out = []
        text = self.path.read_text(errors="replace") if self.path.exists() else ""
        for line in text.splitlines():
            cells = [c.strip() for c in line.split(",")]
            if len(cells) == 4 and cells[2].isdigit() and cells[3].isdigit():
                out.append((_epoch(cells[0]), cells[1], int(cells[2]), int(cells[3])))
        return out

    def busy(self, start: float | None = None, end: float | None = None) -> dict[str, float] | None:
        """Mean busy % per GPU, between epoch times ``start`` and ``end`` if given, else over the
        block less two samples at each end (the ramps)."""
        by_gpu: dict[str, list[int]] = {}
        for t, gpu, pct, _ in self.samples():
            inside = t is not None and (start or 0) <= t <= (end or float("inf"))
            if inside or start is None:
                by_gpu.setdefault(gpu, []).append(pct)
        if not by_gpu:
            return None
        trim = 2 if start is None else 0
        return {
            g: round(sum(v[trim : len(v) - trim]) / len(v[trim : len(v) - trim]), 1)
            for g, v in sorted(by_gpu.items())
            if len(v) > 2 * trim
        }

    def peak_memory(self) -> dict[str, int] | None:
        """Most MiB in use per GPU during the block."""
        peak: dict[str, int] = {}
        for _, gpu, _, mib in self.samples():
            peak[gpu] = max(peak.get(gpu, 0), mib)
        return dict(sorted(peak.items())) or None


def step_stats(text: str) -> dict[str, float | None]:
    """Mean decode-step time from vLLM's periodic stats lines (running reqs / gen tokens/s)."""
    steps, running = [], []
    for m in STEP.finditer(text):
        gen, run = float(m.group(2)), int(m.group(3))
        if gen > 0 and run > 0:
            steps.append(run / gen)
            running.append(run)
    if not steps:
        return {"decode_step_ms": None, "running_mean": None}
    return {
        "decode_step_ms": round(1000 * sum(steps) / len(steps), 1),
        "running_mean": round(sum(running) / len(running), 1),
    }


@contextlib.contextmanager
def watch(engine_log: Path | None, samples: Path) -> Iterator[dict[str, Any]]:
    """GPU busy %, peak memory and engine step stats for the duration of the block."""
    start = engine_log.stat().st_size if engine_log and engine_log.exists() else 0
    stats: dict[str, Any] = {}
    with Sampler(samples) as sampler:
        yield stats
    stats["gpu_busy_pct"] = sampler.busy()
    stats["gpu_mem_peak_mib"] = sampler.peak_memory()
    if engine_log and engine_log.exists():
        with open(engine_log, "rb") as f:
            f.seek(start)
            stats.update(step_stats(f.read().decode(errors="replace")))
