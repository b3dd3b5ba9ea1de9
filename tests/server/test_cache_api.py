"""The score cache through the app: hits, single-flight, SQLite across restarts, groups."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.helpers import data_url, fake_engines, image_bytes, item, router


async def test_cache_is_off_by_default() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        await client.post("/score", json=item(0))
        again = (await client.post("/score", json=item(0))).json()
        assert again["cache_hit"] is False and len(engines[0][0].requests) == 4


async def test_memory_cache_serves_repeats_without_the_engine() -> None:
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], score_cache="memory") as client,
    ):
        engine = engines[0][0]
        first = (await client.post("/score", json=item(0))).json()
        assert first["cache_hit"] is False and len(engine.requests) == 2
        again = (await client.post("/score", json={**item(0), "id": "again"})).json()
        assert again["cache_hit"] is True and again["id"] == "again"
        assert again["score"] == first["score"] and again["scores"] == first["scores"]
        assert again["fingerprint"] == first["fingerprint"]
        assert len(engine.requests) == 2  # nothing new reached the engine
        # anything that changes the score is a different key
        await client.post("/score", json={**item(0), "instruction": "something else"})
        await client.post("/score", json={**item(0), "protocol": "expected"})
        assert len(engine.requests) == 2 + 2 + 1
        metrics = (await client.get("/metrics")).text
        assert "editjudge_cache_hits_total 1.0" in metrics


async def test_identical_items_in_flight_are_computed_once() -> None:
    async with (
        fake_engines(1, latency_s=0.1) as engines,
        router([u for _, u in engines], score_cache="memory") as client,
    ):
        same = [{**item(3), "id": f"copy-{i}"} for i in range(6)]
        batch, single = await asyncio.gather(
            client.post("/score", json={"items": same}),
            client.post("/score", json={**item(3), "id": "solo"}),
        )
        results = [*batch.json()["results"], single.json()]
        assert [r["id"] for r in results] == [*(f"copy-{i}" for i in range(6)), "solo"]
        assert len({r["score"] for r in results}) == 1
        assert sum(not r["cache_hit"] for r in results) == 1
        assert len(engines[0][0].requests) == 2  # one item's two calls, once


async def test_errors_are_not_cached() -> None:
    async with (
        fake_engines(1, reply=lambda body: "no score here") as engines,
        router([u for _, u in engines], score_cache="memory") as client,
    ):
        for _ in range(2):
            res = (await client.post("/score", json=item(0))).json()
            assert res["status"] == "error" and res["cache_hit"] is False
        assert len(engines[0][0].requests) == 4


async def test_sqlite_cache_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "scores.sqlite"
    settings = {"score_cache": "sqlite", "score_cache_path": path}
    async with fake_engines(1) as engines:
        urls = [u for _, u in engines]
        async with router(urls, **settings) as client:
            first = (await client.post("/score", json=item(5))).json()
        assert path.exists()
        async with router(urls, **settings) as client:
            again = (await client.post("/score", json=item(5))).json()
        assert again["cache_hit"] is True and again["score"] == first["score"]
        assert len(engines[0][0].requests) == 2


async def test_group_uses_the_cache_and_skips_priming_when_all_hit() -> None:
    body = {
        "source_image": data_url(image_bytes((9, 9, 9))),
        "instruction": "make it red",
        "images": [data_url(image_bytes((i * 40, 0, 0))) for i in range(3)],
    }
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], score_cache="memory") as client,
    ):
        engine = engines[0][0]
        first = (await client.post("/score/group", json=body)).json()
        assert len(engine.requests) == 1 + 3 * 2
        again = (await client.post("/score/group", json=body)).json()
        assert len(engine.requests) == 1 + 3 * 2
        assert all(r["cache_hit"] for r in again["results"])
        assert [r["rank"] for r in again["results"]] == [r["rank"] for r in first["results"]]
        assert again["backend"] is None and again["prompt_tokens"] is None
        # a group item is the same work as a /score item with that source and instruction
        single = {"image": body["images"][0], "source_image": body["source_image"]}
        res = (await client.post("/score", json={**single, "instruction": "make it red"})).json()
        assert res["cache_hit"] is True
