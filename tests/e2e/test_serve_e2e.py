"""End to end as users run it: ``editjudge serve`` starts a real vLLM engine (vLLM's CPU build)
with the shipped engine defaults, and ``editjudge score`` scores a file through its router with the
CLI's defaults."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from editjudge.server.box import defaults
from tests.e2e.conftest import TIMINGS, VLLM_CPU_ENV
from tests.helpers import image_bytes
from tests.processes import free_ports, stop_group, wait_until

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
# What vLLM's CPU build needs and a GPU user does not pass: bf16 (no fp16 kernels), no CUDA graphs,
# the tiny model's random weights. Every other engine flag is the launcher's default.
CPU_ONLY = ["--load-format", "dummy", "--dtype", "bfloat16", "--enforce-eager"]


def cpu_engine_env() -> dict[str, str]:
    """The caller's environment without any ``EDITJUDGE_*`` setting (the shipped defaults), plus
    what vLLM's CPU build needs offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
    return {**env, **VLLM_CPU_ENV, "PYTHONPATH": str(REPO)}


def write_edits(folder: Path, count: int) -> Path:
    (folder / "src.jpg").write_bytes(image_bytes((30, 160, 60), size=(320, 240), fmt="JPEG"))
    rows = []
    for i in range(count):
        name = f"edit{i}.png"
        (folder / name).write_bytes(image_bytes((50 * i, 90, 120), size=(320, 240)))
        rows.append({"id": f"e{i}", "image": name, "source_image": "src.jpg", "instruction": "x"})
    path = folder / "edits.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_serve_then_score_with_shipped_defaults(
    vllm_python: Path, tiny_model: Path, tmp_path: Path
) -> None:
    base = free_ports(2)
    serve = [sys.executable, "-m", "editjudge", "serve", "--gpus", "0", "--model", str(tiny_model)]
    serve += ["--port", str(base), "--engine-base-port", str(base + 1)]
    serve += ["--vllm-cmd", f"{vllm_python} -m vllm.entrypoints.openai.api_server", "--", *CPU_ONLY]
    env = cpu_engine_env()
    t = time.monotonic()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            serve, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url, engine = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    try:
        wait_until(f"{url}/ready", 600, [proc])
        TIMINGS["editjudge serve, one vLLM engine, ready (s)"] = time.monotonic() - t
        # The engine runs with the launcher's defaults: vLLM reports the memory share it took.
        metrics = httpx.get(f"{engine}/metrics", timeout=30).text
        taken = re.search(
            r'vllm:cache_config_info\{[^}]*gpu_memory_utilization="([\d.]+)"', metrics
        )
        assert taken and float(taken.group(1)) == float(defaults.GPU_MEMORY_UTILIZATION)

        edits, out = write_edits(tmp_path, 5), tmp_path / "scores.jsonl"
        score = [sys.executable, "-m", "editjudge", "score", str(edits), "-o", str(out)]
        done = subprocess.run(
            [*score, "--server", url], capture_output=True, text=True, env=env, timeout=600
        )
        assert done.returncode == 0, done.stderr
        results = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(r["id"] for r in results) == [f"e{i}" for i in range(5)]
        assert all(r["status"] == "ok" and 0 <= r["score"] <= 10 for r in results), results
        assert "5 results: 5 ok" in done.stdout
    finally:
        stop_group(proc)
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
