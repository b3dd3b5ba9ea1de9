"""Fake-engine replies that depend on the edited image, so tests can tell which image a score is
for, plus images whose expected verdict is known."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image, ImageStat

from editjudge.server.testing.fake_replies import schema_reply

FAIL_RED = 255  # an edited image this red gets a reply that is no score at all


def red_of(colour_digit: int) -> int:
    """A red channel value that :func:`digit_by_red` reads back as ``colour_digit`` (0-8), with
    room for JPEG's small colour shifts."""
    return 14 + 28 * colour_digit


def solid(digit: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A solid image the fake judge answers ``digit`` for."""
    return Image.new("RGB", size, (red_of(digit), 90, 160))


def edited_red(body: dict[str, Any]) -> int:
    """Mean red of the last image of a chat request (the edited image in every protocol)."""
    urls = [
        part["image_url"]["url"]
        for part in body["messages"][0]["content"]
        if part["type"] == "image_url"
    ]
    data = base64.b64decode(urls[-1].partition(",")[2])
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return round(ImageStat.Stat(image).mean[0])


def digit_by_red(body: dict[str, Any]) -> str:
    """The ``expected`` protocol's digit (``scores["answer"]``) from the edited image's red."""
    structured = body.get("structured_outputs") or {}
    if "choice" not in structured:
        return "x"  # a group's priming call
    return str(min(9, edited_red(body) // 28))


def prose_for_fail_red(body: dict[str, Any]) -> str:
    """Any protocol: a valid reply, except prose (an unparseable reply) for a ``FAIL_RED``
    edited image."""
    structured = body.get("structured_outputs") or {}
    if not structured:
        return "x"  # a group's priming call
    red = edited_red(body)
    return "I like it" if red >= FAIL_RED - 3 else schema_reply(structured, red)
