"""The app in-process against fake engines on loopback: fan-out, order, results, endpoints."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import orjson

from tests.helpers import b64, fake_engines, image_bytes, item, router


async def test_single_json_item_scores_with_viescore() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post("/score", json=item(1))
        assert r.status_code == 200, r.text
        res = r.json()
        assert res["status"] == "ok" and res["id"] == "item-1"
        s = res["scores"]
        expected = math.sqrt(
            min(s["instruction_following"], s["over_editing"])
            * min(s["naturalness"], s["artifacts"])
        )
        assert abs(res["score"] - expected) < 1e-3 and 0 <= res["score"] <= 10
        assert res["backend"] == engines[0][1] and res["latency_ms"] > 0 and res["error"] is None
        assert res["fingerprint"]["model"] == "fake-judge"
        assert res["fingerprint"]["vllm_version"] == "0.0.0-fake"
        # two calls (SC + PQ), both deterministic and constrained to compact JSON
        bodies = engines[0][0].requests
        assert len(bodies) == 2
        assert all(b["temperature"] == 0 and "regex" in b["structured_outputs"] for b in bodies)


async def test_batch_results_come_back_in_request_order_across_engines() -> None:
    async with fake_engines(2) as engines, router([u for _, u in engines]) as client:
        # the first engine is slow, so completion order differs from request order
        engines[0][0].latency_s = 0.05
        items = [item(i) for i in range(24)]
        r = await client.post("/score", json={"items": items})
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["id"] for x in results] == [f"item-{i}" for i in range(24)]
        assert all(x["status"] == "ok" for x in results)
        used = {x["backend"] for x in results}
        assert used == {u for _, u in engines}
        assert sum(e.served for e, _ in engines) == 48


async def test_batch_ids_default_to_index() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        items = [{k: v for k, v in item(i).items() if k != "id"} for i in range(3)]
        r = await client.post("/score", json={"items": items})
        assert [x["id"] for x in r.json()["results"]] == ["0", "1", "2"]


async def test_batch_fans_out_concurrently() -> None:
    async with fake_engines(2, latency_s=0.2) as engines, router([u for _, u in engines]) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await client.post("/score", json={"items": [item(i) for i in range(16)]})
        elapsed = loop.time() - t0
        assert r.status_code == 200
        assert elapsed < 1.0, f"16 items x 0.2 s took {elapsed:.2f}s: not concurrent"


async def test_unparseable_reply_is_an_error_item_with_raw_text() -> None:
    async with (
        fake_engines(1, reply=lambda body: "what a lovely hat") as engines,
        router([u for _, u in engines]) as client,
    ):
        r = await client.post("/score", json=item(0))
        res = r.json()
        assert r.status_code == 200
        assert res["status"] == "error" and res["score"] is None
        assert res["error"]["code"] == "unparseable_reply"
        assert "what a lovely hat" in res["raw"]


async def test_out_of_range_score_is_never_clamped() -> None:
    def reply(body: dict[str, Any]) -> str:
        return '{"instruction_following": 12, "over_editing": 5, "naturalness": 5, "artifacts": 5}'

    async with fake_engines(1, reply=reply) as engines, router([u for _, u in engines]) as client:
        res = (await client.post("/score", json=item(0))).json()
        assert res["status"] == "error" and res["score"] is None


async def test_multipart_upload_like_curl() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        files = {
            "image": ("edit.png", image_bytes((1, 2, 3)), "image/png"),
            "source_image": ("src.png", image_bytes((4, 5, 6)), "image/png"),
        }
        r = await client.post("/score", files=files, data={"instruction": "add a hat"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ok"
        sc = engines[0][0].requests[0]["messages"][0]["content"]
        assert sum(p["type"] == "image_url" for p in sc) == 2


async def test_batch_protocol_and_item_protocol() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post("/score", json={"items": [item(0)], "protocol": "viescore"})
        assert r.json()["results"][0]["fingerprint"]["protocol"] == "viescore"


async def test_service_endpoints() -> None:
    async with fake_engines(2) as engines, router([u for _, u in engines]) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.json()["healthy_backends"] == 2
        await client.post("/score", json=item(0))
        backends = (await client.get("/backends")).json()
        assert {b["url"] for b in backends} == {u for _, u in engines}
        assert sum(b["served"] for b in backends) == 1
        assert all({"healthy", "in_flight", "failures"} <= set(b) for b in backends)
        info = (await client.get("/info")).json()
        assert info["model"] == "fake-judge" and "viescore" in info["protocols"]
        assert info["limits"]["max_image_pixels"] == 40_000_000
        assert info["limits"]["resize_grid"] is None
        metrics = (await client.get("/metrics")).text
        assert 'editjudge_items_total{protocol="viescore",status="ok"} 1.0' in metrics
        assert "editjudge_backend_in_flight" in metrics
        assert 'editjudge_requests_total{route="/score",status="200"} 1.0' in metrics


async def test_ready_is_503_when_no_backend_is_healthy() -> None:
    async with fake_engines(1, healthy=False) as engines, router([u for _, u in engines]) as client:
        r = await client.get("/ready")
        assert r.status_code == 503 and "retry-after" in r.headers
        r = await client.post("/score", json=item(0))
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "no_healthy_backend"
        assert "retry-after" in r.headers
        engines[0][0].healthy = True
        for _ in range(50):
            if (await client.get("/ready")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await client.post("/score", json=item(0))).json()["status"] == "ok"


async def test_model_setting_overrides_discovery() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines], model="my-judge") as c:
        await c.post("/score", json=item(0))
        assert engines[0][0].requests[0]["model"] == "my-judge"


async def test_response_is_plain_json() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post(
            "/score", content=orjson.dumps(item(0)), headers={"content-type": "application/json"}
        )
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) >= {
            "id",
            "status",
            "score",
            "scores",
            "reasoning",
            "raw",
            "error",
            "backend",
            "latency_ms",
        }
        assert b64(b"") == ""


async def test_a_reply_cut_off_at_max_tokens_is_a_truncated_reply_item() -> None:
    """An engine that pads its answer until the token budget runs out: no score, its own code,
    the text kept. (The fake engine cuts at max_tokens and reports finish_reason "length".)"""
    padded = '{"instruction_following"' + " " * 10_000
    async with (
        fake_engines(1, reply=lambda body: padded) as e,
        router([u for _, u in e]) as client,
    ):
        r = await client.post("/score", json={"items": [item(0)]})
    (res,) = r.json()["results"]
    assert res["status"] == "error" and res["score"] is None
    assert res["error"]["code"] == "truncated_reply"
    assert "max_tokens" in res["error"]["message"]
    assert res["raw"].startswith('sc: {"instruction_following"')


async def test_a_reply_cut_off_inside_its_closing_reasoning_keeps_its_scores() -> None:
    """The constraint leaves the closing reasoning open-ended (bounded repeats make xgrammar's
    masks the engine's bottleneck): a judge that writes on until max_tokens still gave every
    score first. The item is scored; the reasoning ends where the judge was cut off."""

    def rambling(body: dict[str, Any]) -> str:
        fields = re.findall(r'"([a-z_]+)":\(\?:', body["structured_outputs"]["regex"])
        scores = ",".join(f'"{f}":{6 + k}' for k, f in enumerate(fields))
        return "{" + scores + ',"reasoning":"' + "and so on " * 200

    async with (
        fake_engines(1, reply=rambling) as e,
        router([u for _, u in e]) as client,
    ):
        r = await client.post("/score", json={"items": [item(0)]})
    (res,) = r.json()["results"]
    assert res["status"] == "ok", res
    assert res["scores"]["instruction_following"] == 6 and res["scores"]["perceptual_quality"]
    assert res["reasoning"].startswith("SC: and so on") and len(res["reasoning"]) > 100


async def test_info_reports_the_capacity_that_feeds_every_healthy_engine() -> None:
    async with (
        fake_engines(3) as engines,
        router([u for _, u in engines], start_in_flight_per_backend=24) as client,
    ):
        cap = (await client.get("/info")).json()["capacity"]
        # Enough for every window to grow to its ceiling (256): the router queues the rest.
        assert cap == {
            "healthy_backends": 3,
            "backends": 3,
            "in_flight_window": 72,
            "queued": 0,
            "suggested_items_in_flight": 768,
        }
        engines[1][0].healthy = False
        for _ in range(100):  # the health loop runs every 0.2 s here
            if (await client.get("/ready")).json()["healthy_backends"] == 2:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/info")).json()["capacity"]["suggested_items_in_flight"] == 512
