"""The CPU overhead benchmark in miniature: fake engines, a router serving the bench's one-call
protocol (started as a file, the way another checkout is served), the table and its files."""

from __future__ import annotations

import json
from pathlib import Path

from bench import router_overhead
from bench.procs import free_port


def test_short_run_measures_direct_and_the_router(tmp_path: Path) -> None:
    argv = ["--duration", "1.5", "--open-duration", "1", "--warmup", "0.5", "--concurrency", "4"]
    argv += ["--rate", "20", "--latency", "0.01", "--vllm-router", "", "--out", str(tmp_path)]
    argv += ["--port", str(free_port() // 2), "--tag", "t"]
    assert router_overhead.main(argv) == 0
    data = json.loads((tmp_path / "router_overhead-t.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == ["direct", "editjudge", "editjudge (viescore)"]
    for row in rows.values():
        assert row["peak"]["req_s"] > 0 and row["peak"]["errors"] == 0
        assert row["fixed"]["ok"] > 0 and row["fixed"]["errors"] == 0
    assert rows["editjudge"]["peak"]["cpu_ms_per_req"]["router"] > 0  # the router was measured
    table = (tmp_path / "router_overhead-t.md").read_text()
    assert table.startswith("Router overhead:") and "| editjudge (viescore) |" in table


def test_the_floor_router_answers_score_and_passes_chat_through(tmp_path: Path) -> None:
    argv = ["--duration", "1", "--open-duration", "1", "--warmup", "0.3", "--concurrency", "4"]
    argv += ["--rate", "20", "--latency", "0.01", "--vllm-router", "", "--out", str(tmp_path)]
    argv += ["--port", str(free_port() // 2), "--no-viescore", "--floor"]
    assert router_overhead.main(argv) == 0
    rows = {
        r["name"]: r for r in json.loads((tmp_path / "router_overhead.json").read_text())["rows"]
    }
    floors = ["python floor (/score)", "python floor (pass-through)"]
    assert list(rows) == ["direct", "editjudge", *floors]
    for name in floors:  # ok = a 200 holding the score (/score) or the engine's choices (chat)
        peak = rows[name]["peak"]
        assert peak["ok"] > 0 and peak["errors"] == 0
        assert peak["cpu_ms_per_req"]["router"] > 0
