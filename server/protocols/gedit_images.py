"""The images a GEdit-Bench judge sees: the reference's resizing, done in the router.

GEdit-Bench's evaluation (``test_gedit_score.py`` with the Qwen2.5-VL backbone) converts the edited
image to RGB and resizes it to the source image's size; both images then go through qwen-vl-utils
0.0.8's ``fetch_image``: RGB, then a resize to ``smart_resize``'s size (sides rounded to multiples
of 28, at least 4·28² and at most 16384·28² pixels, aspect ratio at most 200). Pillow's default
filter for RGB images, bicubic, does both resizes.

:func:`reference_pair` applies the same steps and sends the results as PNG (lossless), so an engine
whose processor resizes with the same rule (Qwen2-VL and Qwen2.5-VL: 28-pixel grid, same pixel
bounds) has nothing left to resize and sees the reference's pixels. An image the steps leave
unchanged passes through as it came.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict

from PIL import Image

from ..errors import InvalidImage, InvalidRequest
from ..images import PreparedImage

FACTOR = 28
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28
MAX_RATIO = 200
POLICY = f"gedit: edited resized to source; smart_resize {FACTOR}/{MIN_PIXELS}/{MAX_PIXELS}"

_BICUBIC = Image.Resampling.BICUBIC


def smart_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` after qwen-vl-utils' ``smart_resize`` at its default bounds."""
    if max(width, height) / min(width, height) > MAX_RATIO:
        raise InvalidRequest(
            f"gedit: a {width}x{height} image is more elongated than the reference allows "
            f"(aspect ratio at most {MAX_RATIO})"
        )
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h * w > MAX_PIXELS:
        beta = math.sqrt(height * width / MAX_PIXELS)
        h = math.floor(height / beta / FACTOR) * FACTOR
        w = math.floor(width / beta / FACTOR) * FACTOR
    elif h * w < MIN_PIXELS:
        beta = math.sqrt(MIN_PIXELS / (height * width))
        h = math.ceil(height * beta / FACTOR) * FACTOR
        w = math.ceil(width * beta / FACTOR) * FACTOR
    return w, h


class ReferenceImages:
    """Turns (source, edited) into what the reference's judge sees; remembers recent sources,
    so the K candidates of a group (and the group's priming call) convert their source once."""

    def __init__(self, remember: int = 64) -> None:
        self._sources: OrderedDict[str, PreparedImage] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()  # intake runs in worker threads

    def source(self, source: PreparedImage) -> PreparedImage:
        """The source image as the judge sees it."""
        with self._lock:
            found = self._sources.get(source.digest)
        if found is not None:
            return found
        image = _open(source, "source_image")
        converted = _converted(source, image, smart_size(*image.size), changed=False)
        with self._lock:
            self._sources[source.digest] = converted
            while len(self._sources) > self._remember:
                self._sources.popitem(last=False)
        return converted

    def edited(self, edited: PreparedImage, source: PreparedImage) -> PreparedImage:
        """The edited image as the judge sees it: at the source's size, then smart-resized.

        ``source`` is the source image as the caller sent it: its size is the first target.
        """
        image = _open(edited, "image")
        source_size = (source.width, source.height)
        changed = image.mode != "RGB" or image.size != source_size
        if changed:
            image = image.convert("RGB").resize(source_size, _BICUBIC)
        return _converted(edited, image, smart_size(*source_size), changed)


def _open(prepared: PreparedImage, field: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(prepared.data))
        image.load()
    except Exception:
        raise InvalidImage(f"{field}: image data is truncated or corrupt") from None
    return image


def _converted(
    original: PreparedImage, image: Image.Image, size: tuple[int, int], changed: bool
) -> PreparedImage:
    """``image`` in RGB at ``size``: ``original`` itself when no step changes a pixel."""
    if not changed and image.mode == "RGB" and image.size == size:
        return original
    out = image.convert("RGB").resize(size, _BICUBIC)
    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=1)
    return PreparedImage(buf.getvalue(), "image/png", out.width, out.height)
