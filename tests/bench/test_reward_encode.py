"""bench/reward_encode.py runs, and what it measures is what Reward sends (no timing asserted)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bench import reward_encode


def test_runs_and_writes_one_row_per_input_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert reward_encode.main(["--repeat", "2", "--warmup", "0", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["input"] for r in data["rows"]][:2] == ["pil", "numpy"]
    for row in data["rows"]:
        assert row["total_cpu_ms"] > 0 and row["bytes"] > 10_000
    table = capsys.readouterr().out
    assert "| pil | CPU |" in table and data["machine"] in table


def test_the_picture_is_a_1024_square_that_encodes_like_a_photo() -> None:
    picture = reward_encode.picture(noise=4.0, seed=1)
    assert picture.shape == (1024, 1024, 3) and str(picture.dtype) == "uint8"
    out = io.BytesIO()
    Image.fromarray(picture).save(out, "JPEG", quality=95)
    assert 100_000 < len(out.getvalue()) < 1_000_000  # neither flat nor pure noise
