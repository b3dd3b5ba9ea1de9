"""The report: numbers from outcomes, and the GPU phase files as tables that name their card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import report
from bench.loadgen import Outcome, Reply
from bench.score_cli import ScoreRun

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


def userpath_phase(engine_args: list[str]) -> dict[str, object]:
    def run(
        name: str, engines: int, ips: float, ok: int, errors: dict[str, int]
    ) -> dict[str, object]:
        return {"name": name, "kind": "userpath", "engines": engines, "in_flight": 32 * engines,
                "items": ok + sum(errors.values()), "seconds": 10.0, "items_per_s": ips,
                "steady_items_per_s": ips, "ok": ok, "parse_rate": ok / (ok + sum(errors.values())),
                "errors": errors, "gpu_busy_pct": {"0": 80.0, "1": 70.5},
                "gpu_mem_peak_mib": {"0": 2048, "1": 1024}}  # fmt: skip

    return {
        "phase": "userpath", "card": "2x Test GPU", "model": "/m (Arch)", "commit": "abc",
        "serve_command": ["editjudge", "serve", "--gpus", "all", "--", "--load-format", "dummy"],
        "engine_args_beyond_defaults": engine_args, "why_extra_args": "CPU",
        "runs": [run("userpath-2", 2, 30.0, 890, {"truncated_reply": 10}),
                 run("userpath-1", 1, 20.0, 300, {})],
    }  # fmt: skip


def test_userpath_table_says_what_parsed_and_the_scaling(tmp_path: Path) -> None:
    (tmp_path / "userpath.json").write_text(json.dumps(userpath_phase([])))
    curve = {"phase": "curve", "card": "2x Test GPU", "model": "/m (Arch)", "commit": "abc",
             "runs": [{"name": "curve-64", "kind": "curve", "in_flight": 64, "items": 128,
                       "items_per_s": 12.5, "ok": 128, "parse_rate": 1.0, "errors": {},
                       "gpu_busy_pct": {"0": 50.0}}]}  # fmt: skip
    (tmp_path / "curve.json").write_text(json.dumps(curve))
    text = report.render(tmp_path)
    assert (
        "**User path: editjudge serve + editjudge score, shipped defaults**: card 2x Test GPU"
        in text
    )
    assert (
        "| userpath-2 | 2 | 64 | 900 | 10.0 | 30.0 | 30.0 | 890 (98.9%) | truncated_reply 10 "
        "| 80/70 | 2.0/1.0 |" in text
    )
    assert "scaling efficiency items/s(N) / (N x items/s(1)) = 0.75" in text
    assert "**In-flight curve" in text and "| 64 | 128 | 12.5 | - | 50 | 128 (100.0%) | 0 |" in text
    assert (
        "NOT the user path" not in text
        and "`editjudge serve --gpus all -- --load-format dummy`" in text
    )


def test_extra_engine_arguments_are_called_out(tmp_path: Path) -> None:
    (tmp_path / "userpath.json").write_text(json.dumps(userpath_phase(["--enforce-eager"])))
    assert "NOT the user path for the engines: extra engine arguments --enforce-eager" in (
        report.render(tmp_path)
    )


def test_a_failed_phase_is_shown_not_dropped(tmp_path: Path) -> None:
    phase = {
        "phase": "userpath",
        "card": "c",
        "error": "TimeoutError: engines not healthy",
        "runs": [],
    }
    (tmp_path / "userpath.json").write_text(json.dumps(phase))
    assert "userpath (failed) on c: TimeoutError: engines not healthy" in report.render(tmp_path)


def test_steady_rate_leaves_out_the_start_and_the_tail() -> None:
    # 100 results: 10 after 5 s (start-up), then 80 more in 4 s, the last 10 after 10 more s.
    progress = [(100.0, 0), (105.0, 10), (107.0, 50), (109.0, 90), (119.0, 100)]
    results = [{"status": "ok"}] * 99 + [
        {"status": "error", "error": {"code": "x", "message": "m"}}
    ]
    run = ScoreRun(
        ["editjudge"],
        0,
        100.0,
        20.0,
        progress,
        results,
        "2 request(s) of up to 16 items in flight: ...",
    )
    s = run.summary()
    assert s["steady_items_per_s"] == 20.0 and s["items_per_s"] == 5.0
    assert (s["ok"], s["errors"], s["parse_rate"], s["in_flight"]) == (99, {"x": 1}, 0.99, 32)
    assert s["first_result_s"] == 5.0 and s["error_samples"]["x"].startswith("m")


def test_no_steady_rate_when_nearly_every_item_was_in_flight_at_once() -> None:
    """256 items with 256 in flight (the H100 lease's userpath-1): the 10%-90% window timed the
    burst of completions at the end (11.08 "steady" items/s against 4.74 overall)."""
    progress = [(100.0, 0), (110.0, 16), (135.0, 32), (140.0, 128), (150.0, 240), (154.0, 256)]
    results = [{"status": "ok"}] * 256
    plan = "16 request(s) of up to 16 items in flight: ..."
    burst = ScoreRun(["editjudge"], 0, 100.0, 54.0, progress, results, plan)
    assert burst.window() is None and burst.summary()["steady_items_per_s"] is None
    assert burst.summary()["items_per_s"] == 4.74
    doubled = [(t, 2 * n) for t, n in progress]
    longer = ScoreRun(["editjudge"], 0, 100.0, 54.0, doubled, results * 2, plan)
    assert longer.window() is not None  # twice the items in flight: a rate again


def test_levers_render_one_row_per_arm_with_the_ratio_to_default(tmp_path: Path) -> None:
    lease = RESULTS.parent / "gpu-h100x1-2026-12-07-dcbd662"
    phase = json.loads((lease / "levers.json").read_text())
    phase["runs"].append({"name": "pair-3", "arms": ["api2"], "error": "TimeoutError: no engine"})
    (tmp_path / "levers.json").write_text(json.dumps(phase))
    text = report.render(tmp_path)
    assert "(phase levers)**: card 1x NVIDIA H100 80GB HBM3" in text and "commit dcbd662" in text
    assert (
        "| pair-1 | mem95 | `--gpu-memory-utilization 0.95` | 1 | 160 | 160 (100.0%) | 5.12 | 85.6 "
        "| 76.1 | 0.154 | 244.1 | 13.32 | 227 |" in text
    )
    assert "| pair-0 | default | (shipped defaults) |" in text
    assert "- fp8kv (pair-2) / default (pair-0): 1.32x items/s" in text
    assert "pair-3 (failed) on 1x NVIDIA H100 80GB HBM3: TimeoutError: no engine" in text


def test_levers_name_the_workload_a_run_had() -> None:
    shared = RESULTS.parent / "gpu-h100x1-2026-12-08-697d70a" / "call2-30b-shared-sources"
    text = report.render(shared)
    assert "| pair-1 | noprefix | `--no-enable-prefix-caching` | 8 | 160 |" in text
    assert "| 61.8 | - | 248.3 |" in text  # no prefix cache, no hit rate
    assert "- noprefix (pair-1) / default (pair-0): 0.74x items/s" in text
