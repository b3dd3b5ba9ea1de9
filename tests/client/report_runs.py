"""Input files and results files for report tests: images on disk, two runs over the same ids,
with errors, a missing result, ``meta`` fields and hostile text in the judge's reasoning."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from editjudge.client import ScoreResult

CATEGORIES = ("colour", "object", "style")
HOSTILE = '<script>document.title="pwned"</script><img src="http://127.0.0.1:9/x.png">'


@dataclass
class Runs:
    inputs: Path
    results_a: Path
    results_b: Path
    a: list[ScoreResult]
    b: list[ScoreResult]
    missing: str  # an input id with no result in run A


def picture(path: Path, seed: int, size: tuple[int, int] = (320, 240)) -> None:
    rnd = random.Random(seed)
    image = Image.new("RGB", size, (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = rnd.randrange(size[0] - 40), rnd.randrange(size[1] - 40)
        colour = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        draw.ellipse([x, y, x + rnd.randrange(20, 120), y + rnd.randrange(20, 120)], fill=colour)
    image.save(path)


def result(item_id: str, rnd: random.Random, n: int, shift: float) -> ScoreResult:
    meta = {"category": CATEGORIES[n % 3], "difficulty": 1 + n % 3}
    if n % 9 == 4:
        failed = ScoreResult.failed(item_id, "unparseable_reply", "the judge's reply has no score")
        return ScoreResult.model_validate({**failed.model_dump(), "raw": "I like it", "meta": meta})
    semantics = rnd.randint(0, 10)
    quality = rnd.randint(0, 10)
    score = round(min(10.0, max(0.0, (semantics * quality) ** 0.5 + shift)), 3)
    return ScoreResult.model_validate(
        {
            "id": item_id,
            "status": "ok",
            "score": score,
            "scores": {"semantics": semantics, "quality": quality},
            "reasoning": f"item {item_id}: follows the instruction {semantics}/10. "
            + (HOSTILE if n == 1 else ""),
            "backend": "http://engine-0:8000",
            "latency_ms": 100.0 + n,
            "fingerprint": {"model": "judge-vl", "protocol": "viescore", "template_hash": "ab12"},
            "meta": meta,
        }
    )


def make_runs(folder: Path, n: int = 30, seed: int = 7) -> Runs:
    """``n`` items; run A leaves the last one out; run B differs by seed and a score shift."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        picture(images / f"src{i % 10}.png", seed=1000 + i % 10)  # ten shared sources
        picture(images / f"edit{i}.jpg", seed=i)
        rows.append(
            {
                "id": f"e{i:03d}",
                "image": f"images/edit{i}.jpg",
                "source_image": f"images/src{i % 10}.png",
                "instruction": f"make object {i} {CATEGORIES[i % 3]}",
            }
        )
    inputs = folder / "inputs.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rnd_a, rnd_b = random.Random(seed), random.Random(seed + 1)
    a = [result(r["id"], rnd_a, i, 0.0) for i, r in enumerate(rows[:-1])]
    b = [result(r["id"], rnd_b, i + 1, 0.5) for i, r in enumerate(rows)]
    paths = folder / "run-a.jsonl", folder / "run-b.jsonl"
    for path, results in zip(paths, (a, b), strict=True):
        path.write_text("".join(r.model_dump_json() + "\n" for r in results))
    return Runs(inputs, paths[0], paths[1], a, b, rows[-1]["id"])
