"""The GRPO-like benchmark workload: groups of 8 edits sharing one source image.

Every source and every edit is a distinct 512x512 JPEG with noise (~100-150 KB), like
``../shared/gpu/load.py``. The same items feed both paths of a comparison: as ``/score`` requests to
the router, and as the exact chat-completions bodies the router would send (built with the router's
own protocol code), so direct and routed runs give the engines identical work.
"""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass
from typing import Any

import orjson
from PIL import Image

from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import Item, Sampling, VIEScore

GROUP = 8
LIMITS = ImageLimits(10**8, 10**8, frozenset({"JPEG"}))


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
    """The benchmark's image: 512x512, ~100-150 KB."""
    return noisy_image(seed, size, 3000, "JPEG", quality=90)


@dataclass(frozen=True)
class WorkItem:
    index: int
    source: bytes
    edit: bytes
    instruction: str

    def score_json(self, protocol: str | None = None) -> bytes:
        """The router request for this item."""
        body: dict[str, object] = {
            "id": str(self.index),
            "image": base64.b64encode(self.edit).decode(),
            "source_image": base64.b64encode(self.source).decode(),
            "instruction": self.instruction,
        }
        if protocol:
            body["protocol"] = protocol
        return orjson.dumps(body)

    def chat_bodies(self, model: str, reasoning_chars: int = 0, seed: int = 0) -> list[bytes]:
        """The chat-completions bodies the router sends for this item (VIEScore)."""
        item = Item(
            self.instruction,
            prepare_image(self.edit, LIMITS),
            prepare_image(self.source, LIMITS),
            str(self.index),
        )
        calls = VIEScore(reasoning_chars).calls(item)
        return [orjson.dumps(c.body(model, Sampling(seed=seed))) for c in calls]


def items(start: int, stop: int, step: int = 1) -> list[WorkItem]:
    """Items ``start..stop`` (every ``step``-th); item i's source is shared by its group of 8."""
    out = []
    for i in range(start, stop, step):
        group = i // GROUP
        out.append(
            WorkItem(
                i,
                jpeg(1_000_000 + group),
                jpeg(i),
                f"In group {group}: make the sky purple and add a red kite.",
            )
        )
    return out
