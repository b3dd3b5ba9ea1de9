"""End to end: the client SDK and `editjudge score` via the router on two real vLLM servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from editjudge.client import Client, Item
from tests.e2e.conftest import TIMINGS
from tests.helpers import image_bytes

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def test_sdk_score_many_in_order(router_url: str, vllm_servers: list[str]) -> None:
    big_source = image_bytes((30, 160, 60), size=(1200, 900), fmt="JPEG")
    items = [
        Item(image_bytes((40 + 25 * i, 90, 120), size=(256, 256)), f"paint {i} orange", big_source)
        for i in range(6)
    ]
    with Client(router_url, max_pixels=200_000) as judge:
        t = time.monotonic()
        results = judge.score_many(items)
        TIMINGS["SDK score_many of 6 (s)"] = time.monotonic() - t
    assert [r.id for r in results] == [str(i) for i in range(6)]
    assert all(r.ok and r.score is not None and 0 <= r.score <= 10 for r in results), results
    assert {r.backend for r in results} <= set(vllm_servers)


def test_cli_scores_a_file_and_resumes(router_url: str, tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"e{i}.png").write_bytes(image_bytes((60 * i, 90, 120), size=(256, 256)))
    (tmp_path / "src.png").write_bytes(image_bytes((30, 160, 60), size=(256, 256)))
    rows = [
        {"id": f"r{i}", "image": f"e{i}.png", "source_image": "src.png", "instruction": f"edit {i}"}
        for i in range(4)
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "editjudge", "score", str(tmp_path / "in.jsonl")]
    command += ["-o", str(out), "--server", router_url]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in results) == ["r0", "r1", "r2", "r3"]
    assert all(r["status"] == "ok" and 0 <= r["score"] <= 10 for r in results), results
    assert "4 results: 4 ok" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "4 already in" in again.stderr
    assert len(out.read_text().splitlines()) == 4
