"""In-memory images of a training loop (Pillow images, numpy arrays, torch tensors) to upload
bytes, fast.

A trainer's images were generated a moment ago and live in memory: there is no file whose bytes
could go up unchanged, so every one is encoded. JPEG at the client's usual quality (95), which
libjpeg-turbo writes for a 1024x1024 image in 5-8 ms of a core, where even the fastest PNG takes
well over 100 ms; ``lossless=True`` sends PNG for those who want the judge to see exact pixels
and can pay for it. Images with real transparency are always PNG. CUDA tensors are encoded on
their GPU where torchvision can (:mod:`._gpu_jpeg`), at a fraction of the CPU's cost.

numpy and torch are never imported here: arrays are read through their own methods and Pillow's
array interface, so neither is a dependency of the client.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from ._gpu_jpeg import gpu_jpeg
from ._images import JPEG_QUALITY, ImagePolicy, fit, prepare

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def is_pixels(value: object) -> bool:
    """Whether ``value`` is an in-memory image this module encodes (not a path or bytes)."""
    return isinstance(value, Image.Image) or _library(value) in ("numpy", "torch")


def check(value: object, where: str) -> None:
    """Reject what :func:`encode` cannot take, cheaply and before anything is sent.

    Raises ``TypeError`` (not an image) or ``ValueError`` (an array of the wrong shape or type).
    """
    library = _library(value)
    if isinstance(value, Image.Image):
        return
    if library == "numpy":
        _check_numpy(value, where)
    elif library == "torch":
        _check_torch(value, where)
    else:
        raise TypeError(
            f"{where}: expected a PIL.Image, a numpy HWC uint8 array or a torch CHW tensor, "
            f"not {type(value).__name__}"
        )


def to_pil(value: Any) -> Image.Image:
    """A Pillow image of ``value`` (checked with :func:`check` first)."""
    if isinstance(value, Image.Image):
        return value
    if _library(value) == "torch":
        value = _torch_to_hwc_uint8(value)
    if value.ndim == 3 and value.shape[2] == 1:
        value = value[:, :, 0]
    return Image.fromarray(value)  # HW -> L, HWC -> RGB or RGBA


def encode(value: Any, policy: ImagePolicy, *, lossless: bool = False) -> bytes:
    """``value`` as JPEG (or PNG) bytes within the router's pixel cap, ready to upload."""
    if not lossless and _library(value) == "torch":
        data = gpu_jpeg(value, policy)
        if data is not None and len(data) <= policy.max_bytes:
            return data
    image = to_pil(value)
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if image.width * image.height > policy.cap_pixels:
        # The router's own filter (a quarter cheaper than Lanczos): the judge sees what it would.
        size = fit(image.size, policy.cap_pixels, policy.grid)
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    out = io.BytesIO()
    if lossless or image.mode == "RGBA":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY)
    data = out.getvalue()
    if len(data) > policy.max_bytes:  # rare: the general path shrinks until it fits
        return prepare(image, policy).data
    return data


def _library(value: object) -> str:
    return type(value).__module__.partition(".")[0]


def _check_numpy(array: Any, where: str) -> None:
    if str(array.dtype) != "uint8":
        raise ValueError(
            f"{where}: numpy images must be uint8 (0-255), not {array.dtype}; "
            "for floats in [0, 1] pass (array * 255).round().astype('uint8')"
        )
    _check_shape(tuple(array.shape), where, "numpy", "HWC", channel_axis=-1)


def _check_torch(tensor: Any, where: str) -> None:
    if not (tensor.is_floating_point() or str(tensor.dtype) == "torch.uint8"):
        raise ValueError(
            f"{where}: torch images must be floating point in [0, 1] or uint8, not {tensor.dtype}"
        )
    _check_shape(tuple(tensor.shape), where, "torch", "CHW", channel_axis=0)


def _check_shape(
    shape: tuple[int, ...], where: str, kind: str, layout: str, channel_axis: int
) -> None:
    channels = 1 if len(shape) == 2 else shape[channel_axis] if len(shape) == 3 else None
    if channels not in _MODES or 0 in shape:
        raise ValueError(
            f"{where}: a {kind} image must be {layout} with 1, 3 or 4 channels (or 2-D grey), "
            f"not shape {shape}; pass a batch as a sequence of images"
        )


def _torch_to_hwc_uint8(tensor: Any) -> Any:
    """A CHW tensor (floats in [0, 1], or uint8) as an HWC uint8 numpy array.

    The arithmetic runs where the tensor lives (a GPU does it in microseconds) and only the
    uint8 pixels cross to the CPU: a quarter of the bytes of the float tensor.
    """
    t = tensor.detach()
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.is_floating_point():
        # x * 255 + 0.5, truncated: rounds to nearest for the clamped, non-negative values.
        t = t.float().mul(255.0).add_(0.5).clamp_(0.0, 255.0).byte()
    return t.permute(1, 2, 0).contiguous().cpu().numpy()
