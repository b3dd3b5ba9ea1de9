"""The GPU benchmark's user-path phases, end to end on the CPU with fake engines: the user's own
``editjudge serve`` and ``editjudge score``, shipped defaults, results written after every run."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from bench import gpu_bench, report, userpath
from bench.procs import free_port
from editjudge.server.box import defaults
from tests.bench.fake_box import bench_argv, fake_model
from tests.processes import free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_userpath_and_curve_run_the_users_commands_with_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A setting in the benchmark's own environment must not reach serve or score: if this one
    # did, the router would suggest 2 items in flight instead of 512.
    monkeypatch.setenv("EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND", "1")
    model = fake_model(tmp_path)
    out = tmp_path / "out"
    argv = [*bench_argv(["userpath", "curve"], model, tmp_path), "--image-side", "48"]
    argv += ["--userpath-pairs", "24", "--one-engine-pairs", "8", "--warmup-pairs", "2"]
    argv += ["--curve-inflight", "16,32", "--curve-items", "40"]
    assert gpu_bench.main(argv) == 0

    assert sorted(p.name for p in out.iterdir()) == ["curve.json", "userpath.json"]
    phase = json.loads((out / "userpath.json").read_text())
    assert "error" not in phase, phase.get("error")
    assert (phase["commit"], phase["model"]) == ("test", f"{model} (TinyVL)")
    assert phase["card"] == "no GPU (CPU run)"
    flags = phase["serve_command"][phase["serve_command"].index("serve") + 1 :]
    assert flags[flags.index("--") :] == ["--", "--load-format", "dummy"]  # no other engine flag
    assert phase["serve_editjudge_env"] == [] and phase["engine_args_beyond_defaults"] == []
    assert phase["warmup"]["ok"] == 2
    runs = {r["name"]: r for r in phase["runs"]}
    assert list(runs) == ["userpath-2", "userpath-1", "userpath-2-matched"]
    # The router suggests what its engines' windows may grow to (256 requests each); the
    # matched run gives each of the two engines as many pairs as the one engine had.
    for name, pairs, in_flight in (
        ("userpath-2", 24, 512),
        ("userpath-1", 8, 256),
        ("userpath-2-matched", 16, 512),
    ):
        run = runs[name]
        assert run["command"][-2:] == ["--server", run["command"][-1]]  # CLI defaults only
        assert (run["items"], run["ok"], run["errors"], run["parse_rate"]) == (
            pairs,
            pairs,
            {},
            1.0,
        )
        assert run["in_flight"] == in_flight and run["rc"] == 0 and run["items_per_s"] > 0
        assert run["gpu_busy_pct"] is None  # no nvidia-smi here: no made-up number
        # vLLM's own counters, per engine behind the router: two viescore calls per item
        assert sum(e["requests"] for e in run["engine_counters"].values()) == 2 * pairs
        assert len(run["engine_counters"]) == (1 if name == "userpath-1" else 2)
    for key, run_name in (
        ("scaling_efficiency", "userpath-2"),
        ("scaling_efficiency_matched", "userpath-2-matched"),
    ):
        efficiency = runs[run_name]["items_per_s"] / (2 * runs["userpath-1"]["items_per_s"])
        assert phase[key]["items_per_s"] == pytest.approx(efficiency, abs=1e-3)

    curve = json.loads((out / "curve.json").read_text())
    points = [(r["name"], r["in_flight"], r["items"], r["ok"]) for r in curve["runs"]]
    assert points == [("curve-16", 16, 40, 40), ("curve-32", 32, 40, 40)]
    assert curve["runs"][0]["command"][-4:] == ["--batch-size", "16", "--concurrency", "1"]

    text = report.render(out)
    assert text.count("card no GPU (CPU run)") == 2 and "| userpath-2 | 2 | 512 | 24 |" in text


def test_dp_runs_the_userpath_workload_with_the_in_flight_of_n_engines(tmp_path: Path) -> None:
    # fake_vllm takes --data-parallel-size and serves as one endpoint, like vLLM's own DP.
    argv = ["dp", "--model-dir", str(tmp_path), "--gpus", "2", "--out", str(tmp_path / "o")]
    argv += ["--work", str(tmp_path / "w"), "--engine-base-port", str(free_ports(4))]
    argv += ["--vllm-cmd", f"{sys.executable} {ROOT / 'tests/fakes/fake_vllm.py'}"]
    argv += ["--image-side", "32", "--userpath-pairs", "20"]
    assert gpu_bench.main(argv) == 0
    phase = json.loads((tmp_path / "o" / "dp.json").read_text())
    assert "error" not in phase, phase.get("error")
    # The same engine settings as editjudge serve's engines: its defaults, nothing else.
    command = phase["dp_command"]
    assert "--data-parallel-size" in command
    assert command[command.index("--max-model-len") + 1] == str(defaults.MAX_MODEL_LEN)
    assert "--limit-mm-per-prompt" in command and "--mm-processor-kwargs" in command
    (run,) = phase["runs"]
    assert (run["name"], run["kind"], run["engines"]) == ("dp-userpath-2", "userpath", 2)
    assert run["in_flight"] == 512 and (run["items"], run["ok"]) == (20, 20)  # as for 2 engines
    assert "window ceiling 512" in run["router"]  # not one engine's 256 for the two GPUs


def test_a_serve_that_cannot_start_is_recorded(tmp_path: Path) -> None:
    argv = ["userpath", "--model-dir", str(tmp_path), "--gpus", "1", "--out", str(tmp_path / "o")]
    argv += ["--work", str(tmp_path / "w"), "--port", str(free_port()), "--image-side", "16"]
    argv += ["--vllm-cmd", str(tmp_path / "no-such-vllm"), "--userpath-pairs", "1"]
    argv += ["--warmup-pairs", "1", "--start-timeout", "60"]
    assert gpu_bench.main(argv) == 0
    phase = json.loads((tmp_path / "o" / "userpath.json").read_text())
    assert "editjudge serve exited with 1" in phase["error"] and phase["runs"] == []
    assert "cannot start the engine command" in phase["serve_log_tail"]


def test_an_engine_given_up_fails_the_start_at_once(tmp_path: Path) -> None:
    """GPU 1's port is taken: serve gives that engine up and serves with GPU 0; the bench says so
    within seconds instead of waiting out --start-timeout for an engine that will never come."""
    base = free_ports(2)
    argv = bench_argv(["userpath"], fake_model(tmp_path), tmp_path, engine_base_port=base)
    argv += ["--image-side", "16", "--userpath-pairs", "1", "--warmup-pairs", "1"]
    argv += ["--start-timeout", "300"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        t0 = time.monotonic()
        assert gpu_bench.main(argv) == 0
        waited = time.monotonic() - t0
    phase = json.loads((tmp_path / "out" / "userpath.json").read_text())
    assert "gave an engine up" in phase["error"] and phase["runs"] == []
    assert waited < 120, waited  # the launcher's restarts (1 + 2 + 4 s), not the 300 s timeout


def test_an_earlier_runs_log_in_the_same_work_folder_does_not_fail_the_start(
    tmp_path: Path,
) -> None:
    """Device calls on a machine kept warm share --work: serve.log then holds the last call's
    output, and an engine that call gave up must not fail this call's start."""
    argv = bench_argv(["userpath"], fake_model(tmp_path), tmp_path)
    argv += ["--image-side", "16", "--userpath-pairs", "2", "--one-engine-pairs", "1"]
    argv += ["--warmup-pairs", "1"]
    (tmp_path / "work").mkdir()
    old = "editjudge: GPU 1 stays down until serve is restarted; carrying on with 1 of 2 engines\n"
    (tmp_path / "work" / "serve.log").write_text(old)
    assert gpu_bench.main(argv) == 0
    phase = json.loads((tmp_path / "out" / "userpath.json").read_text())
    assert "error" not in phase, phase.get("error")
    assert [r["ok"] for r in phase["runs"]] == [2, 1]  # userpath-2, userpath-1


def test_curve_points_default_to_twice_their_load_and_take_an_exact_count_when_given() -> None:
    args = gpu_bench.parse(
        ["curve", "--model-dir", "m", "--out", "o", "--curve-inflight", "64,1024"]
    )
    sets = userpath.pair_sets(args, ["curve"], 1)
    assert (sets["curve-64"][1], sets["curve-1024"][1]) == (256, 2048)
    args.curve_items = 300  # one GPU holds ~60 requests: the router queues the rest of 1,024
    sets = userpath.pair_sets(args, ["curve"], 1)
    assert (sets["curve-64"][1], sets["curve-1024"][1]) == (300, 300)
    assert sets["curve-64"][0] != sets["curve-1024"][0]  # disjoint pairs per point
