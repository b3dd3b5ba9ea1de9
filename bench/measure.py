"""One measured ``editjudge score`` run: wall time, what parsed, GPU busy % (nvidia-smi), the
router's windows (``GET /backends``) and vLLM's own counters per engine around it."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import gpu_watch
from bench.engine_counters import EngineCounters
from bench.procs import log
from bench.score_cli import run_score


def measure(
    args: argparse.Namespace,
    name: str,
    input_file: Path,
    url: str,
    options: Sequence[str] = (),
    **facts: Any,
) -> dict[str, Any]:
    """One ``editjudge score`` run with nvidia-smi sampling around it."""
    work = args.work
    with (
        gpu_watch.Sampler(work / f"gpu-{name}.csv") as sampler,
        WindowWatch(url) as windows,
        EngineCounters(url) as counters,
    ):
        run = run_score(input_file, work / f"{name}.jsonl", url, [*options], work / f"{name}.log")
    result = {"name": name, **facts, **run.summary(), "engine_windows": windows.summary()}
    result["edits_per_source"] = getattr(args, "edits_per_source", 1)
    result["engine_counters"] = counters.views
    steady = run.window()
    result["gpu_busy_pct"] = sampler.busy()
    result["gpu_busy_pct_steady"] = sampler.busy(steady[0], steady[1]) if steady else None
    result["gpu_mem_peak_mib"] = sampler.peak_memory()
    log(
        f"{name}: {result['items']} items in {result['seconds']}s = {result['items_per_s']}/s "
        f"(steady {result['steady_items_per_s']}), {result['ok']} parsed, errors "
        f"{result['errors'] or 0}, busy {result['gpu_busy_pct']}, {result['cli_plan']}"
    )
    return result


class WindowWatch:
    """Samples the router's ``GET /backends`` once a second during a run: each engine's window
    (what the router let it hold) and what the engine said it ran."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: dict[str, list[tuple[int, int | None]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> WindowWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                for b in httpx.get(f"{self.url}/backends", timeout=2).json():
                    self.samples.setdefault(b["url"], []).append((b["window"], b["running"]))

    def summary(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for url, samples in self.samples.items():
            windows = [w for w, _ in samples]
            running = [r for _, r in samples if r is not None]
            out[url] = {
                "window_mean": round(sum(windows) / len(windows), 1),
                "window_max": max(windows),
                "running_mean": round(sum(running) / len(running), 1) if running else None,
            }
        return out
