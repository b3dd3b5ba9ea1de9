"""A JPEG's size and EXIF orientation, read from its header without Pillow.

Intake's header check (:mod:`editjudge.server.images`) needs three facts about a JPEG that passes
through unchanged: that it is one, its width and height (the pixel cap), and whether EXIF asks for
a rotation. Pillow's ``Image.open`` parses every marker of the header in Python and cost ~0.2 ms
per image, a sixth of the router's CPU per request; walking the markers to the frame header reads
only the segments' lengths. Anything this reader does not know for sure is ``UNSURE``, and the
caller falls back to Pillow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Start-of-frame markers carry the size: SOF0-3, 5-7, 9-11, 13-15 (C4 is DHT, C8 JPG, CC DAC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM and RSTn: no length field
_SOI, _EOI, _SOS, _APP1 = 0xD8, 0xD9, 0xDA, 0xE1
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class JpegHeader:
    width: int
    height: int
    rotated: bool  # EXIF asks for a rotation or a flip (orientation 2-8)


class Truncated(Exception):
    """The header goes on past the bytes given: read more of the file."""


UNSURE = None


def read_header(head: bytes) -> JpegHeader | None:
    """The size and orientation of the JPEG whose first bytes are ``head``; ``UNSURE`` (None)
    for anything unusual; :class:`Truncated` when the frame header lies beyond ``head``."""
    if head[:2] != b"\xff\xd8":
        return UNSURE
    pos, rotated = 2, False
    while True:
        if pos + 4 > len(head):
            raise Truncated
        if head[pos] != 0xFF:
            return UNSURE
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE or marker == _SOI:
            pos += 2
            continue
        if marker in (_EOI, _SOS):
            return UNSURE  # no frame header before the data: let Pillow judge
        (length,) = struct.unpack_from(">H", head, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(head):
            raise Truncated
        segment = head[pos + 4 : end]
        if marker == _APP1 and segment[:6] == b"Exif\x00\x00":
            orientation = _exif_orientation(segment[6:])
            if orientation is UNSURE:
                return UNSURE
            rotated = rotated or orientation not in (0, 1)
        elif marker in _SOF:
            if len(segment) < 6:
                return UNSURE
            height, width = struct.unpack_from(">HH", segment, 1)
            if not width or not height or segment[5] not in (1, 3, 4):
                return UNSURE
            return JpegHeader(width, height, rotated)
        pos = end


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag of a TIFF block's first IFD (1 when absent); None if malformed."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            return None
        tag, kind = struct.unpack_from(order + "HH", tiff, entry)
        if tag == _ORIENTATION:
            if kind != 3:  # SHORT
                return None
            return int(struct.unpack_from(order + "H", tiff, entry + 8)[0])
    return 1
