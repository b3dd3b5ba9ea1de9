"""``POST /score/group`` on fake engines: one engine per group, priming first, rank/z, faults."""

from __future__ import annotations

import hashlib
import statistics
from typing import Any

import pytest

from tests.helpers import b64, data_url, fake_engines, image_bytes, router

SOURCE = data_url(image_bytes((10, 200, 10), size=(96, 96)))


def candidates(k: int) -> list[str]:
    return [b64(image_bytes((17 * i % 256, 80, 200 - 9 * i))) for i in range(k)]


def group(k: int = 6) -> dict[str, Any]:
    return {"source_image": SOURCE, "instruction": "paint the square blue", "images": candidates(k)}


def images_of(body: dict[str, Any]) -> list[str]:
    content = body["messages"][0]["content"]
    return [p["image_url"]["url"] for p in content if p["type"] == "image_url"]


def digit_by_image(body: dict[str, Any]) -> str:
    """A reply that depends on the edited image, so candidates get different scores."""
    structured = body.get("structured_outputs") or {}
    if "choice" not in structured:
        return "x"  # the priming call
    digest = hashlib.sha256(images_of(body)[-1].encode()).digest()
    return str(digest[0] % 10)


async def test_group_runs_on_one_engine_priming_first_then_ranks() -> None:
    async with (
        fake_engines(2, reply=digit_by_image) as engines,
        router([u for _, u in engines]) as client,
    ):
        r = await client.post("/score/group", json={**group(6), "protocol": "expected"})
        assert r.status_code == 200, r.text
        body = r.json()
        results = body["results"]
        assert [x["id"] for x in results] == [str(i) for i in range(6)]
        assert all(x["status"] == "ok" for x in results)
        used = [e for e, _ in engines if e.requests]
        assert len(used) == 1  # the whole group on one engine
        requests = used[0].requests
        assert len(requests) == 7
        prime = requests[0]
        assert prime["max_tokens"] == 1 and "structured_outputs" not in prime
        assert images_of(prime) == [SOURCE]
        # the priming prompt is exactly the candidates' prompt up to the edited image
        for req in requests[1:]:
            content = req["messages"][0]["content"]
            assert (
                content[: len(prime["messages"][0]["content"])] == prime["messages"][0]["content"]
            )
        assert body["backend"] == results[0]["backend"] == next(u for e, u in engines if e.requests)
        scores = [x["score"] for x in results]
        mean, std = statistics.fmean(scores), statistics.pstdev(scores)
        assert std > 0, "the fake should give candidates different scores"
        for x in results:
            assert x["rank"] == 1 + sum(s > x["score"] for s in scores)
            assert x["z_score"] == pytest.approx((x["score"] - mean) / std, abs=1e-3)
            assert x["fingerprint"]["protocol"] == "expected"
        assert min(x["rank"] for x in results) == 1


async def test_equal_scores_share_rank_1_and_z_0() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        # without a reply function the fake answers from the prompt text, equal for all candidates
        r = await client.post("/score/group", json={**group(4), "ids": ["a", "b", "c", "d"]})
        results = r.json()["results"]
        assert [x["id"] for x in results] == ["a", "b", "c", "d"]
        assert {x["rank"] for x in results} == {1} and {x["z_score"] for x in results} == {0.0}


async def test_group_reports_prompt_and_cached_tokens_of_candidate_calls() -> None:
    async with fake_engines(1, cached_tokens=64) as engines, router([u for _, u in engines]) as c:
        body = (await c.post("/score/group", json=group(3))).json()
        # viescore: two calls per candidate; the fake reports 100 prompt / 64 cached per call
        assert body["prompt_tokens"] == 3 * 2 * 100
        assert body["cached_prompt_tokens"] == 3 * 2 * 64
        assert all(x["cached_prompt_tokens"] == 128 for x in body["results"])
        assert len(engines[0][0].requests) == 1 + 3 * 2


async def test_priming_failure_moves_the_group_to_another_engine() -> None:
    async with fake_engines(2) as engines, router([u for _, u in engines]) as client:
        bad, good = engines
        bad[0].status = 500  # least-outstanding picks the first engine first
        r = await client.post("/score/group", json=group(3))
        body = r.json()
        assert all(x["status"] == "ok" and x["backend"] == good[1] for x in body["results"])
        assert body["backend"] == good[1]
        assert len(bad[0].requests) == 1  # only the priming call reached the failing engine


async def test_a_failing_candidate_is_retried_elsewhere_and_the_rest_kept() -> None:
    target = candidates(4)[2]

    def flaky(body: dict[str, Any]) -> str:
        if target in images_of(body)[-1]:
            raise RuntimeError("injected")  # the fake answers HTTP 500
        return digit_by_image(body)

    async with (
        fake_engines(2, reply=digit_by_image) as engines,
        router([u for _, u in engines]) as c,
    ):
        first, second = engines
        first[0].reply = flaky
        r = await c.post("/score/group", json={**group(4), "protocol": "expected"})
        results = r.json()["results"]
        assert all(x["status"] == "ok" for x in results)
        assert [x["backend"] for x in results] == [first[1], first[1], second[1], first[1]]
        # the second engine was primed again, then scored only the failed candidate
        assert len(second[0].requests) == 2 and second[0].requests[0]["max_tokens"] == 1


async def test_bad_candidate_image_is_an_error_item_left_out_of_the_ranking() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        body = group(3)
        body["images"][1] = "bm90IGFuIGltYWdl"  # base64 of "not an image"
        r = await client.post("/score/group", json=body)
        assert r.status_code == 200
        results = r.json()["results"]
        assert results[1]["status"] == "error" and results[1]["error"]["code"] == "invalid_image"
        assert "images.1" in results[1]["error"]["message"]
        assert results[1]["rank"] is None and results[1]["z_score"] is None
        assert [results[0]["rank"], results[2]["rank"]] == [1, 1]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"images": []}, 422, "invalid_request"),
        ({"images": None}, 422, "invalid_request"),
        ({"instruction": ""}, 422, "invalid_request"),
        ({"instruction": "   "}, 422, "invalid_request"),
        ({"ids": ["only-one"]}, 422, "invalid_request"),
        ({"ids": ["a", "i" * 513]}, 422, "invalid_request"),  # a 1 MB id used to be echoed back
        ({"source_image": "!!!"}, 422, "invalid_image"),
        ({"source_image": "https://example.com/a.png"}, 422, "invalid_image"),
        ({"protocol": "nope"}, 422, "unknown_protocol"),
        ({"surprise": 1}, 422, "invalid_request"),
        ({"images": ["x"] * 5}, 413, "too_many_items"),
    ],
)
async def test_bad_group_requests_are_4xx(change: dict[str, Any], status: int, code: str) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines], max_batch_items=4) as c:
        body = {**group(2), **change}
        body = {k: v for k, v in body.items() if v is not None}
        r = await c.post("/score/group", json=body)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert engines[0][0].requests == []


async def test_group_body_must_be_json() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post(
            "/score/group", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = await client.post("/score/group", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415


async def test_group_needs_a_healthy_backend() -> None:
    async with fake_engines(1, healthy=False) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score/group", json=group(2))
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_healthy_backend"


async def test_group_route_is_counted_in_metrics() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        await client.post("/score/group", json=group(2))
        metrics = (await client.get("/metrics")).text
        assert 'editjudge_requests_total{route="/score/group",status="200"} 1.0' in metrics
        assert 'editjudge_items_total{protocol="viescore",status="ok"} 2.0' in metrics


async def test_a_group_past_its_deadline_is_deadline_exceeded_and_no_mark_on_engines() -> None:
    """Slow engines and a short deadline: the caller's budget ran out, not the engines."""
    async with (
        fake_engines(2, latency_s=1.0) as engines,
        router([u for _, u in engines], request_deadline_s=0.3, request_timeout_s=30) as client,
    ):
        r = await client.post("/score/group", json=group(3))
        assert r.status_code == 200
        assert {x["error"]["code"] for x in r.json()["results"]} == {"deadline_exceeded"}
        backends = (await client.get("/backends")).json()
        assert all(b["failures"] == 0 and b["state"] == "closed" for b in backends)
