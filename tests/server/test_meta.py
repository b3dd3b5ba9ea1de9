"""An item's ``meta`` comes back unchanged in its result, on every endpoint and every path."""

from __future__ import annotations

import json

import pytest

from tests.helpers import b64, fake_engines, image_bytes, item, router

META = {
    "task_type": "color_alter",
    "instruction_language": "zh",
    "intersection_exist": True,
    "nested": {"k": [1, 2.5, None, "汉字"]},
}


async def test_single_json_item_echoes_its_meta() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        res = (await client.post("/score", json=item(1, meta=META))).json()
        assert res["status"] == "ok" and res["meta"] == META
        plain = (await client.post("/score", json=item(2))).json()
        assert plain["meta"] is None
        # meta is the caller's: nothing of it reaches the judge
        assert all("color_alter" not in json.dumps(b) for b in engines[0][0].requests)


async def test_batch_items_keep_their_own_meta_and_rejected_items_keep_theirs() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        items = [item(i, meta={"i": i}) for i in range(5)]
        items[2]["image"] = "bm90IGFuIGltYWdl"  # not an image: an error item in its place
        items[3]["meta"] = {"i": 3, "pad": "x" * 5000}  # too large: refused, so not echoed
        results = (await client.post("/score", json={"items": items})).json()["results"]
        assert [r["status"] for r in results] == ["ok", "ok", "error", "error", "ok"]
        assert results[2]["error"]["code"] == "invalid_image" and results[2]["meta"] == {"i": 2}
        assert results[3]["error"]["code"] == "invalid_request" and results[3]["meta"] is None
        assert "meta" in results[3]["error"]["message"]
        assert [r["meta"] for r in results if r["status"] == "ok"] == [{"i": 0}, {"i": 1}, {"i": 4}]


@pytest.mark.parametrize(
    ("meta", "fragment"),
    [([1, 2], "meta"), ("edit_type=add", "meta"), ({"pad": "x" * 4097}, "4096 bytes")],
)
async def test_meta_must_be_a_small_object(meta: object, fragment: str) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post("/score", json=item(1, meta=meta))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        assert fragment in r.json()["error"]["message"]


async def test_meta_of_exactly_4096_bytes_is_accepted() -> None:
    meta = {"pad": "x" * (4096 - len('{"pad":""}'))}
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        res = (await client.post("/score", json=item(1, meta=meta))).json()
        assert res["status"] == "ok" and res["meta"] == meta


async def test_multipart_meta_is_a_json_field() -> None:
    files = {"image": ("e.png", image_bytes((9, 9, 9)), "image/png")}
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        data = {"instruction": "add a hat", "meta": json.dumps(META)}
        res = (await client.post("/score", files=files, data=data)).json()
        assert res["status"] == "ok" and res["meta"] == META
        for bad in ("{not json", "[1]"):
            r = await client.post("/score", files=files, data={"instruction": "x", "meta": bad})
            assert r.status_code == 422 and "meta" in r.json()["error"]["message"]


async def test_group_meta_is_echoed_on_every_candidate() -> None:
    body = {
        "source_image": b64(image_bytes((1, 2, 3))),
        "instruction": "make it blue",
        "images": [b64(image_bytes((i, 80, 9))) for i in range(3)] + ["bm90"],
        "meta": {"prompt_id": 17},
    }
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        results = (await client.post("/score/group", json=body)).json()["results"]
        assert [r["meta"] for r in results] == [{"prompt_id": 17}] * 4
        assert results[3]["status"] == "error"


async def test_a_cached_result_carries_the_requesters_meta() -> None:
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], score_cache="memory") as client,
    ):
        first = (await client.post("/score", json=item(1, meta={"run": 1}))).json()
        again = (await client.post("/score", json=item(1, meta={"run": 2}))).json()
        bare = (await client.post("/score", json=item(1))).json()
        assert again["cache_hit"] and bare["cache_hit"] and first["score"] == again["score"]
        assert (first["meta"], again["meta"], bare["meta"]) == ({"run": 1}, {"run": 2}, None)
