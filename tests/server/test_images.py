from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from editjudge.server.errors import (
    ImageTooLarge,
    InvalidImage,
    TooManyPixels,
    UnsupportedImageFormat,
)
from editjudge.server.images import ImageLimits, decode_payload, prepare_image
from editjudge.server.passthrough import prepare_payload
from tests.helpers import b64, data_url, fake_engines, image_bytes, router

LIMITS = ImageLimits(
    max_bytes=1_000_000, max_pixels=1_000_000, formats=frozenset({"PNG", "JPEG", "WEBP", "GIF"})
)


def test_png_passes_through_byte_for_byte_and_reuses_base64() -> None:
    raw = image_bytes(fmt="PNG")
    data, text = decode_payload(b64(raw), LIMITS)
    img = prepare_image(data, LIMITS, text)
    assert img.data == raw and img.mime == "image/png" and (img.width, img.height) == (64, 48)
    assert img.data_url() == "data:image/png;base64," + text


def test_data_url_is_accepted() -> None:
    raw = image_bytes(fmt="JPEG")
    data, _ = decode_payload(data_url(raw, "image/jpeg"), LIMITS)
    assert prepare_image(data, LIMITS).mime == "image/jpeg"


def test_digest_depends_on_content_only() -> None:
    a = prepare_image(image_bytes((1, 2, 3)), LIMITS)
    b = prepare_image(image_bytes((1, 2, 3)), LIMITS)
    c = prepare_image(image_bytes((9, 2, 3)), LIMITS)
    assert a.digest == b.digest != c.digest


@pytest.mark.parametrize(
    "value", ["http://example.com/a.png", "https://x/y.jpg", "file:///etc/passwd"]
)
def test_urls_are_never_fetched(value: str) -> None:
    with pytest.raises(InvalidImage, match="not fetched"):
        decode_payload(value, LIMITS)


@pytest.mark.parametrize("value", ["not base64 at all!", "data:image/png,rawbytes", "", "   "])
def test_bad_payloads(value: str) -> None:
    with pytest.raises(InvalidImage):
        decode_payload(value, LIMITS)


def test_encoded_size_checked_before_base64_decoding() -> None:
    small = ImageLimits(max_bytes=100, max_pixels=10**6, formats=frozenset({"PNG"}))
    with pytest.raises(ImageTooLarge):
        decode_payload("A" * 1000, small)


def test_not_an_image() -> None:
    with pytest.raises(InvalidImage):
        prepare_image(b"hello, I am text", LIMITS)


def test_truncated_jpeg_is_rejected() -> None:
    raw = image_bytes(fmt="JPEG", size=(256, 256))
    with pytest.raises(InvalidImage, match=r"truncated|corrupt"):
        prepare_image(raw[: len(raw) // 2], LIMITS)


def test_truncated_png_is_rejected() -> None:
    raw = image_bytes(fmt="PNG", size=(256, 256))
    with pytest.raises(InvalidImage):
        prepare_image(raw[: len(raw) - 40], LIMITS)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that *claims* width x height but carries almost no data: a decompression bomb shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


def test_pixel_cap_is_checked_from_the_header_before_decoding() -> None:
    # 50k x 50k = 2.5 GP: decoding would need 7.5 GB; the header check refuses it at once.
    with pytest.raises(TooManyPixels, match="2500000000 pixels"):
        prepare_image(_png_header_only(50_000, 50_000), LIMITS)


def test_pixel_cap_below_pillows_own_guard_reports_the_size() -> None:
    limits = ImageLimits(max_bytes=10**6, max_pixels=1000, formats=frozenset({"PNG"}))
    with pytest.raises(TooManyPixels, match="5000x5000"):
        prepare_image(_png_header_only(5000, 5000), limits)


def test_pixel_cap_boundary() -> None:
    limits = ImageLimits(max_bytes=10**6, max_pixels=64 * 48, formats=frozenset({"PNG"}))
    prepare_image(image_bytes(size=(64, 48)), limits)
    with pytest.raises(TooManyPixels):
        prepare_image(image_bytes(size=(65, 48)), limits)


def test_format_allow_list() -> None:
    with pytest.raises(UnsupportedImageFormat, match="BMP"):
        prepare_image(image_bytes(fmt="BMP"), LIMITS)


def test_gif_is_reencoded_to_png() -> None:
    img = prepare_image(image_bytes(fmt="GIF"), LIMITS)
    assert img.mime == "image/png"
    assert Image.open(io.BytesIO(img.data)).format == "PNG"


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (80, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif.tobytes())
    img = prepare_image(buf.getvalue(), LIMITS)
    assert (img.width, img.height) == (40, 80)
    assert img.mime == "image/jpeg"
    assert Image.open(io.BytesIO(img.data)).getexif().get(0x0112, 1) == 1


def test_resize_cap_downscales_keeping_aspect() -> None:
    limits = ImageLimits(10**7, 10**7, frozenset({"PNG"}), resize_max_pixels=100 * 50)
    img = prepare_image(image_bytes(size=(400, 200)), limits)
    assert img.width * img.height <= 100 * 50
    assert abs(img.width / img.height - 2.0) < 0.05


def test_image_bytes_limit() -> None:
    limits = ImageLimits(max_bytes=10, max_pixels=10**6, formats=frozenset({"PNG"}))
    with pytest.raises(ImageTooLarge):
        prepare_image(image_bytes(), limits)


def test_fit_keeps_aspect_under_cap_and_snaps_to_grid() -> None:
    from editjudge.server.images import fit

    w, h = fit(4000, 3000, 1_003_520)
    assert w * h <= 1_003_520 and abs(w / h - 4 / 3) < 0.01
    w, h = fit(4000, 3000, 1_003_520, grid=28)
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 1_003_520
    assert (w, h) == (1148, 840)  # floor(1156.7 / 28) * 28, floor(867.5 / 28) * 28


def test_resize_with_grid() -> None:
    limits = ImageLimits(
        10**7, 10**7, frozenset({"PNG"}), resize_max_pixels=100 * 100, resize_grid=28
    )
    img = prepare_image(image_bytes(size=(400, 200)), limits)
    assert img.width % 28 == 0 and img.height % 28 == 0 and img.width * img.height <= 10_000


def test_jpeg_reports_its_real_size_after_the_decode_check() -> None:
    # The check decodes in draft mode (1/8 scale); the size reported must be the image's own.
    img = prepare_image(image_bytes(fmt="JPEG", size=(256, 200)), LIMITS)
    assert (img.width, img.height) == (256, 200)


def _mpo() -> bytes:
    """A multi-picture JPEG (Pillow's "MPO"), as phones write them: two pictures in one file."""
    first, second = Image.new("RGB", (320, 240), (200, 30, 30)), Image.new("RGB", (320, 240))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def test_a_multi_picture_jpeg_is_a_jpeg() -> None:
    """Refused with 415 before: Pillow names the format MPO, which was not on the allow-list."""
    raw = _mpo()
    assert Image.open(io.BytesIO(raw)).format == "MPO"
    img = prepare_image(raw, LIMITS)
    assert (img.mime, img.width, img.height) == ("image/jpeg", 320, 240)
    assert img.data == raw  # passed through: decoders read the first picture
    header = ImageLimits(LIMITS.max_bytes, LIMITS.max_pixels, LIMITS.formats, check="header")
    assert prepare_payload(b64(raw), header).data == raw


async def test_a_multi_picture_jpeg_is_scored() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", json={"image": b64(_mpo()), "instruction": "x"})
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
