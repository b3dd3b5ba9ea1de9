"""End to end: ``editjudge.Reward`` with torch tensors, through the router, on real vLLM (CPU).

The reward runs in the vLLM venv, the one environment here with torch: what a trainer would do.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import TIMINGS

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

TRAINER = """
import json, sys
import torch
from editjudge import Reward

torch.manual_seed(0)
prompts, k = 2, 3
sources = [torch.rand(3, 224, 224) for _ in range(prompts)]
images = list(torch.rand(prompts * k, 3, 224, 224))  # CHW floats in [0, 1]
instructions = [f"make the picture {c}" for c in ("warmer", "brighter") for _ in range(k)]
source_images = [sources[i // k] for i in range(prompts * k)]
groups = [i // k for i in range(prompts * k)]
with Reward(sys.argv[1], protocol="expected") as reward:
    grouped = reward(images, instructions, source_images, group_ids=groups)
    z = reward.last_z_scores
    ranks = [r.rank for r in reward.last_results]
    plain = reward(images[:2], instructions[:2], source_images[:2])
print(json.dumps({"grouped": grouped, "z": z, "ranks": ranks, "plain": plain}))
"""


def test_reward_scores_torch_tensors_in_groups_and_alone(
    router_url: str, vllm_python: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t = time.monotonic()
    run = subprocess.run(
        [str(vllm_python), "-c", TRAINER, router_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    TIMINGS["Reward: 2 groups of 3 + 2 plain, torch (s)"] = time.monotonic() - t
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for score in out["grouped"] + out["plain"]:
        assert not math.isnan(score) and 0 <= score <= 10, out
    for g in range(2):
        scores, z = out["grouped"][3 * g : 3 * g + 3], out["z"][3 * g : 3 * g + 3]
        std = statistics.pstdev(scores)
        expected = [(s - statistics.fmean(scores)) / std if std else 0.0 for s in scores]
        assert z == pytest.approx(expected, abs=1e-3)
        assert min(out["ranks"][3 * g : 3 * g + 3]) == 1
