"""The router's own JPEG header reader agrees with Pillow, or says it is unsure."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from editjudge.server.jpeg import JpegHeader, Truncated, read_header


def jpeg(size: tuple[int, int] = (640, 480), mode: str = "RGB", **save: object) -> bytes:
    im = Image.new(mode, size, 120 if mode == "L" else (10, 200, 30, 40)[: len(mode)])
    buf = io.BytesIO()
    im.save(buf, "JPEG", **save)
    return buf.getvalue()


def exif(orientation: int) -> bytes:
    """An EXIF block (as Pillow writes it: little-endian TIFF) with this orientation."""
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


@pytest.mark.parametrize(
    "data",
    [
        jpeg(),
        jpeg((1024, 768), progressive=True),
        jpeg((33, 17), "L"),
        jpeg((300, 200), "CMYK"),
        jpeg((800, 600), icc_profile=b"\x00" * 20_000),  # a long APP2 before the frame header
        jpeg((257, 129), exif=exif(1)),
    ],
)
def test_size_agrees_with_pillow(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        assert read_header(data) == JpegHeader(im.width, im.height, rotated=False)


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_an_exif_rotation_is_seen(orientation: int) -> None:
    assert read_header(jpeg(exif=exif(orientation))) == JpegHeader(640, 480, rotated=True)


def test_big_endian_exif_is_read() -> None:
    # TIFF "MM": IFD0 at 8, one entry: tag 0x0112, SHORT, count 1, value 6.
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + b"\x00\x01"
        + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    )
    assert read_header(jpeg(exif=b"Exif\x00\x00" + tiff)).rotated  # type: ignore[union-attr]


def test_a_header_cut_short_asks_for_more() -> None:
    data = jpeg((800, 600), icc_profile=b"\x00" * 20_000)
    with pytest.raises(Truncated):
        read_header(data[:4096])


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,  # not a JPEG
        b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 100,  # scan data before any frame header
        b"\xff\xd8\x00\x00" + b"\x00" * 100,  # not a marker where one must be
        jpeg(exif=b"Exif\x00\x00" + b"XX" + b"\x00" * 20),  # EXIF that is no TIFF
    ],
)
def test_anything_unusual_is_left_to_pillow(data: bytes) -> None:
    assert read_header(data) is None
