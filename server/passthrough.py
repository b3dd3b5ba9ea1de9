"""The cheap path for the common image: a JPEG that passes through to vLLM unchanged is validated
from its base64 text's alphabet, its header (read from the first few KB without decoding the
rest) and its end-of-image marker, ~10x cheaper than a decode check; anything else takes
:func:`editjudge.server.images.prepare_image`. Entropy-coded data in between is left to the
engine (``EDITJUDGE_IMAGE_CHECK=header``, the default)."""

from __future__ import annotations

import binascii
import warnings

from PIL import Image

from .b64 import valid_b64
from .errors import EditJudgeError, InvalidImage, TooManyPixels
from .images import (
    EXIF_ORIENTATION,
    B64Image,
    ImageLimits,
    Memory,
    PreparedImage,
    b64decode_checked,
    image_format,
    open_checked,
    payload_text_of,
    pixel_count,
    prepare_image,
    unbudgeted,
)
from .jpeg import Truncated, read_header


def prepare_payload(
    value: str | B64Image, limits: ImageLimits, memory: Memory = unbudgeted
) -> PreparedImage:
    """A base64 string or ``data:`` URL, validated and ready for vLLM.

    With ``limits.check == "header"``, a JPEG that can pass through unchanged is validated
    without decoding its base64 text: the alphabet is checked, Pillow reads the header from the
    first few KB (format, size and pixel cap, EXIF orientation) and the last bytes must hold the
    end-of-image marker (truncation). Entropy-coded data in between is left to the engine. Any
    other image, or a JPEG that needs more than that, takes the full path (``prepare_image``),
    whose pixel decode is charged to ``memory`` while it runs.
    """
    text = payload_text_of(value, limits)
    fast = _jpeg_from_header(text, limits) if limits.check == "header" else None
    if fast is not None:
        return fast
    return prepare_image(b64decode_checked(text), limits, text, memory)


def prepare_without_decode(value: str | B64Image, limits: ImageLimits) -> PreparedImage | None:
    """The header-only check of ``prepare_payload`` when it applies, else None.

    It decodes no pixels and costs time in proportion to the text's length only, so it may run
    on the event loop; None means the image needs ``prepare_payload`` (in a worker thread).
    Payload errors (a URL, bad base64, too large) raise here already.
    """
    text = payload_text_of(value, limits)
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
            image = open_checked(head, limits, formats=("JPEG", "MPO"))
            cap = limits.resize_max_pixels
            if image_format(image) != "JPEG" or (cap is not None and pixel_count(image) > cap):
                return None
            if image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1):
                return None
            return image
    except EditJudgeError:
        raise  # InvalidImage: header cut short; too many pixels or format: known for sure
    except Exception:
        return None  # e.g. malformed EXIF: the full path decides
