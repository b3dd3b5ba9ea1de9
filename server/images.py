"""Image intake: decode a payload, validate it with Pillow, and prepare what vLLM receives.

Limits are checked from the cheapest signal first: the encoded length before base64 decoding, the
header's width x height before any pixel is decoded (decompression bombs), and the format against an
allow-list. Images that need no change (no EXIF rotation, under the resize cap, a format vLLM reads)
pass through byte for byte, and their base64 text is reused, so the common case costs one decode
check and no re-encode. With ``check="header"`` (the default setting) a pass-through JPEG skips even
that (:mod:`editjudge.server.passthrough`). A decode holds its pixels' memory in the request's
budget while it runs (``memory``); callers run decodes in worker threads
(:mod:`editjudge.server.intake`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

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
EXIF_ORIENTATION = 0x0112
# Pillow keeps a decoded pixel in at most 4 bytes for every mode intake decodes (RGB is stored
# as RGBX), so this bounds a decode's memory from the header's size alone.
_BYTES_PER_PIXEL = 4

#: Holds ``nbytes`` of the request's memory budget for a block (``Hold.borrow``), or raises.
Memory = Callable[[int], AbstractContextManager[None]]


def unbudgeted(nbytes: int) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be; built from :class:`editjudge.server.config.Settings`."""

    max_bytes: int
    max_pixels: int
    formats: frozenset[str]
    resize_max_pixels: int | None = None
    resize_grid: int | None = None  # snap resized sides to multiples of this (the model's patch)
    check: str = "decode"  # "header": JPEGs are checked from header and end marker (see below)


class PreparedImage:
    """A validated image, ready to be sent to vLLM as a data URL.

    It keeps one copy of the image: its base64 text, as bytes (``b64_bytes``), which the engine
    bodies stream as they are (see :mod:`editjudge.server.bodies`). ``data`` (the decoded bytes)
    is derived on each use and not kept; ``digest`` (a content hash of the bytes, for caches and
    source affinity) on first use, unless intake already computed it. Images checked from their
    header alone never decode their base64 text unless a caller asks for ``data`` or ``digest``.
    """

    __slots__ = ("_b64", "_digest", "height", "mime", "width")

    def __init__(
        self,
        data: bytes | None,
        mime: str,
        width: int,
        height: int,
        digest: str | None = None,
        b64: str | bytes = "",
    ) -> None:
        if not b64:
            if data is None:
                raise ValueError("PreparedImage needs its bytes or their base64 text")
            b64 = base64.b64encode(data)
        # latin-1 maps str and bytes one to one: base64 text is ASCII either way.
        self._b64 = b64 if isinstance(b64, bytes) else b64.encode("latin-1")
        self._digest = digest
        self.mime, self.width, self.height = mime, width, height

    @property
    def data(self) -> bytes:
        """The encoded image bytes, decoded from the base64 text on every call."""
        return binascii.a2b_base64(self._b64)

    @property
    def b64(self) -> str:
        return self._b64.decode("latin-1")

    @property
    def b64_bytes(self) -> bytes:
        """The base64 text itself: the one copy of the image this object keeps."""
        return self._b64

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = content_digest(self.data)
        return self._digest

    @property
    def size(self) -> int:
        """Length of the encoded image in bytes, without decoding it."""
        return len(self._b64) * 3 // 4 - self._b64[-2:].count(b"=")

    @property
    def held_bytes(self) -> int:
        """Memory this image holds, as the budget counts it: its base64 text."""
        return len(self._b64)

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"

    def __repr__(self) -> str:
        return f"PreparedImage({self.mime}, {self.width}x{self.height}, {self.size} bytes)"


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class B64Image:
    """An image field's value, cut out of the raw body before the JSON parse (see
    :mod:`editjudge.server.jsonbody`): ``header`` is a data URL's part before its comma ("" for
    bare base64), ``text`` the base64 text, already checked as :func:`valid_b64` does."""

    header: str
    text: bytes


def payload_text_of(value: str | B64Image, limits: ImageLimits) -> str | bytes:
    """:func:`_payload_text` of either kind of value: bytes (alphabet checked) for a
    :class:`B64Image`, with the same checks in the same order."""
    if not isinstance(value, B64Image):
        return _payload_text(value, limits)
    if value.header and not value.header.endswith(";base64"):
        raise InvalidImage("data URL must be base64-encoded: data:image/<type>;base64,<data>")
    if len(value.text) * 3 // 4 > limits.max_bytes:
        raise ImageTooLarge(f"image is larger than {limits.max_bytes} bytes")
    return value.text


def _payload_text(value: str, limits: ImageLimits) -> str:
    """The base64 text of a base64 string or ``data:`` URL, with its cheap checks done."""
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
    return text


def decode_payload(value: str, limits: ImageLimits) -> tuple[bytes, str]:
    """Turn a base64 string or ``data:`` URL into bytes; return ``(bytes, base64_text)``."""
    text = _payload_text(value, limits)
    return b64decode_checked(text), text


def b64decode_checked(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image is not valid base64") from None


def prepare_image(
    data: bytes, limits: ImageLimits, b64: str | bytes = "", memory: Memory = unbudgeted
) -> PreparedImage:
    """Validate encoded image bytes and return what to send to vLLM.

    ``b64`` is the caller's base64 text of ``data``; when given and the image passes through
    unchanged, it is kept instead of encoding the bytes again. The result keeps only base64 text,
    not ``data``. Decoding holds ``memory`` for the pixels (4 bytes each) while it runs.
    """
    if not data:
        raise InvalidImage("image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is larger than {limits.max_bytes} bytes")
    digest = content_digest(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel cap is checked below; Pillow's global bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = open_checked(data, limits)
            cap = limits.resize_max_pixels
            needs_resize = cap is not None and pixel_count(image) > cap
            rotated = image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1)
            mime = _PASSTHROUGH.get(image_format(image) or "")
            if mime is not None and not rotated and not needs_resize:
                width, height = image.size  # before the check: draft mode shrinks it
                _check_decodes(image, memory)
                return PreparedImage(None if b64 else data, mime, width, height, digest, b64)
            # The decoded source, its rotated or converted copy and the resized result.
            with memory(3 * _BYTES_PER_PIXEL * pixel_count(image)):
                return _reencode(image, limits, digest)
    except EditJudgeError:
        raise
    except Exception:
        raise InvalidImage("image data is truncated or corrupt") from None


def open_checked(
    data: bytes, limits: ImageLimits, formats: tuple[str, ...] | None = None
) -> Image.Image:
    """Pillow's header parse; ``formats`` skips probing other plugins when the format is known."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        claimed = f"{size.group(1)} pixels" if size else "too many pixels"
        raise TooManyPixels(f"image has {claimed}; the limit is {limits.max_pixels}") from None
    except Exception:
        raise InvalidImage("image could not be decoded (not a supported image file)") from None
    if image_format(image) not in limits.formats:
        allowed = ", ".join(sorted(limits.formats))
        raise UnsupportedImageFormat(f"image format {image.format} is not accepted ({allowed})")
    if pixel_count(image) > limits.max_pixels:
        raise TooManyPixels(
            f"image is {image.width}x{image.height} = {pixel_count(image)} pixels;"
            f" the limit is {limits.max_pixels}"
        )
    return image


def pixel_count(image: Image.Image) -> int:
    return int(image.width) * int(image.height)


def image_format(image: Image.Image) -> str | None:
    """Pillow's format name, a multi-picture JPEG ("MPO", as phones write them) counted as JPEG:
    it is a JPEG followed by more pictures, which decoders (vLLM's too) read as its first one."""
    return "JPEG" if image.format == "MPO" else image.format


def _check_decodes(image: Image.Image, memory: Memory) -> None:
    """Decode the pixels once so truncated or corrupt files fail here, not inside vLLM."""
    if image_format(image) == "JPEG":
        # DCT scaling walks the whole entropy-coded stream at 1/8 of the decode cost.
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    with memory(_BYTES_PER_PIXEL * pixel_count(image)):
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
    source_format = image_format(image)
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if limits.resize_max_pixels and pixel_count(image) > limits.resize_max_pixels:
        size = fit(image.width, image.height, limits.resize_max_pixels, limits.resize_grid)
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    if source_format == "JPEG" and image.mode in ("RGB", "L"):
        image.save(out, format="JPEG", quality=95)
        mime = "image/jpeg"
    else:
        image.save(out, format="PNG", compress_level=1)
        mime = "image/png"
    encoded = base64.b64encode(out.getbuffer())
    return PreparedImage(None, mime, image.width, image.height, digest, encoded)
