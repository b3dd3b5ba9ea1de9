"""The router decides how much work each engine holds and queues the rest itself, fairly."""

from __future__ import annotations

import asyncio
import time

from tests.helpers import fake_engines, item, router


def items(n: int, protocol: str = "expected") -> list[dict[str, object]]:
    # `expected` makes one engine call per item, so items and engine requests are the same count.
    return [item(i, protocol=protocol) for i in range(n)]


async def test_an_engine_never_holds_more_than_its_window_and_the_router_queues_the_rest() -> None:
    async with (
        fake_engines(1, latency_s=0.02) as engines,
        router(
            [u for _, u in engines], in_flight_control="fixed", max_in_flight_per_backend=4
        ) as client,
    ):
        r = await client.post("/score", json={"items": items(40)})
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["ok"] * 40
    assert engines[0][0].peak_in_flight == 4


async def test_the_window_grows_to_what_the_engine_runs_and_no_further() -> None:
    """An engine that runs batches of at most 12: from a window of 4 the router climbs to keep
    that batch full and a short queue beside it, far below the ceiling of 256."""
    async with (
        fake_engines(1, latency_s=0.03, capacity=12) as engines,
        router(
            [u for _, u in engines],
            start_in_flight_per_backend=4,
            load_interval_s=0.02,
        ) as client,
    ):
        r = await client.post("/score", json={"items": items(400)})
        window = (await client.get("/backends")).json()[0]["window"]
    assert all(x["status"] == "ok" for x in r.json()["results"])
    engine = engines[0][0]
    assert 12 <= window <= 12 + 2 * 4 + 8, window
    assert 12 <= engine.peak_in_flight <= 12 + 2 * 4 + 8, engine.peak_in_flight


async def test_a_front_end_that_cannot_keep_up_gets_a_smaller_window() -> None:
    """Requests spend 4 ms each, one at a time, being 'preprocessed' before they can run: more
    in flight only piles them up there, so the window shrinks from its start of 64."""
    async with (
        fake_engines(1, latency_s=0.01, preprocess_s=0.004) as engines,
        router(
            [u for _, u in engines],
            start_in_flight_per_backend=64,
            load_interval_s=0.02,
        ) as client,
    ):
        r = await client.post("/score", json={"items": items(300)})
        window = (await client.get("/backends")).json()[0]["window"]
    assert all(x["status"] == "ok" for x in r.json()["results"])
    assert window < 40, window


async def test_a_single_item_is_not_stuck_behind_another_callers_batch() -> None:
    async with (
        fake_engines(1, latency_s=0.05) as engines,
        router(
            [u for _, u in engines], in_flight_control="fixed", max_in_flight_per_backend=2
        ) as client,
    ):
        batch = asyncio.create_task(client.post("/score", json={"items": items(40)}))
        await asyncio.sleep(0.1)  # the batch fills the window and queues 36 more items
        t = time.monotonic()
        single = await client.post("/score", json={**item(99), "protocol": "expected"})
        waited = time.monotonic() - t
        assert not batch.done()
        big = await batch
    assert single.json()["status"] == "ok" and big.status_code == 200
    # FIFO would have put it behind ~36 items, 2 at a time x 50 ms: about 0.9 s
    assert waited < 0.4, waited


async def test_backends_and_info_show_windows_and_the_queue() -> None:
    async with (
        fake_engines(2, latency_s=0.2) as engines,
        router(
            [u for _, u in engines], in_flight_control="fixed", max_in_flight_per_backend=3
        ) as client,
    ):
        pending = asyncio.create_task(client.post("/score", json={"items": items(20)}))
        await asyncio.sleep(0.1)
        backends = (await client.get("/backends")).json()
        capacity = (await client.get("/info")).json()["capacity"]
        await pending
    assert [b["window"] for b in backends] == [3, 3]
    assert all(b["in_flight"] == 3 for b in backends)
    assert capacity["in_flight_window"] == 6 and capacity["queued"] == 14
