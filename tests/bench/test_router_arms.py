"""bench.router_arms: router settings priced on the launcher's own engines, one arm after another,
each through a second router that has the arm's settings and nothing else."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench import gpu_bench, report, router_arms
from tests.bench.fake_box import bench_argv, fake_model


def test_arms_are_router_settings_only_with_default_first() -> None:
    args = argparse.Namespace(
        router_arm=["free=EDITJUDGE_CONSTRAIN_REPLIES=false", "two=EDITJUDGE_A=1 EDITJUDGE_B='x y'"]
    )
    assert router_arms.arms(args) == {
        "default": {},
        "free": {"EDITJUDGE_CONSTRAIN_REPLIES": "false"},
        "two": {"EDITJUDGE_A": "1", "EDITJUDGE_B": "x y"},
    }
    for bad in ("eng=-- --max-num-seqs 8", "=EDITJUDGE_A=1", "opt=--api-server-count 2"):
        with pytest.raises(SystemExit, match="router settings only"):
            router_arms.arms(argparse.Namespace(router_arm=[bad]))


def test_each_arm_scores_fresh_pairs_through_its_own_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDITJUDGE_REASONING", raising=False)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [*bench_argv(["routers"], fake_model(tmp_path), tmp_path), "--image-side", "32"]
    argv += ["--one-engine-pairs", "3", "--warmup-pairs", "2"]
    argv += ["--router-arm", "short=EDITJUDGE_REASONING=false"]
    assert gpu_bench.main(argv) == 0

    phase = json.loads((out / "routers.json").read_text())
    assert "error" not in phase, phase.get("error")
    runs = {r["arm"]: r for r in phase["runs"]}
    assert list(runs) == ["default", "short"]
    for arm, env in (("default", {}), ("short", {"EDITJUDGE_REASONING": "false"})):
        run = runs[arm]
        assert (run["name"], run["router_env"], run["engines"]) == (f"arm-{arm}", env, 2)
        assert (run["items"], run["ok"]) == (6, 6)  # 3 pairs per engine, every reply parsed
        assert run["command"][-2:] == ["--server", run["command"][-1]]  # CLI defaults only
        assert set(run["engine_counters"]) == set(runs["default"]["engine_counters"])
    # Only the arm's own router had its setting: only the default one asked for a reasoning.
    said = {a: [json.loads(x)["reasoning"] for x in (work / f"arm-{a}.jsonl").open()] for a in runs}
    assert all(said["default"]) and not any(said["short"])
    # Fresh pairs per arm, none shared with the warm-up or with each other.
    ids = {a: {json.loads(x)["id"] for x in (work / f"arm-{a}.jsonl").open()} for a in runs}
    assert len(ids["default"]) == len(ids["short"]) == 6 and not ids["default"] & ids["short"]
    table = report.render(out)
    assert "Router settings on the same engines" in table
    assert "| short | EDITJUDGE_REASONING=false | 6 | 6 (100.0%)" in table
