"""Image intake: decode a payload, validate it with Pillow, and prepare what vLLM receives.

Limits are checked from the cheapest signal first: the encoded length before base64 decoding, the
header's width x height before any pixel is decoded (decompression bombs), and the format against an
allow-list. Images that need no change (no EXIF rotation, under the resize cap, a format vLLM reads)
pass through byte for byte, and their base64 text is reused, so the common case costs one decode
check and no re-encode. With ``check="header"`` (the default setting) a pass-through JPEG skips even
that: its base64 text is checked and its header read without decoding the rest, ~10x cheaper (see
:func:`prepare_payload`). A decode holds its pixels' memory in the request's budget while it runs
(``memory``); callers run decodes in worker threads (:mod:`editjudge.server.intake`).
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

from .b64 import valid_b64
from .errors import (
    EditJudgeError,
    ImageTooLarge,
    InvalidImage,
    TooManyPixels,
    UnsupportedImageFormat,
)
from .jpeg import Truncated, read_header

# vLLM decodes these itself; anything else accepted is re-encoded to PNG first.
_PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_EXIF_ORIENTATION = 0x0112
# Pillow keeps a decoded pixel in at most 4 bytes for every mode intake decodes (RGB is stored
# as RGBX), so this bounds a decode's memory from the header's size alone.
_BYTES_PER_PIXEL = 4

#: Holds ``nbytes`` of the request's memory budget for a block (``Hold.borrow``), or raises.
Memory = Callable[[int], AbstractContextManager[None]]


def _unbudgeted(nbytes: int) -> AbstractContextManager[None]:
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


def _text_of(value: str | B64Image, limits: ImageLimits) -> str | bytes:
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
    return _b64decode(text), text


def _b64decode(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image is not valid base64") from None


def prepare_payload(
    value: str | B64Image, limits: ImageLimits, memory: Memory = _unbudgeted
) -> PreparedImage:
    """A base64 string or ``data:`` URL, validated and ready for vLLM.

    With ``limits.check == "header"``, a JPEG that can pass through unchanged is validated
    without decoding its base64 text: the alphabet is checked, Pillow reads the header from the
    first few KB (format, size and pixel cap, EXIF orientation) and the last bytes must hold the
    end-of-image marker (truncation). Entropy-coded data in between is left to the engine. Any
    other image, or a JPEG that needs more than that, takes the full path (``prepare_image``),
    whose pixel decode is charged to ``memory`` while it runs.
    """
    text = _text_of(value, limits)
    fast = _jpeg_from_header(text, limits) if limits.check == "header" else None
    if fast is not None:
        return fast
    return prepare_image(_b64decode(text), limits, text, memory)


def prepare_without_decode(value: str | B64Image, limits: ImageLimits) -> PreparedImage | None:
    """The header-only check of ``prepare_payload`` when it applies, else None.

    It decodes no pixels and costs time in proportion to the text's length only, so it may run
    on the event loop; None means the image needs ``prepare_payload`` (in a worker thread).
    Payload errors (a URL, bad base64, too large) raise here already.
    """
    text = _text_of(value, limits)
    if limits.check != "header":
        return None
    return _jpeg_from_header(text, limits)


# A JPEG's markers up to its first scan: ~0.6 KiB for a plain JFIF file, more with EXIF or ICC
# data; Pillow reads the header from the first of these heads that holds it all.
_HEADS = (4096, 65536)  # base64 characters: 3 KiB, 48 KiB
_TAIL_CHARS = 64  # the last 48 bytes, where the EOI marker is


def _jpeg_from_header(text: str | bytes, limits: ImageLimits) -> PreparedImage | None:
    """The header-only check of a JPEG (see ``prepare_payload``); None: take the full path.
    ``text`` as bytes has had its alphabet checked already (:class:`B64Image`)."""
    # "/9j/" is base64 of FF D8 FF: the SOI marker and the start of the next one.
    if isinstance(text, bytes):
        if not text.startswith(b"/9j/") or len(text) <= _HEADS[0] or len(text) % 4:
            return None
        raw = text
    else:
        if not text.startswith("/9j/") or len(text) <= _HEADS[0] or len(text) % 4:
            return None
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidImage("image is not valid base64") from None
        if not valid_b64(raw):
            raise InvalidImage("image is not valid base64")
    if b"\xff\xd9" not in binascii.a2b_base64(raw[-_TAIL_CHARS:]):
        return None  # truncated, or trailing bytes after EOI: let the decode check judge
    for head in _HEADS:
        if head >= len(raw):
            return None
        size = _head_size(binascii.a2b_base64(raw[:head]), limits)
        if size is _LONGER:
            continue  # the header goes on past this head
        if size is None:
            return None
        return PreparedImage(None, "image/jpeg", size[0], size[1], None, raw)
    return None


_LONGER = (-1, -1)  # _head_size: the header goes on past the bytes given


def _head_size(head: bytes, limits: ImageLimits) -> tuple[int, int] | None:
    """A pass-through JPEG's size from its header (:mod:`editjudge.server.jpeg`, Pillow when
    that reader is unsure); None if it cannot pass through unchanged; ``_LONGER``."""
    try:
        found = read_header(head)
    except Truncated:
        return _LONGER
    if found is None:
        try:
            image = _open_head(head, limits)
        except InvalidImage:
            return _LONGER
        return None if image is None else (image.width, image.height)
    pixels = found.width * found.height
    if pixels > limits.max_pixels:
        raise TooManyPixels(
            f"image is {found.width}x{found.height} = {pixels} pixels;"
            f" the limit is {limits.max_pixels}"
        )
    cap = limits.resize_max_pixels
    if found.rotated or (cap is not None and pixels > cap) or "JPEG" not in limits.formats:
        return None
    return found.width, found.height


def _open_head(head: bytes, limits: ImageLimits) -> Image.Image | None:
    """Pillow's view of a JPEG header; None if it cannot pass through unchanged."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open(head, limits, formats=("JPEG", "MPO"))
            cap = limits.resize_max_pixels
            if _format(image) != "JPEG" or (cap is not None and _pixels(image) > cap):
                return None
            if image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1):
                return None
            return image
    except EditJudgeError:
        raise  # InvalidImage: header cut short; too many pixels or format: known for sure
    except Exception:
        return None  # e.g. malformed EXIF: the full path decides


def prepare_image(
    data: bytes, limits: ImageLimits, b64: str | bytes = "", memory: Memory = _unbudgeted
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
            image = _open(data, limits)
            cap = limits.resize_max_pixels
            needs_resize = cap is not None and _pixels(image) > cap
            rotated = image.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1)
            mime = _PASSTHROUGH.get(_format(image) or "")
            if mime is not None and not rotated and not needs_resize:
                width, height = image.size  # before the check: draft mode shrinks it
                _check_decodes(image, memory)
                return PreparedImage(None if b64 else data, mime, width, height, digest, b64)
            # The decoded source, its rotated or converted copy and the resized result.
            with memory(3 * _BYTES_PER_PIXEL * _pixels(image)):
                return _reencode(image, limits, digest)
    except EditJudgeError:
        raise
    except Exception:
        raise InvalidImage("image data is truncated or corrupt") from None


def _open(data: bytes, limits: ImageLimits, formats: tuple[str, ...] | None = None) -> Image.Image:
    """Pillow's header parse; ``formats`` skips probing other plugins when the format is known."""
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        claimed = f"{size.group(1)} pixels" if size else "too many pixels"
        raise TooManyPixels(f"image has {claimed}; the limit is {limits.max_pixels}") from None
    except Exception:
        raise InvalidImage("image could not be decoded (not a supported image file)") from None
    if _format(image) not in limits.formats:
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


def _format(image: Image.Image) -> str | None:
    """Pillow's format name, a multi-picture JPEG ("MPO", as phones write them) counted as JPEG:
    it is a JPEG followed by more pictures, which decoders (vLLM's too) read as its first one."""
    return "JPEG" if image.format == "MPO" else image.format


def _check_decodes(image: Image.Image, memory: Memory) -> None:
    """Decode the pixels once so truncated or corrupt files fail here, not inside vLLM."""
    if _format(image) == "JPEG":
        # DCT scaling walks the whole entropy-coded stream at 1/8 of the decode cost.
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    with memory(_BYTES_PER_PIXEL * _pixels(image)):
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
    source_format = _format(image)
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
    encoded = base64.b64encode(out.getbuffer())
    return PreparedImage(None, mime, image.width, image.height, digest, encoded)
