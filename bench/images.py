"""The benchmarks' images: unique, hard-to-compress JPEGs.

Distinct per seed, so that no cache (the router's, vLLM's multimodal or prefix cache) can profit
from a repeat: a flat colour with sparse random pixels (the 512x512 images of the GPU scaling runs,
~100-150 KB).
"""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image


def noisy_image(
    seed: int, size: int = 512, noise: int = 3000, fmt: str = "JPEG", **save: Any
) -> bytes:
    """A unique, hard-to-compress test image: a flat colour with ``noise`` random pixels."""
    rnd = random.Random(seed)
    im = Image.new("RGB", (size, size), tuple(rnd.randrange(256) for _ in range(3)))
    px = im.load()
    assert px is not None
    for _ in range(noise):
        px[rnd.randrange(size), rnd.randrange(size)] = tuple(rnd.randrange(256) for _ in range(3))
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def jpeg(seed: int, size: int = 512) -> bytes:
    """The GPU scaling runs' image: 512x512, ~100-150 KB."""
    return noisy_image(seed, size, 3000, "JPEG", quality=90)
