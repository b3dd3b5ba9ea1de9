"""In-memory images (Pillow, numpy, torch) to upload bytes: what the judge will see."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageChops

from editjudge.client._images import ImagePolicy
from editjudge.client._pixels import check, encode, is_pixels, to_pil

WIDE = ImagePolicy(cap_pixels=10_000_000, max_bytes=32 << 20)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return max(
        hi for _, hi in ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getextrema()
    )


def test_numpy_hwc_goes_as_jpeg_close_to_the_pixels() -> None:
    array = gradient()
    out = decode(encode(array, WIDE))
    assert out.format == "JPEG" and out.size == (64, 48) and out.mode == "RGB"
    assert max_diff(out, Image.fromarray(array)) <= 24  # quality 95 on a busy 64x48 image


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (np.full((20, 30), 77, np.uint8), "L"),
        (np.full((20, 30, 1), 77, np.uint8), "L"),
        (np.full((20, 30, 3), 77, np.uint8), "RGB"),
        (np.dstack([np.full((20, 30, 3), 77, np.uint8), np.full((20, 30), 255, np.uint8)]), "RGB"),
    ],
)
def test_array_layouts(array: np.ndarray, mode: str) -> None:
    out = decode(encode(array, WIDE))
    assert (out.format, out.mode, out.size) == ("JPEG", mode, (30, 20))


def test_real_transparency_and_lossless_go_as_png_with_exact_pixels() -> None:
    rgba = np.dstack([gradient(), np.full((48, 64), 128, np.uint8)])
    out = decode(encode(rgba, WIDE))
    assert out.format == "PNG" and np.array_equal(np.asarray(out), rgba)
    exact = decode(encode(gradient(), WIDE, lossless=True))
    assert exact.format == "PNG" and np.array_equal(np.asarray(exact), gradient())


def test_a_strided_view_is_encoded_as_it_looks() -> None:
    array = gradient()
    flipped = array[:, ::-1]  # not C-contiguous
    out = decode(encode(flipped, WIDE, lossless=True))
    assert np.array_equal(np.asarray(out), flipped)


def test_downscaled_to_the_cap_on_the_routers_grid() -> None:
    policy = ImagePolicy(cap_pixels=50_000, max_bytes=32 << 20, grid=28)
    out = decode(encode(Image.new("RGB", (1024, 768), (1, 2, 3)), policy))
    assert out.size == (252, 168)  # the largest 28-multiples within 50k pixels, as the router


def test_over_max_bytes_falls_back_to_shrinking() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    policy = ImagePolicy(cap_pixels=10_000_000, max_bytes=60_000)
    data = encode(noise, policy)
    assert len(data) <= 60_000 and decode(data).width < 300


def test_pil_modes_other_than_rgb_l_rgba_are_converted() -> None:
    palette = Image.new("P", (10, 10))
    assert decode(encode(palette, WIDE)).mode == "RGB"
    cmyk = Image.new("CMYK", (10, 10))
    assert decode(encode(cmyk, WIDE)).format == "JPEG"


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), ValueError, "uint8"),
        (np.zeros((8, 8, 2), np.uint8), ValueError, r"shape \(8, 8, 2\)"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "shape"),
        (np.zeros((8,), np.uint8), ValueError, "shape"),
        ("edit.png", TypeError, "not str"),
        (3.0, TypeError, "not float"),
    ],
)
def test_check_names_the_problem(value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check(value, "images[3]")
    assert not is_pixels("edit.png") and is_pixels(np.zeros((2, 2), np.uint8))


def test_torch_chw_floats_and_uint8() -> None:
    torch = pytest.importorskip("torch")
    array = gradient()
    floats = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    check(floats, "t")
    assert np.array_equal(np.asarray(to_pil(floats)), array)  # rounds back to the same bytes
    clamped = np.asarray(to_pil(floats * 1.5 - 0.2))
    assert clamped.max() == 255 and clamped.min() == 0
    as_bytes = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    assert np.array_equal(np.asarray(to_pil(as_bytes)), array)
    grey = torch.full((1, 8, 8), 0.5)
    assert to_pil(grey).mode == "L" and np.asarray(to_pil(grey)).max() == 128
    assert np.array_equal(np.asarray(to_pil(floats.half())), array)
    with pytest.raises(ValueError, match="CHW"):
        check(torch.zeros(8, 8, 3), "t")
    with pytest.raises(ValueError, match="floating point in"):
        check(torch.zeros(3, 8, 8, dtype=torch.int32), "t")


def test_cuda_tensors_are_encoded_on_their_gpu() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from editjudge.client._gpu_jpeg import gpu_jpeg

    array = gradient(480, 640)
    floats = torch.from_numpy(array).permute(2, 0, 1).float().div(255.0).cuda()
    assert gpu_jpeg(floats, WIDE) is not None  # the GPU did it, not the fallback
    for tensor in (floats, torch.from_numpy(array).permute(2, 0, 1).contiguous().cuda()):
        out = decode(encode(tensor, WIDE))
        assert out.format == "JPEG" and out.size == (640, 480)
        assert max_diff(out, Image.fromarray(array)) <= 24
    capped = decode(encode(floats, ImagePolicy(cap_pixels=50_000, max_bytes=32 << 20, grid=28)))
    assert capped.size == (252, 168)  # the CPU path's size, resized on the GPU
    grey = decode(encode(floats[:1], WIDE))  # nvJPEG takes RGB only: the CPU path does grey
    assert grey.mode == "L" and grey.size == (640, 480)
