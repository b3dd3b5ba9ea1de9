"""Pixel decodes run in worker threads, off the event loop, and hold their memory in the budget."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Iterator

import pytest
from PIL import Image

from editjudge.server import images
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.testing import FakeEngine
from tests.helpers import b64, fake_engines, image_bytes, item, router

LIMITS = ImageLimits(32 << 20, 40_000_000, frozenset({"JPEG", "PNG", "WEBP"}))


def solid_png(side: int) -> bytes:
    """A small upload that decodes to ``side**2`` pixels: a decompression-heavy image."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 30, 200)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


async def _at_the_engine(engine: FakeEngine) -> None:
    """Until a request has reached ``engine``: it is admitted and holds part of the budget."""
    while not engine.requests:
        await asyncio.sleep(0.01)


class Recorder:
    """A ``memory`` callback that records what each decode borrowed."""

    def __init__(self) -> None:
        self.borrowed: list[int] = []

    @contextlib.contextmanager
    def __call__(self, nbytes: int) -> Iterator[None]:
        self.borrowed.append(nbytes)
        yield


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (image_bytes(size=(300, 200)), 300 * 200 * 4),  # PNG: every pixel decoded
        (image_bytes(size=(800, 640), fmt="JPEG"), 100 * 80 * 4),  # JPEG: checked at 1/8 scale
        (image_bytes(size=(300, 200), fmt="GIF"), 3 * 300 * 200 * 4),  # re-encoded to PNG
    ],
    ids=["png", "jpeg", "gif"],
)
def test_a_decode_borrows_its_pixels_memory(raw: bytes, expected: int) -> None:
    memory = Recorder()
    prepare_image(
        raw, ImageLimits(32 << 20, 40_000_000, frozenset({"JPEG", "PNG", "GIF"})), "", memory
    )
    assert memory.borrowed == [expected]


@pytest.fixture
def decode_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each pixel decode runs in."""
    names: list[str] = []
    real = images._check_decodes

    def recording(image: Image.Image, memory: images.Memory) -> None:
        names.append(threading.current_thread().name)
        real(image, memory)

    monkeypatch.setattr(images, "_check_decodes", recording)
    return names


async def test_every_pixel_decode_runs_in_a_worker_thread(decode_threads: list[str]) -> None:
    """Single items, batches, multipart files and groups: no decode on the event loop's thread.
    Before, single items and groups decoded on the loop, stalling every endpoint meanwhile
    (40 6000x6000 PNGs: 12 s; ``bench/memory.py --png-side 6000`` measures /health under them)."""
    png = b64(image_bytes(size=(64, 48)))
    jpeg = b64(image_bytes(size=(640, 480), fmt="JPEG"))
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        one = {"image": png, "source_image": jpeg, "instruction": "x"}
        requests = [
            c.post("/score", json=one),
            c.post("/score", json={"items": [one, one]}),
            c.post("/score", json={"items": [one] * 5}),
            c.post("/score", files={"image": ("a.png", image_bytes())}, data={"instruction": "x"}),
            c.post(
                "/score/group",
                json={"source_image": png, "images": [png, jpeg], "instruction": "x"},
            ),
        ]
        for r in [await request for request in requests]:
            assert r.status_code == 200, r.text
        jpeg_only = await c.post("/score", json={"image": jpeg, "instruction": "x"})
        assert jpeg_only.status_code == 200
    assert len(decode_threads) >= 5
    assert all(name.startswith("editjudge-image") for name in decode_threads), decode_threads


async def test_a_jpeg_checked_from_its_header_needs_no_worker(decode_threads: list[str]) -> None:
    jpeg = b64(image_bytes(size=(640, 480), fmt="JPEG"))
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", json={"image": jpeg, "source_image": jpeg, "instruction": "x"})
        assert r.status_code == 200
    assert decode_threads == []


async def test_a_decode_that_does_not_fit_the_budget_is_429_and_fits_when_alone() -> None:
    png = solid_png(3000)  # decodes to 36 MB of pixels
    budget = 24 << 20
    async with (
        fake_engines(1, latency_s=2.0) as engines,
        router([u for _, u in engines], max_queued_image_bytes=budget) as c,
    ):
        busy = asyncio.create_task(c.post("/score", json=item(0)))  # holds a little of the budget
        await _at_the_engine(engines[0][0])
        r = await c.post("/score", json={"image": b64(png), "instruction": "x"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "overloaded"
        assert "retry-after" in r.headers
        assert (await busy).status_code == 200
        alone = await c.post("/score", json={"image": b64(png), "instruction": "x"})
        assert alone.status_code == 200 and alone.json()["status"] == "ok"


async def test_a_batch_item_whose_decode_does_not_fit_refuses_the_request_not_the_item() -> None:
    big = b64(solid_png(3000))
    async with (
        fake_engines(1, latency_s=2.0) as engines,
        router([u for _, u in engines], max_queued_image_bytes=24 << 20) as c,
    ):
        busy = asyncio.create_task(c.post("/score", json=item(0)))
        await _at_the_engine(engines[0][0])
        items = [item(1), {"image": big, "instruction": "x"}, item(2), item(3)]
        r = await c.post("/score", json={"items": items})
        assert r.status_code == 429 and r.json()["error"]["code"] == "overloaded"
        await busy
