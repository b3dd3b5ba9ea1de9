"""The load-generator phase ``scaling`` end to end on fake engines: every run named and recorded
as the committed results are, direct and through editjudge, readable by the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import gpu_bench, report
from bench.procs import free_port
from tests.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_scaling_phase_on_fake_engines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["scaling", "--model-dir", str(tmp_path), "--gpus", "2", "--out", str(out)]
    argv += ["--work", str(tmp_path / "work"), "--commit", "test", "--port", str(free_port())]
    argv += ["--engine-base-port", str(free_ports(4)), "--skip-groups", "--loadgen-cpus", "0"]
    argv += ["--vllm-cmd", f"{sys.executable} {ROOT / 'tests/fakes/fake_vllm.py'}"]
    argv += ["--items", "6", "--conc", "3", "--procs", "2"]
    assert gpu_bench.main(argv) == 0
    phase = json.loads((out / "scaling.json").read_text())
    assert "error" not in phase, phase.get("error")
    assert (phase["card"], phase["commit"], phase["gpus"]) == ("no GPU (CPU run)", "test", 2)
    runs = {r["name"]: r for r in phase["runs"]}
    assert list(runs) == ["direct-1", "direct-2", "router-1", "router-2"]
    expected = {"direct-1": (6, 3), "direct-2": (12, 6), "router-1": (6, 3), "router-2": (500, 6)}
    for name, (items, conc) in expected.items():
        run = runs[name]
        assert (run["n"], run["concurrency"], run["ok"], run["errors"]) == (items, conc, items, {})
        assert run["items_per_s"] > 0 and run["gpu_busy_pct"] is None
    assert len(runs["direct-2"]["share"]) == 2 and len(runs["router-2"]["share"]) == 2
    assert "| router-2 | 1 | 6 |" in report.render(out)
