"""The header-only JPEG check (``image_check = "header"``) and its fall-backs to the full path."""

from __future__ import annotations

import base64
import io
import random
import struct

import pytest
from PIL import Image

from editjudge.server import intake
from editjudge.server.errors import InvalidImage, TooManyPixels
from editjudge.server.images import ImageLimits, content_digest
from editjudge.server.passthrough import prepare_payload
from tests.helpers import b64, fake_engines, image_bytes, item, router

HEADER = ImageLimits(10**7, 10**6, frozenset({"JPEG", "PNG"}), check="header")
DECODE = ImageLimits(10**7, 10**6, frozenset({"JPEG", "PNG"}), check="decode")


def noisy_jpeg(size: tuple[int, int] = (256, 256), **save: object) -> bytes:
    """A JPEG big enough (> 12 KiB) for the header path."""
    rnd = random.Random(size[0])
    im = Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **save)
    assert len(buf.getvalue()) > 20_000
    return buf.getvalue()


def text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_jpeg_passes_without_decoding_its_base64() -> None:
    raw = noisy_jpeg()
    img = prepare_payload("data:image/jpeg;base64," + text(raw), HEADER)
    assert img._digest is None  # nothing decoded yet
    assert (img.mime, img.width, img.height, img.size) == ("image/jpeg", 256, 256, len(raw))
    assert img.data_url() == "data:image/jpeg;base64," + text(raw)
    assert img.data == raw and img.digest == content_digest(raw)  # derived on demand


def test_both_modes_agree_on_a_good_jpeg() -> None:
    raw = noisy_jpeg()
    fast, full = prepare_payload(text(raw), HEADER), prepare_payload(text(raw), DECODE)
    assert fast.data_url() == full.data_url() and fast.digest == full.digest
    assert full._digest is not None  # the full path decoded the text (and hashed the bytes)


@pytest.mark.parametrize("bad", ["!", "=", "\u00e9", " "])
def test_stray_characters_are_invalid_base64(bad: str) -> None:
    t = text(noisy_jpeg())
    middle = len(t) // 2
    with pytest.raises(InvalidImage, match="base64"):
        prepare_payload(t[:middle] + bad + t[middle + 1 :], HEADER)


def test_truncated_jpeg_is_rejected() -> None:
    raw = noisy_jpeg()
    with pytest.raises(InvalidImage, match=r"truncated|corrupt"):
        prepare_payload(text(raw[: len(raw) * 2 // 3 // 3 * 3]), HEADER)


def test_trailing_bytes_after_eoi_fall_back_to_the_full_check() -> None:
    raw = noisy_jpeg() + b"\0" * 300
    img = prepare_payload(text(raw), HEADER)
    assert img._digest is not None and img.data == raw  # decoded: the full check ran


def test_pixel_cap_is_read_from_the_header() -> None:
    raw = noisy_jpeg((1200, 1000))  # 1.2 MP > 1 MP
    with pytest.raises(TooManyPixels):
        prepare_payload(text(raw), HEADER)


def test_rotated_jpeg_takes_the_full_path_and_is_rotated() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    raw = noisy_jpeg((320, 256), exif=exif.tobytes())
    img = prepare_payload(text(raw), HEADER)
    assert (img.width, img.height) == (256, 320) and img.data != raw


def _with_app_segments(raw: bytes, count: int) -> bytes:
    """``raw`` with ``count`` 40 KB application segments before its frame header."""
    blob = b"\xff\xe9" + struct.pack(">H", 40_002) + bytes(40_000)
    return raw[:2] + blob * count + raw[2:]


def test_a_longer_header_is_read_from_a_bigger_head() -> None:
    img = prepare_payload(text(_with_app_segments(noisy_jpeg(), 1)), HEADER)
    assert img._digest is None and (img.width, img.height) == (256, 256)


def test_header_longer_than_every_head_falls_back() -> None:
    padded = _with_app_segments(noisy_jpeg(), 2)
    img = prepare_payload(text(padded), HEADER)
    assert img._digest is not None and img.data == padded and (img.width, img.height) == (256, 256)


def test_corrupt_entropy_data_is_caught_only_by_the_decode_check() -> None:
    raw = bytearray(noisy_jpeg())
    rnd = random.Random(1)
    for _ in range(200):
        raw[rnd.randrange(len(raw) // 2, len(raw) - 10)] = rnd.randrange(256)
    with pytest.raises(InvalidImage):
        prepare_payload(text(bytes(raw)), DECODE)
    # The header path leaves it to the engine, which rejects it as an item error.
    assert prepare_payload(text(bytes(raw)), HEADER).size == len(raw)


def test_small_and_non_jpeg_images_take_the_full_path() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    img = prepare_payload(text(buf.getvalue()), HEADER)
    assert img.mime == "image/png" and img._digest is not None


async def test_images_checked_inline_are_not_checked_again_when_another_needs_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def counted(value: object, *args: object, **kwargs: object) -> object:
        calls.append(len(value) if isinstance(value, str) else -1)
        return prepare_payload(value, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(intake, "prepare_payload", counted)
    # Fewer items than intake.THREAD_MIN_ITEMS: the request is first tried on the event loop.
    jpegs = [base64.b64encode(noisy_jpeg((300 + k, 300))).decode() for k in range(2)]
    png = b64(image_bytes((9, 9, 9), (40, 30)))  # a PNG always needs the full check
    items = [{**item(k), "image": jpeg} for k, jpeg in enumerate(jpegs)]
    items.append({**item(9), "image": png})
    items = [{k: v for k, v in it.items() if k != "source_image"} for it in items]
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        results = (await client.post("/score", json={"items": items})).json()["results"]
    assert [r["status"] for r in results] == ["ok"] * 3, results
    assert len(calls) == 1  # the PNG alone: the JPEGs kept their inline header check
