"""JPEG-encode an image tensor on the GPU it already lives on (nvJPEG, through torchvision).

An RL trainer's generated images are CUDA tensors. Encoding one 1024x1024 image on the CPU costs
5-8 ms of a core with libjpeg-turbo (Pillow or any other binding: the codec is the cost), plus a
copy of the pixels to the host; nvJPEG does it on the GPU, and the CPU only launches the work and
copies the finished JPEG back: well under a millisecond (``bench/reward_encode.py``). It is used
when torchvision is installed with its CUDA image codecs; otherwise, or for what nvJPEG does not
take (not RGB), the caller falls back to the CPU path, and after a failure it stops trying.

torch and torchvision are imported only here, and only once a CUDA tensor has been passed in:
they are never dependencies of the client.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from ._images import JPEG_QUALITY, ImagePolicy, fit

_lock = threading.Lock()  # one encode at a time: nvJPEG's state in torchvision is shared
_encoder: Callable[..., Any] | None = None
_unavailable = False


def gpu_jpeg(tensor: Any, policy: ImagePolicy) -> bytes | None:
    """JPEG bytes of a CUDA CHW tensor (floats in [0, 1], or uint8) within the router's pixel
    cap, or None when the GPU cannot do it here (the caller encodes on the CPU instead)."""
    if not getattr(tensor, "is_cuda", False) or tensor.ndim != 3 or tensor.shape[0] != 3:
        return None
    encoder = _load()
    if encoder is None:
        return None
    pixels = _within_cap(tensor.detach(), policy)
    if pixels.is_floating_point():
        pixels = pixels.float().mul(255.0).add_(0.5).clamp_(0.0, 255.0).byte()
    global _unavailable
    with _lock:
        try:
            encoded = encoder(pixels.contiguous(), quality=JPEG_QUALITY)
        except (RuntimeError, ValueError, TypeError):
            _unavailable = True  # e.g. a torchvision built without nvJPEG: use the CPU from now
            return None
    return bytes(encoded.cpu().numpy().tobytes())


def _within_cap(tensor: Any, policy: ImagePolicy) -> Any:
    """Downscaled on the GPU (bicubic, antialiased) to the size the CPU path would give."""
    height, width = int(tensor.shape[1]), int(tensor.shape[2])
    if width * height <= policy.cap_pixels:
        return tensor
    new_width, new_height = fit((width, height), policy.cap_pixels, policy.grid)
    functional = importlib.import_module("torch.nn.functional")
    floats = tensor.float() if tensor.is_floating_point() else tensor.float().div(255.0)
    small = functional.interpolate(
        floats[None], size=(new_height, new_width), mode="bicubic", antialias=True
    )
    return small[0]


def _load() -> Callable[..., Any] | None:
    global _encoder, _unavailable
    if _unavailable:
        return None
    if _encoder is None:
        try:
            _encoder = importlib.import_module("torchvision.io").encode_jpeg
        except (ImportError, AttributeError):
            _unavailable = True
            return None
    return _encoder
