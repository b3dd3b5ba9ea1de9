"""Image intake: decode a payload, validate it with Pillow, and prepare what vLLM receives.

Limits are checked from the cheapest signal first: the encoded length before base64 decoding, the
header's width x height before any pixel is decoded (decompression bombs), and the format against an
allow-list. Images that need no change (no EXIF rotation, under the resize cap, a format vLLM reads)
pass through byte for byte, and their base64 text is reused, so the common case costs one decode
check and no re-encode.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from .errors import (
    EditJudgeError,
    ImageTooLarge,
    InvalidImage,
    TooManyPixels,
    UnsupportedImageFormat,
)

# vLLM decodes these itself; anything else accepted is re-encoded to PNG first.
_PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be; built from :class:`server.config.Settings`."""

    max_bytes: int
    max_pixels: int
    formats: frozenset[str]
    resize_max_pixels: int | None = None
    resize_grid: int | None = None  # snap resized sides to multiples of this (the model's patch)


@dataclass(frozen=True)
class PreparedImage:
    """A validated image, ready to be sent to vLLM as a data URL."""

    data: bytes
    mime: str
    width: int
    height: int
    digest: str  # content hash of the bytes received, for caches and source affinity
    b64: str = field(default="", repr=False)

    def data_url(self) -> str:
        b64 = self.b64 or base64.b64encode(self.data).decode("ascii")
        return f"data:{self.mime};base64,{b64}"


def decode_payload(value: str, limits: ImageLimits) -> tuple[bytes, str]:
    """Turn a base64 string or ``data:`` URL into bytes; return ``(bytes, base64_text)``."""
    text = value.strip()
    if text.startswith(("http://", "https://", "file:", "ftp:")):
        raise InvalidImage("images must be sent inline (base64 or data URL); URLs are not fetched")
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidImage("data URL must be base64-encoded: data:image/<type>;base64,<data>")
    if not text:
        raise InvalidImage("image is empty")
    if len(text) * 3 // 4 > limits.max_bytes:
        raise ImageTooLarge(f"image is larger than {limits.max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image is not valid base64") from None
    return data, text


def prepare_image(data: bytes, limits: ImageLimits, b64: str = "") -> PreparedImage:
    """Validate encoded image bytes and return what to send to vLLM.

    ``b64`` is the caller's base64 text of ``data``; when given and the image passes through
    unchanged, it is reused instead of encoding the bytes again.
    """
    if not data:
        raise InvalidImage("image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is larger than {limits.max_bytes} bytes")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        with warnings.catch_warnings():
            # Our own pixel cap is checked below; Pillow's global bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open(data, limits)
            cap = limits.resize_max_pixels
            needs_resize = cap is not None and _pixels(image) > cap
            rotated = image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1)
            if image.format in _PASSTHROUGH and not rotated and not needs_resize:
                width, height = image.size  # before the check: draft mode shrinks it
                _check_decodes(image)
                mime = _PASSTHROUGH[image.format]
                return PreparedImage(data, mime, width, height, digest, b64)
            return _reencode(image, limits, digest)
    except EditJudgeError:
        raise
    except Exception:
        raise InvalidImage("image data is truncated or corrupt") from None


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        claimed = f"{size.group(1)} pixels" if size else "too many pixels"
        raise TooManyPixels(f"image has {claimed}; the limit is {limits.max_pixels}") from None
    except Exception:
        raise InvalidImage("image could not be decoded (not a supported image file)") from None
    if image.format not in limits.formats:
        allowed = ", ".join(sorted(limits.formats))
        raise UnsupportedImageFormat(f"image format {image.format} is not accepted ({allowed})")
    if _pixels(image) > limits.max_pixels:
        raise TooManyPixels(
            f"image is {image.width}x{image.height} = {_pixels(image)} pixels;"
            f" the limit is {limits.max_pixels}"
        )
    return image


def _pixels(image: Image.Image) -> int:
    return int(image.width) * int(image.height)


def _check_decodes(image: Image.Image) -> None:
    """Decode the pixels once so truncated or corrupt files fail here, not inside vLLM."""
    if image.format == "JPEG":
        # DCT scaling walks the whole entropy-coded stream at 1/8 of the decode cost.
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()


def fit(width: int, height: int, max_pixels: int, grid: int | None = None) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels.

    With ``grid``, both sides are multiples of it (as Qwen-VL processors' ``smart_resize`` does,
    grid 28 for Qwen2/2.5-VL, 32 for Qwen3-VL), so the engine's processor has nothing left to
    resize.
    """
    scale = math.sqrt(max_pixels / (width * height))
    if not grid:
        return max(1, int(width * scale)), max(1, int(height * scale))
    w = max(grid, math.floor(width * scale / grid) * grid)
    h = max(grid, math.floor(height * scale / grid) * grid)
    return w, h


def _reencode(image: Image.Image, limits: ImageLimits, digest: str) -> PreparedImage:
    source_format = image.format
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if limits.resize_max_pixels and _pixels(image) > limits.resize_max_pixels:
        size = fit(image.width, image.height, limits.resize_max_pixels, limits.resize_grid)
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    if source_format == "JPEG" and image.mode in ("RGB", "L"):
        image.save(out, format="JPEG", quality=95)
        mime = "image/jpeg"
    else:
        image.save(out, format="PNG", compress_level=1)
        mime = "image/png"
    return PreparedImage(out.getvalue(), mime, image.width, image.height, digest)
