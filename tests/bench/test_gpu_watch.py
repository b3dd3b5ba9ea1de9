"""nvidia-smi samples as the lent H200 prints them, read into busy % and memory per GPU."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bench.gpu_watch import Sampler, step_stats

# --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader,nounits
LINES = [
    "2026/11/27 18:29:26.947, 0, 10, 70000",
    "2026/11/27 18:29:26.947, 1, 0, 500",
    "2026/11/27 18:29:27.451, 0, 90, 71000",
    "2026/11/27 18:29:27.952, 0, 80, 72000",
    "2026/11/27 18:29:28.452, 0, 70, 71000",
    "2026/11/27 18:29:28.953, 0, 60, 71000",
    "2026/11/27 18:29:29.453, 0, 0, 71000",
    "garbage, 0, N/A, [Not Supported]",
]


def epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()


def test_busy_per_gpu_over_a_window_and_over_the_run(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("\n".join(LINES) + "\n")
    s = Sampler(path)
    assert len(s.samples()) == 7  # the unreadable line is skipped
    start, end = epoch("2026/11/27 18:29:27.4"), epoch("2026/11/27 18:29:28.5")
    assert s.busy(start, end) == {"0": 80.0}  # 90, 80, 70: GPU 1 has no sample in the window
    assert s.busy() == {"0": 75.0}  # 80, 70: the run less two samples at each end (ramps)
    assert s.peak_memory() == {"0": 72000, "1": 500}


def test_no_nvidia_smi_means_no_numbers(tmp_path: Path) -> None:
    s = Sampler(tmp_path / "never-written.csv")
    assert s.busy() is None and s.peak_memory() is None


def test_decode_step_from_vllm_stats_lines() -> None:
    line = (
        "Avg prompt throughput: 1200.0 tokens/s, Avg generation throughput: 800.0 tokens/s, "
        "Running: 40 reqs, Waiting: 0 reqs"
    )
    assert step_stats(line) == {"decode_step_ms": 50.0, "running_mean": 40.0}
    assert step_stats("nothing") == {"decode_step_ms": None, "running_mean": None}
