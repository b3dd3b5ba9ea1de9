"""Image preparation before upload: downscale to the router's pixel cap, re-encode sensibly.

Policy (each step only when needed, so typical files go up byte for byte):

* A JPEG, PNG or WebP that is within the pixel cap and ``max_image_bytes``, has no EXIF rotation,
  and is not a PNG over 4 MiB is sent unchanged. Re-encoding an already-compressed photo would
  only lose quality, and unchanged bytes let the router's caches recognise repeated images.
* Everything else is decoded, turned upright (EXIF orientation), downscaled to the cap with
  Lanczos, and encoded again: JPEG sources as JPEG (quality 95); images with real transparency as
  PNG; other images as PNG, switched to JPEG (quality 95) only when the PNG is over 4 MiB and the
  JPEG is at most half its size (photos saved as PNG; screenshots and drawings stay lossless).
* If the result still exceeds ``max_image_bytes`` it is shrunk further, 25% at a time.

The pixel cap is the router's ``resize_max_pixels`` when its operator set one (the model would
see no more than that anyway), with sides snapped to its ``resize_grid`` if set, exactly as the
router's own resize would do; else its ``max_image_pixels``.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ._exceptions import InputError
from ._models import ImageInput

_PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_EXIF_ORIENTATION = 0x0112
LARGE_PNG_BYTES = 4 * 1024 * 1024
JPEG_QUALITY = 95
_SHRINK_STEPS = 8


@dataclass(frozen=True)
class ImagePolicy:
    """How far to shrink: at most ``cap_pixels`` pixels and ``max_bytes`` bytes; resized sides
    snap to multiples of ``grid`` when the router says its model wants that (``resize_grid``)."""

    cap_pixels: int
    max_bytes: int
    grid: int | None = None


@dataclass(frozen=True)
class Encoded:
    """Image bytes ready to upload."""

    data: bytes
    mime: str
    width: int
    height: int

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def prepare(image: ImageInput, policy: ImagePolicy) -> Encoded:
    """Turn a path, encoded bytes or a Pillow image into upload-ready bytes (see module doc)."""
    if isinstance(image, Image.Image):
        return _guard(lambda: _reencode(image, policy, owned=False))
    if isinstance(image, bytes | bytearray | memoryview):
        return _from_bytes(bytes(image), policy)
    if isinstance(image, str | os.PathLike):
        return _from_path(Path(image), policy)
    raise TypeError(f"an image must be a path, bytes or PIL.Image, not {type(image).__name__}")


def _from_path(path: Path, policy: ImagePolicy) -> Encoded:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"image not found: {path}", "file_not_found") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "file_unreadable") from None
    if not path.is_file():
        raise InputError(f"not a file: {path}", "file_unreadable")
    return _cached_file(str(path), st.st_mtime_ns, st.st_size, policy)


# Many items often share one source image; the key includes mtime and size so edits are seen.
@functools.lru_cache(maxsize=8)
def _cached_file(path: str, mtime_ns: int, size: int, policy: ImagePolicy) -> Encoded:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "file_unreadable") from None
    try:
        return _from_bytes(data, policy)
    except InputError as exc:
        raise InputError(f"{path}: {exc.message}", exc.code) from None


def _from_bytes(data: bytes, policy: ImagePolicy) -> Encoded:
    if not data:
        raise InputError("image is empty", "invalid_image")

    def work() -> Encoded:
        image = Image.open(io.BytesIO(data))
        mime = _PASSTHROUGH.get(image.format or "")
        if mime and _fits_as_is(image, len(data), policy):
            return Encoded(data, mime, image.width, image.height)
        return _reencode(image, policy, owned=True, source_bytes=len(data))

    return _guard(work)


def _guard(work: Callable[[], Encoded]) -> Encoded:
    """Run ``work`` and turn Pillow's many failure modes into one :class:`InputError`."""
    with warnings.catch_warnings():
        # The client downscales big images itself; Pillow's bomb warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return work()
        except InputError:
            raise
        except Image.DecompressionBombError:
            raise InputError("image has too many pixels to process", "too_many_pixels") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise InputError(
                "not a readable image (corrupt or unsupported)", "invalid_image"
            ) from None


def _fits_as_is(image: Image.Image, size: int, policy: ImagePolicy) -> bool:
    upright = image.getexif().get(_EXIF_ORIENTATION, 1) in (0, 1)
    small_enough = image.width * image.height <= policy.cap_pixels and size <= policy.max_bytes
    bulky_png = image.format == "PNG" and size > LARGE_PNG_BYTES
    return upright and small_enough and not bulky_png


def _reencode(
    image: Image.Image, policy: ImagePolicy, *, owned: bool, source_bytes: int | None = None
) -> Encoded:
    source_format, source_pixels = image.format, image.width * image.height
    image = _upright_within_cap(image, policy, owned)
    transparent = image.mode == "RGBA" and image.getchannel("A").getextrema() != (255, 255)
    if image.mode == "RGBA" and not transparent:
        image = image.convert("RGB")
    png_estimate = None
    if source_format == "PNG" and source_bytes:
        # A PNG re-encoded keeps roughly its bytes per pixel: knowing that, a photo saved as PNG
        # can go to JPEG without first spending seconds on a PNG encode only to compare sizes.
        png_estimate = source_bytes * image.width * image.height // source_pixels
    encoded = _encode(image, source_format == "JPEG" and not transparent, png_estimate)
    for _ in range(_SHRINK_STEPS):
        if len(encoded.data) <= policy.max_bytes:
            return encoded
        smaller = fit(image.size, int(image.width * image.height * 0.75), policy.grid)
        image = image.resize(smaller, Image.Resampling.LANCZOS)
        encoded = _encode(image, encoded.mime == "image/jpeg", None)
    raise InputError(
        f"image does not fit in the server's {policy.max_bytes} bytes even downscaled",
        "image_too_large",
    )


def _upright_within_cap(image: Image.Image, policy: ImagePolicy, owned: bool) -> Image.Image:
    cap, grid = policy.cap_pixels, policy.grid
    if owned and image.format == "JPEG" and image.width * image.height > cap:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (still >= the target): much faster.
        image.draft(None, fit(image.size, cap, grid))
    image = ImageOps.exif_transpose(image)
    image = _normalise_mode(image)
    if image.width * image.height > cap:
        image = image.resize(fit(image.size, cap, grid), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def fit(size: tuple[int, int], cap_pixels: int, grid: int | None = None) -> tuple[int, int]:
    """The largest size with ``size``'s aspect ratio and at most ``cap_pixels`` pixels; with
    ``grid``, sides are multiples of it. The same arithmetic as the router's own resize, so an
    image shrunk here is exactly what the router would have made of it."""
    width, height = size
    if width * height <= cap_pixels:
        return size
    scale = math.sqrt(cap_pixels / (width * height))
    if not grid:
        return max(1, int(width * scale)), max(1, int(height * scale))
    return (
        max(grid, math.floor(width * scale / grid) * grid),
        max(grid, math.floor(height * scale / grid) * grid),
    )


def _normalise_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA or L: what every encoder here (and the judge) understands."""
    if image.mode in ("RGB", "RGBA", "L"):
        return image
    if image.mode.startswith("I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping everything above 255 to white.
        return image.convert("I").point(lambda v: v / 256).convert("L")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if image.mode == "1":
        return image.convert("L")
    return image.convert("RGBA" if has_alpha else "RGB")


def _encode(image: Image.Image, prefer_jpeg: bool, png_estimate: int | None) -> Encoded:
    """JPEG if asked; else PNG, or JPEG when the PNG is large and JPEG at most half its size."""
    if prefer_jpeg:
        return _save(image, "JPEG", quality=JPEG_QUALITY)
    if image.mode == "RGBA":  # real transparency: only PNG keeps it
        return _save(image, "PNG")
    jpeg = None
    if png_estimate is not None and png_estimate > LARGE_PNG_BYTES:
        jpeg = _save(image, "JPEG", quality=JPEG_QUALITY)
        if 2 * len(jpeg.data) <= png_estimate:
            return jpeg
    png = _save(image, "PNG")
    if len(png.data) > LARGE_PNG_BYTES:
        jpeg = jpeg or _save(image, "JPEG", quality=JPEG_QUALITY)
        if 2 * len(jpeg.data) <= len(png.data):
            return jpeg
    return png


def _save(image: Image.Image, fmt: str, **options: object) -> Encoded:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return Encoded(out.getvalue(), _PASSTHROUGH[fmt], image.width, image.height)
