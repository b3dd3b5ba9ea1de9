"""Shared test helpers: images, fake engines on loopback, the app in-process."""

from __future__ import annotations

import base64
import contextlib
import io
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from PIL import Image, ImageDraw

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from editjudge.server.testing import fake_engines

__all__ = [
    "VLLM_SHORT_OF_MEMORY",
    "admits",
    "b64",
    "data_url",
    "fake_engines",
    "image_bytes",
    "item",
    "router",
]

# What vLLM prints when a card lacks the free memory its --gpu-memory-utilization asks for.
VLLM_SHORT_OF_MEMORY = (
    "ValueError: Free memory on device cuda:0 (30.1/79.2 GiB) on startup is less than desired GPU "
    "memory utilization (0.95, 75.3 GiB). Decrease GPU memory utilization or reduce GPU memory "
    "used by other processes."
)


def admits(params: dict[str, Any], reply: str) -> bool:
    """Whether a call's ``structured_outputs.regex`` constraint admits ``reply`` exactly."""
    return re.fullmatch(params["structured_outputs"]["regex"], reply) is not None


def image_bytes(
    color: tuple[int, int, int] = (200, 40, 40),
    size: tuple[int, int] = (64, 48),
    fmt: str = "PNG",
    **save: object,
) -> bytes:
    im = Image.new("RGB", size, color)
    ImageDraw.Draw(im).rectangle([2, 2, size[0] // 2, size[1] // 2], fill=(0, 128, 255))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{b64(data)}"


def item(i: int = 0, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "image": b64(image_bytes((i * 20 % 256, 80, 120))),
        "source_image": data_url(image_bytes((10, 200, 10))),
        "instruction": f"make object {i} blue",
        "id": f"item-{i}",
    }
    body.update(extra)
    return body


@contextlib.asynccontextmanager
async def router(backends: Sequence[str], **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (lifespan run), reached through ``httpx.ASGITransport``."""
    knobs = {"health_interval_s": 0.2, **overrides}
    settings = Settings(backends=list(backends), **knobs)  # type: ignore[arg-type]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://router", timeout=30
        ) as client:
            yield client
