"""The user path's pairs on disk: valid, unique JPEGs that weigh what photos do, and a listing."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from bench.images import photo_like, write_pairs


def test_photo_like_is_a_heavy_unique_jpeg() -> None:
    a, b = photo_like(1), photo_like(2)
    assert a != b and photo_like(1) == a  # unique per seed, reproducible
    im = Image.open(io.BytesIO(a))
    im.load()
    assert (im.format, im.size) == ("JPEG", (1024, 1024))
    assert 150_000 < len(a) < 500_000  # noise keeps it from compressing to nothing


def test_write_pairs_gives_each_edit_its_own_source(tmp_path: Path) -> None:
    listing = write_pairs(tmp_path / "a", 10, 6, size=64, processes=2)
    rows = [json.loads(line) for line in listing.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(10, 16)]
    files = [listing.parent / r[k] for r in rows for k in ("image", "source_image")]
    blobs = [f.read_bytes() for f in files]
    assert len(set(blobs)) == 12  # 6 edits and 6 sources, no image twice
    assert all(Image.open(f).size == (64, 64) for f in files)
    other = write_pairs(tmp_path / "b", 16, 3, size=64, processes=1)
    more = [p.read_bytes() for p in other.parent.glob("*.jpg")]
    assert not set(more) & set(blobs)  # disjoint ranges share no image


def test_write_pairs_keeps_what_it_made(tmp_path: Path) -> None:
    listing = write_pairs(tmp_path, 0, 2, size=32, processes=1)
    first = (tmp_path / "i0.jpg").stat().st_mtime_ns
    assert write_pairs(tmp_path, 0, 2, size=32, processes=1) == listing
    assert (tmp_path / "i0.jpg").stat().st_mtime_ns == first


def test_write_pairs_can_share_a_source_among_consecutive_edits(tmp_path: Path) -> None:
    listing = write_pairs(tmp_path, 5, 7, size=48, processes=2, edits_per_source=3)
    rows = [json.loads(line) for line in listing.read_text().splitlines()]
    assert [r["source_image"] for r in rows] == ["s5.jpg"] * 3 + ["s8.jpg"] * 3 + ["s11.jpg"]
    assert len({r["image"] for r in rows}) == 7  # every edit is its own
    sources = sorted(p.name for p in tmp_path.glob("s*.jpg"))
    assert sources == ["s11.jpg", "s5.jpg", "s8.jpg"]  # one file per group, no others
    write_pairs(tmp_path / "own", 5, 1, size=48, processes=1)
    same = (tmp_path / "own" / "s5.jpg").read_bytes() == (tmp_path / "s5.jpg").read_bytes()
    assert same  # a group's source is its first pair's own source: ranges stay disjoint
