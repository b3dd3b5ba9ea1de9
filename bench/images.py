"""The benchmarks' images: unique, hard-to-compress JPEGs, in memory or as files on disk.

Two kinds, both distinct per seed so that no cache (the router's, vLLM's multimodal or prefix
cache) can profit from a repeat: ``noisy_image`` (a flat colour with sparse random pixels, the
512x512 images of the GPU scaling runs, ~100-150 KB) and ``photo_like`` (a smooth colour field
under dense noise, ~260 KB at 1024x1024 and quality 90, about what a photo of that size weighs),
which is fast enough to make thousands of: ``write_pairs`` spreads them over processes.
"""

from __future__ import annotations

import io
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

NOISE_ALPHA = 0.1  # share of the noise layer in photo_like: ~260 KB per 1024x1024 JPEG


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


def photo_like(seed: int, size: int = 1024, quality: int = 90) -> bytes:
    """A JPEG that weighs what a photo does: a random smooth colour field under uniform noise.

    Everything runs in Pillow's C code (~20 ms at 1024x1024): the per-pixel Python loop of
    ``noisy_image`` would take seconds at this size.
    """
    rnd = random.Random(seed)
    field = Image.frombytes("RGB", (4, 4), rnd.randbytes(48))
    base = field.resize((size, size), Image.Resampling.BILINEAR)
    noise = Image.frombytes("RGB", (size, size), rnd.randbytes(3 * size * size))
    buf = io.BytesIO()
    Image.blend(base, noise, NOISE_ALPHA).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _write_pair(task: tuple[Path, int, int, int]) -> dict[str, str]:
    folder, index, size, source = task
    row = {"id": f"p{index}", "instruction": f"Edit {index}: make the sky purple, add a red kite."}
    edit = f"i{index}.jpg"
    (folder / edit).write_bytes(photo_like(2 * index + 1, size))
    row["image"] = edit
    row["source_image"] = f"s{source}.jpg"
    if source == index:  # the group's first edit writes the source they share
        (folder / row["source_image"]).write_bytes(photo_like(2 * source, size))
    return row


def pairs_folder(work: Path, name: str, edits_per_source: int = 1) -> Path:
    """Where the run ``name`` keeps its pairs under ``work``: a folder per workload, so a listing
    made for one never stands in for another (see :func:`write_pairs`)."""
    k = edits_per_source
    return Path(work, "pairs", name + (f"-k{k}" if k > 1 else ""))


def write_pairs(
    folder: Path,
    first: int,
    count: int,
    size: int = 1024,
    processes: int | None = None,
    edits_per_source: int = 1,
) -> Path:
    """``count`` pairs (pair ``first`` onwards) as JPEG files in ``folder`` plus ``input.jsonl``
    listing them for ``editjudge score``; returns that file.

    Each edit has its own source unless ``edits_per_source`` is more than one: then runs of that
    many consecutive pairs share the first one's source, listed one after another, as a user
    scoring several candidate edits of one image would send them (what a prefix cache can reuse).
    Pair ``i``'s edit has seed ``2i + 1`` and its own source seed ``2i``: disjoint ranges of pairs
    never share an image, so runs that must not warm each other's caches take different ranges.
    """
    listing = folder / "input.jsonl"
    if listing.exists() and len(listing.read_text().splitlines()) == count:
        return listing  # made earlier in this work folder: same seeds, same bytes
    folder.mkdir(parents=True, exist_ok=True)
    k = max(1, edits_per_source)
    tasks = [(folder, i, size, first + (i - first) // k * k) for i in range(first, first + count)]
    workers = max(1, min(processes or os.cpu_count() or 1, count))
    if workers == 1:
        rows = [_write_pair(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_write_pair, tasks, chunksize=max(1, count // (4 * workers))))
    listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return listing
