"""Backpressure: beyond the router-wide budget, 429 with Retry-After, and memory stays bounded."""

from __future__ import annotations

import asyncio
import base64
import collections
import io
import os
import time

import httpx
import orjson
from PIL import Image

from tests.helpers import b64, fake_engines, item, router
from tests.processes import Procs


async def test_items_over_budget_get_429_with_retry_after_then_pass_once_drained() -> None:
    async with (
        fake_engines(1, latency_s=0.5) as engines,
        router([u for _, u in engines], max_queued_items=4) as c,
    ):
        first = asyncio.create_task(c.post("/score", json={"items": [item(i) for i in range(3)]}))
        await asyncio.sleep(0.2)  # the batch holds 3 of the 4 item slots
        r = await c.post("/score", json={"items": [item(0), item(1)]})
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "overloaded"
        assert int(r.headers["retry-after"]) >= 1
        fits = await c.post("/score", json=item(9))  # one more item still fits
        assert fits.status_code == 200 and fits.json()["status"] == "ok"
        assert (await first).status_code == 200
        again = await c.post("/score", json={"items": [item(0), item(1)]})
        assert again.status_code == 200
        metrics = (await c.get("/metrics")).text
        assert 'editjudge_rejected_total{code="overloaded"} 1.0' in metrics


async def test_image_bytes_over_budget_get_429() -> None:
    batch = [item(i) for i in range(4)]
    held = sum(len(base64.b64decode(str(x["image"]))) for x in batch)
    held += sum(len(base64.b64decode(str(x["source_image"]).split(",")[1])) for x in batch)
    async with (
        fake_engines(1, latency_s=0.5) as engines,
        router([u for _, u in engines], max_queued_image_bytes=held + 100) as c,
    ):
        first = asyncio.create_task(c.post("/score", json={"items": batch}))
        await asyncio.sleep(0.2)
        r = await c.post("/score", json=item(5))
        assert r.status_code == 429 and r.json()["error"]["code"] == "overloaded"
        assert "retry-after" in r.headers
        assert (await first).status_code == 200


def _noise_png(side: int) -> bytes:
    """An incompressible PNG of about 3 * side**2 bytes."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(buf, "PNG")
    return buf.getvalue()


async def test_flood_while_overloaded_is_refused_with_bounded_memory(procs: Procs) -> None:
    """300 concurrent ~1 MiB requests against a full budget: all 429, RSS grows by far less."""
    engine = procs.engine(latency=20.0)
    env = {"EDITJUDGE_MAX_QUEUED_ITEMS": "4", "EDITJUDGE_MAX_QUEUED_IMAGE_BYTES": str(4 << 20)}
    router_proc = procs.router([engine.url], env=env)
    big = orjson.dumps({"image": b64(_noise_png(600)), "instruction": "add a hat"})
    body_mib = len(big) / 2**20
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=400)
    async with httpx.AsyncClient(base_url=router_proc.url, timeout=60, limits=limits) as c:
        holder = asyncio.create_task(c.post("/score", json={"items": [item(i) for i in range(4)]}))
        await asyncio.sleep(0.5)
        before = router_proc.rss_kib("VmHWM")
        t0 = time.monotonic()
        flood = await asyncio.gather(
            *(c.post("/score", content=big, headers=headers) for _ in range(300))
        )
        took = time.monotonic() - t0
        peak = router_proc.rss_kib("VmHWM")
        assert not holder.done()  # the budget was full for the whole flood
        holder.cancel()
    statuses = collections.Counter(r.status_code for r in flood)
    assert statuses == {429: 300}, statuses
    assert all(int(r.headers["retry-after"]) >= 1 for r in flood)
    grown_mib = (peak - before) / 1024
    print(
        f"flood: 300 x {body_mib:.2f} MiB bodies in {took:.1f}s,"
        f" router peak RSS grew {grown_mib:.1f} MiB"
    )
    # What remains is per-connection: uvicorn buffers at most 64 KiB plus one socket read (up to
    # 256 KiB) of an unread body each.
    assert grown_mib < 96, f"peak RSS grew {grown_mib:.0f} MiB under a refused flood"
