"""Small JPEG data URLs of image files, for a report that must work offline and be mailed.

Each distinct file is read once however many items use it (many edits share a source image), and
files are decoded in a few threads: Pillow releases the GIL while it decodes and encodes.
Big JPEGs are decoded at a reduced scale straight away (``draft``), which is most of the time a
photo thumbnail takes. An image that cannot be read is ``None`` with the reason, never an error
for the whole report.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError


@dataclass(frozen=True)
class Thumbnail:
    """A data URL, or ``None`` and why the file could not be shown."""

    url: str | None
    problem: str | None = None


class Thumbnails:
    """Collects files (:meth:`add` returns each one's index) and renders them all at once."""

    def __init__(self, max_side: int = 256, quality: int = 75) -> None:
        if max_side < 16:
            raise ValueError("thumbnails need at least 16 pixels a side")
        self.max_side, self.quality = max_side, quality
        self._index: dict[Path, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    def add(self, path: Path) -> int:
        """The index of ``path``'s thumbnail in what :meth:`render` returns."""
        key = path.resolve()
        return self._index.setdefault(key, len(self._index))

    def render(
        self, workers: int | None = None, progress: Callable[[int], None] | None = None
    ) -> list[Thumbnail]:
        """Every added file's thumbnail, in index order; ``progress(done)`` after each one."""
        paths = list(self._index)
        threads = workers or min(8, os.cpu_count() or 1)
        out: list[Thumbnail] = []
        with ThreadPoolExecutor(threads) as pool:
            for thumb in pool.map(self._one, paths):
                out.append(thumb)
                if progress is not None:
                    progress(len(out))
        return out

    def _one(self, path: Path) -> Thumbnail:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return Thumbnail(self._encode(path))
        except FileNotFoundError:
            return Thumbnail(None, f"not found: {path}")
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            return Thumbnail(None, f"cannot read {path.name}: {exc}")

    def _encode(self, path: Path) -> str:
        box = (self.max_side, self.max_side)
        with Image.open(path) as opened:
            opened.draft("RGB", box)  # JPEG: decode at 1/2 .. 1/8 scale when that still covers it
            image = ImageOps.exif_transpose(opened)
            image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
            small = _on_white(image)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=self.quality, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _on_white(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent parts shown on white, as an image viewer would."""
    if image.mode in ("RGB", "L"):
        return image
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
