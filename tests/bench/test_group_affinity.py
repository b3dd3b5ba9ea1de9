"""bench/group_affinity.py runs unattended: fake engines as processes, routers it starts itself."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import group_affinity, report
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_engine_processes() -> Iterator[list[str]]:
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "editjudge.server.testing.fake_engine",
                    "--port",
                    str(port),
                    "--latency",
                    "0.01",
                ],
                cwd=ROOT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
        yield urls
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_bench_measures_four_setups_and_writes_json(
    fake_engine_processes: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "results" / "ga.json"
    # the form bench/gpu_bench.py uses: one argument per engine URL
    argv = ["--engines", *fake_engine_processes, "--groups", "4", "--k", "3"]
    assert group_affinity.main([*argv, "--size", "64", "--out", str(out), "--commit", "test"]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["commit"] == "test" and data["meta"]["engines"] == 2
    assert data["meta"]["model"] == "fake-judge"
    setups = {(s["route"], s["policy"]): s for s in data["setups"]}
    assert set(setups) == {
        (route, policy)
        for route in ("group", "batch")
        for policy in ("least_outstanding", "affinity")
    }
    for s in setups.values():
        assert s["items"] == s["ok"] == 12 and s["errors"] == 0
        assert s["items_per_s"] > 0 and sum(s["per_engine_items"].values()) == 12
    assert setups[("group", "affinity")]["group_locality"] == 1.0
    assert "group: affinity / least_outstanding" in data["ratios"]


def test_engine_urls_may_be_comma_separated() -> None:
    args = group_affinity.parse_args(["--engines", "a:1,b:2/", "c:3", "--out", "x.json"])
    assert args.engine_list == ["a:1", "b:2", "c:3"]


def test_bench_table_renders_missing_values() -> None:
    # The table is markdown now (it was fixed-width text): one cell per column, "-" when missing.
    row = {"route": "group", "policy": "affinity", "items_per_s": 1.5, "errors": 0}
    head, rule, line = report.md_table(report.GROUP_COLUMNS, [row])
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["group", "affinity", "1.50"] and "-" in cells
    assert len(cells) == len(head.strip("|").split("|")) == len(report.GROUP_COLUMNS)
    assert rule.count("---") == len(report.GROUP_COLUMNS)
