"""Image preparation before upload: pass-through, EXIF, downscale, re-encode, size limits."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image

from editjudge.client import InputError, _images
from editjudge.client._images import ImagePolicy, fit, prepare
from tests.helpers import image_bytes

MiB = 1024 * 1024


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A gradient with noise: compresses like a photo (PNG large, JPEG much smaller)."""
    rng = random.Random(seed)
    w, h = size
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.frombytes("RGB", size, bytes(rng.randrange(40) for _ in range(w * h * 3)))
    return Image.blend(im, noise, 0.3)


def test_small_jpeg_png_webp_pass_through_byte_for_byte() -> None:
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        data = image_bytes(fmt=fmt)
        out = prepare(data, ImagePolicy(10_000_000, MiB))
        assert out.data == data and out.mime == mime and (out.width, out.height) == (64, 48)


def test_exif_rotation_is_applied_and_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.new("RGB", (80, 20), (200, 10, 10)).save(buf, "JPEG", exif=exif)
    out = prepare(buf.getvalue(), ImagePolicy(10_000_000, MiB))
    im = _open(out.data)
    assert im.size == (20, 80) and (out.width, out.height) == (20, 80)
    assert im.format == "JPEG" and im.getexif().get(0x0112, 1) == 1


def test_over_the_cap_is_downscaled_keeping_aspect_and_format() -> None:
    buf = io.BytesIO()
    _photo((400, 300)).save(buf, "JPEG", quality=90)
    out = prepare(buf.getvalue(), ImagePolicy(12_000, MiB))
    im = _open(out.data)
    assert im.format == "JPEG" and im.width * im.height <= 12_000
    assert abs(im.width / im.height - 4 / 3) < 0.05 and im.width >= 120


def test_transparent_png_stays_png_with_alpha() -> None:
    im = Image.new("RGBA", (300, 300), (10, 20, 30, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    out = prepare(buf.getvalue(), ImagePolicy(10_000, MiB))
    back = _open(out.data)
    assert back.format == "PNG" and back.mode == "RGBA" and back.width * back.height <= 10_000


def test_large_photo_png_becomes_jpeg_but_flat_png_stays_png(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_images, "LARGE_PNG_BYTES", 20_000)
    buf = io.BytesIO()
    _photo((200, 200)).save(buf, "PNG")
    assert len(buf.getvalue()) > 20_000
    out = prepare(buf.getvalue(), ImagePolicy(10_000_000, MiB))
    assert out.mime == "image/jpeg" and 2 * len(out.data) <= len(buf.getvalue())
    # the same photo from a format without a PNG size to go by (BMP, a PIL image): same outcome
    bmp = io.BytesIO()
    _photo((200, 200)).save(bmp, "BMP")
    assert prepare(bmp.getvalue(), ImagePolicy(10_000_000, MiB)).mime == "image/jpeg"
    assert prepare(_photo((200, 200)), ImagePolicy(10_000_000, MiB)).mime == "image/jpeg"
    # a drawing compresses well as PNG: it is never made lossy
    flat = image_bytes(size=(2000, 1500))
    out = prepare(flat, ImagePolicy(1_000_000, MiB))
    assert out.mime == "image/png" and out.width * out.height <= 1_000_000


def test_too_many_bytes_shrinks_until_it_fits_or_says_so() -> None:
    buf = io.BytesIO()
    _photo((300, 300)).save(buf, "JPEG", quality=95)
    size = len(buf.getvalue())
    out = prepare(buf.getvalue(), ImagePolicy(10_000_000, size // 3))
    assert len(out.data) <= size // 3 and out.mime == "image/jpeg"
    with pytest.raises(InputError) as info:
        prepare(buf.getvalue(), ImagePolicy(10_000_000, 100))
    assert info.value.code == "image_too_large"


def test_pil_images_and_paths(tmp_path: Path) -> None:
    im = Image.new("RGB", (30, 40), (1, 2, 3))
    out = prepare(im, ImagePolicy(10_000_000, MiB))
    assert out.mime == "image/png" and _open(out.data).size == (30, 40)
    assert im.size == (30, 40)  # the caller's image is untouched
    path = tmp_path / "x.png"
    path.write_bytes(image_bytes())
    assert prepare(path, ImagePolicy(10_000_000, MiB)).data == image_bytes()
    assert prepare(str(path), ImagePolicy(10_000_000, MiB)).data == image_bytes()


def test_bad_inputs_are_input_errors_with_codes(tmp_path: Path) -> None:
    # (A file cut off after a valid header passes through: the router decodes and rejects it.)
    for data in (b"definitely not an image", b"", image_bytes()[:60]):
        with pytest.raises(InputError) as info:
            prepare(data, ImagePolicy(10_000_000, MiB))
        assert info.value.code == "invalid_image"
    with pytest.raises(InputError) as info:
        prepare(tmp_path / "missing.png", ImagePolicy(10_000_000, MiB))
    assert info.value.code == "file_not_found" and "missing.png" in str(info.value)
    with pytest.raises(InputError) as info:
        prepare(tmp_path, ImagePolicy(10_000_000, MiB))
    assert info.value.code == "file_unreadable"
    with pytest.raises(TypeError):
        prepare(123, ImagePolicy(10_000_000, MiB))  # type: ignore[arg-type]


def test_fit_is_the_routers_arithmetic() -> None:
    from editjudge.server.images import fit as router_fit

    for size in [(4000, 3000), (1920, 1080), (333, 4444), (1000, 999), (50, 50)]:
        for cap in (10_000, 250_000, 1_003_520):
            for grid in (None, 28, 32):
                expected = router_fit(*size, cap, grid) if size[0] * size[1] > cap else size
                assert fit(size, cap, grid) == expected, (size, cap, grid)


def test_grid_snaps_resized_sides() -> None:
    buf = io.BytesIO()
    _photo((400, 300)).save(buf, "JPEG")
    out = prepare(buf.getvalue(), ImagePolicy(50_000, MiB, grid=28))
    assert out.width % 28 == 0 and out.height % 28 == 0 and out.width * out.height <= 50_000
    assert _open(out.data).size == (out.width, out.height)
