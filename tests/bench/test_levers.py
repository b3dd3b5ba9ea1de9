"""bench.levers: arms parsed as the help says, the engine's counters turned into per-step and
per-request figures, and a pair of arms run side by side on fake engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu_bench
from bench.engine_counters import engine_view
from bench.levers import Arm
from bench.spy import top_frames
from tests.bench.fake_box import bench_argv, fake_model
from tests.processes import free_ports


def test_an_arm_splits_serve_options_engine_arguments_and_router_settings() -> None:
    arm = Arm.parse("short=--api-server-count 6 EDITJUDGE_REASONING=false -- --max-num-seqs 8")
    assert arm.name == "short"
    assert arm.serve_options == ("--api-server-count", "6")
    assert arm.engine_args == ("--max-num-seqs", "8")
    assert arm.router_env == {"EDITJUDGE_REASONING": "false"}
    assert Arm.parse("default=") == Arm("default")


def test_engine_view_from_two_scrapes() -> None:
    before = {"vllm:iteration_tokens_total_count": 100.0, "vllm:iteration_tokens_total_sum": 1e4}
    after = {
        "vllm:iteration_tokens_total_count": 300.0,
        "vllm:iteration_tokens_total_sum": 1e4 + 200 * 500,
        "vllm:e2e_request_latency_seconds_count": 40.0,
        "vllm:e2e_request_latency_seconds_sum": 80.0,
        "vllm:generation_tokens_total": 4000.0,
        "vllm:mm_cache_queries_total": 10.0,
        "vllm:mm_cache_hits_total": 4.0,
    }
    view = engine_view(before, after, seconds=10.0)
    assert (view["steps"], view["step_ms_mean"], view["tokens_per_step"]) == (200, 50.0, 500.0)
    assert (view["requests"], view["e2e_ms_per_request"]) == (40, 2000.0)
    assert view["generated_tokens_per_request"] == 100.0
    assert view["mm_cache_hit_rate"] == 0.4 and view["prefix_cache_hit_rate"] is None
    assert engine_view({}, {}, 1.0)["step_ms_mean"] is None  # nothing ran: no made-up figure


def test_top_frames_share_own_and_inclusive_samples(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text("main;step;fill_bitmask 6\nmain;step;forward 3\nmain;idle 1\n")
    frames = top_frames(raw)
    assert frames["samples"] == 10
    assert frames["own"] == {"fill_bitmask": 0.6, "forward": 0.3, "idle": 0.1}
    assert frames["inclusive"]["step"] == 0.9 and frames["inclusive"]["main"] == 1.0


def test_a_pair_of_arms_runs_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITJUDGE_REASONING", raising=False)
    out, work = tmp_path / "out", tmp_path / "work"
    # each arm's serve takes --port + 10 (GPU + 1) and the next port: a block of free ones
    argv = bench_argv(["levers"], fake_model(tmp_path), tmp_path, port=free_ports(24))
    argv += ["--image-side", "32", "--warmup-pairs", "2", "--pairs", "6"]
    argv += ["--arm", "short=EDITJUDGE_REASONING=false -- --max-num-seqs 8"]
    argv += ["--pair", "default,short"]
    assert gpu_bench.main(argv) == 0
    doc = json.loads((out / "levers.json").read_text())
    (pair,) = doc["runs"]
    assert pair["arms"] == ["default", "short"] and "error" not in pair, pair.get("error")
    runs = {r["arm"]: r for r in pair["runs"]}
    assert [(runs[a]["gpu"], runs[a]["items"], runs[a]["ok"]) for a in runs] == [
        (0, 6, 6),
        (1, 6, 6),
    ]
    assert runs["short"]["engine_args"] == ["--max-num-seqs", "8"]
    assert "--max-num-seqs" in (work / "serve-short.log").read_text()
    assert "--max-num-seqs" not in (work / "serve-default.log").read_text()
    # Each arm's router had its own settings: only the default one asked for a reasoning.
    said = {a: [json.loads(x)["reasoning"] for x in (work / f"run-{a}.jsonl").open()] for a in runs}
    assert all(said["default"]) and not any(said["short"])
