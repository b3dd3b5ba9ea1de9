"""A small synthetic data set for ``editjudge demo``: drawn landscapes and edits of them.

Each item is a source scene (sky, sun, grass), an edited copy and the instruction that edit
follows. Drawn with Pillow, so the demo needs no downloads; seeded, so every run draws the same.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

_SIZE = (384, 256)


@dataclass(frozen=True)
class _Scene:
    sky: tuple[int, int, int]
    grass: tuple[int, int, int]
    horizon: int
    sun: tuple[int, int]

    @classmethod
    def seeded(cls, seed: int) -> _Scene:
        rng = random.Random(seed)
        return cls(
            sky=(rng.randint(90, 140), rng.randint(160, 200), rng.randint(220, 255)),
            grass=(rng.randint(40, 80), rng.randint(130, 180), rng.randint(40, 80)),
            horizon=rng.randint(150, 190),
            sun=(rng.randint(40, 340), rng.randint(30, 80)),
        )

    def draw(
        self,
        sky: tuple[int, int, int] | None = None,
        grass: tuple[int, int, int] | None = None,
        sun: bool = True,
    ) -> Image.Image:
        image = Image.new("RGB", _SIZE, sky or self.sky)
        pen = ImageDraw.Draw(image)
        pen.rectangle([0, self.horizon, _SIZE[0], _SIZE[1]], fill=grass or self.grass)
        if sun:
            x, y = self.sun
            pen.ellipse([x - 18, y - 18, x + 18, y + 18], fill=(250, 215, 60))
        return image


def _ball(scene: _Scene) -> Image.Image:
    image = scene.draw()
    y = scene.horizon + 30
    ImageDraw.Draw(image).ellipse([170, y, 210, y + 40], fill=(210, 30, 30))
    return image


def _house(scene: _Scene) -> Image.Image:
    image = scene.draw()
    pen, base = ImageDraw.Draw(image), scene.horizon + 10
    pen.rectangle([250, base - 50, 320, base], fill=(150, 95, 60))
    pen.polygon([(242, base - 50), (285, base - 85), (328, base - 50)], fill=(120, 30, 30))
    return image


def _tree(scene: _Scene) -> Image.Image:
    image = scene.draw()
    pen, base = ImageDraw.Draw(image), scene.horizon + 15
    pen.rectangle([52, base - 45, 64, base], fill=(100, 70, 40))
    pen.ellipse([28, base - 95, 88, base - 35], fill=(30, 110, 40))
    return image


_EDITS: list[tuple[str, Callable[[_Scene], Image.Image]]] = [
    ("add a red ball on the grass", _ball),
    ("make the sky orange", lambda s: s.draw(sky=(245, 150, 60))),
    ("remove the sun", lambda s: s.draw(sun=False)),
    ("add a small house on the right", _house),
    ("turn the grass into snow", lambda s: s.draw(grass=(245, 245, 250))),
    ("add a tree on the left", _tree),
]


def write_sample(folder: Path, n: int) -> Path:
    """Write ``n`` source/edit pairs as PNGs and their ``items.jsonl`` into ``folder``; return
    the path of ``items.jsonl`` (image paths in it are relative to it, as the CLI expects)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        scene = _Scene.seeded(i)
        instruction, edit = _EDITS[i % len(_EDITS)]
        scene.draw().save(folder / f"source-{i}.png")
        edit(scene).save(folder / f"edit-{i}.png")
        rows.append(
            {
                "id": f"demo-{i}",
                "image": f"edit-{i}.png",
                "source_image": f"source-{i}.png",
                "instruction": instruction,
            }
        )
    items = folder / "items.jsonl"
    items.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return items
