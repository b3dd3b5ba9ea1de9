"""The report: numbers from outcomes, and the GPU phase files as tables that name their card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import report
from bench.loadgen import Outcome, Reply

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu-h100x4-2026-11-27"


def test_tally_counts_items_and_keeps_zero_counters() -> None:
    a, b = Outcome(first=10.0, last=12.0), Outcome(first=10.5, last=14.0)
    a.add(Reply((("e1", "ok"), ("e1", "ok")), {"cached": 0}), 0.5)
    mixed = (("e2", "ok"), ("e1", "ok"), ("e1", "parse_error"))
    b.add(Reply(mixed, {"cached": 0}, "bad json"), 1.5)
    t = report.tally([a, b])
    assert (t["items"], t["ok"], t["errors"]) == (5, 4, {"parse_error": 1})
    assert t["seconds"] == 4.0 and t["items_per_s"] == 1.25
    assert t["share"] == {"e1": 0.75, "e2": 0.25}
    assert t["counters"] == {"cached": 0}  # a zero sum is still reported
    assert t["group_locality"] == 0.5 and t["error_sample"] == "bad json"
    assert t["p50_s"] == 0.5  # only requests whose items all parsed carry a latency


def test_committed_results_still_render_with_their_card(tmp_path: Path) -> None:
    for name in ("dp", "placement", "hf"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    text = report.render(tmp_path)
    assert "**Load generator runs**: card 4x NVIDIA H100 80GB HBM3" in text
    assert "| dp-4 | 1 | 256 | 65.23 |" in text and "router-4-unpinned" in text


def test_a_failed_phase_is_shown_not_dropped(tmp_path: Path) -> None:
    phase = {
        "phase": "dp",
        "card": "c",
        "error": "TimeoutError: engines not healthy",
        "runs": [],
    }
    (tmp_path / "dp.json").write_text(json.dumps(phase))
    assert "dp (failed) on c: TimeoutError: engines not healthy" in report.render(tmp_path)
