"""``score_group`` (``POST /score/group``) from the SDK, against the router in-process."""

from __future__ import annotations

import io
import json
import statistics

import pytest

from editjudge.client import AsyncClient, Client, InputError, NotFoundError
from tests.client.judges import digit_by_red, solid
from tests.client.servers import LoopbackRouter, asgi_router
from tests.helpers import image_bytes


def png(digit: int) -> bytes:
    out = io.BytesIO()
    solid(digit).save(out, "PNG")
    return out.getvalue()


async def test_group_results_in_order_with_rank_and_z_on_one_engine() -> None:
    digits = [3, 7, 1, 7, 5]
    knobs = {"reply": digit_by_red}
    async with asgi_router(2, engine_knobs=knobs) as (http, engines, sent):
        client = AsyncClient("http://router", http_client=http)
        group = await client.score_group(
            [png(d) for d in digits],
            "paint it",
            image_bytes(),
            ids=[f"c{i}" for i in range(5)],
            protocol="expected",
        )
    assert [r.id for r in group.results] == [f"c{i}" for i in range(5)]
    assert [r.scores["answer"] for r in group.results] == digits
    scores = [r.score for r in group.results]
    assert all(s is not None for s in scores)
    mean, std = statistics.fmean(scores), statistics.pstdev(scores)  # type: ignore[arg-type]
    for r in group.results:
        assert r.rank == 1 + sum(s > r.score for s in scores)  # type: ignore[operator]
        assert r.z_score == pytest.approx((r.score - mean) / std, abs=1e-3)  # type: ignore[operator]
    assert group.backend is not None and sum(bool(e.requests) for e in engines) == 1
    assert group.prompt_tokens is not None and group.prompt_tokens > 0
    posts = [r for r in sent if r.method == "POST"]
    assert [r.url.path for r in posts] == ["/score/group"]
    body = json.loads(posts[0].content)
    assert body["protocol"] == "expected" and body["ids"] == [f"c{i}" for i in range(5)]


async def test_an_unreadable_candidate_is_an_error_in_place_and_left_out_of_the_ranking() -> None:
    async with asgi_router(1, engine_knobs={"reply": digit_by_red}) as (http, _, sent):
        client = AsyncClient("http://router", http_client=http)
        group = await client.score_group(
            [png(2), b"not an image", png(6)], "edit", image_bytes(), protocol="expected"
        )
        only_bad = await client.score_group([b"junk"], "edit", image_bytes())
    assert [r.id for r in group.results] == ["0", "1", "2"]
    assert [r.status for r in group.results] == ["ok", "error", "ok"]
    assert group.results[1].error is not None and group.results[1].error.code == "invalid_image"
    assert "images.1" in group.results[1].error.message
    assert [r.rank for r in group.results] == [2, None, 1]
    posted = json.loads(next(r for r in sent if r.url.path == "/score/group").content)
    assert len(posted["images"]) == 2 and posted["ids"] == ["0", "2"]
    # nothing readable: nothing is sent, every candidate is an error result
    assert [r.status for r in only_bad.results] == ["error"]
    assert len([r for r in sent if r.url.path == "/score/group"]) == 1


async def test_whole_group_input_errors_raise_before_sending() -> None:
    async with asgi_router(1, max_batch_items=3) as (http, _, sent):
        client = AsyncClient("http://router", http_client=http)
        with pytest.raises(InputError, match="source_image") as bad_source:
            await client.score_group([png(1)], "edit", b"broken")
        assert bad_source.value.code == "invalid_image"
        with pytest.raises(InputError, match="at most 3"):
            await client.score_group([png(1)] * 4, "edit", image_bytes())
        with pytest.raises(InputError, match="instruction"):
            await client.score_group([png(1)], "  ", image_bytes())
        with pytest.raises(InputError, match="2 ids for 1 images"):
            await client.score_group([png(1)], "edit", image_bytes(), ids=["a", "b"])
    assert [r.url.path for r in sent if r.method == "POST"] == []


def test_blocking_client_scores_a_group_over_loopback() -> None:
    with LoopbackRouter(1, engine_knobs={"reply": digit_by_red}) as router:
        with Client(router.url) as client:
            group = client.score_group([png(4), png(8)], "edit", png(0), protocol="expected")
        with Client(router.url + "/not-here") as client, pytest.raises(NotFoundError):
            client.score_group([png(4)], "edit", png(0))
    assert [r.scores["answer"] for r in group.results] == [4, 8]
    assert [r.rank for r in group.results] == [2, 1]


def test_request_bodies_with_spliced_data_urls_are_exact_json() -> None:
    from editjudge.client._group import group_request
    from editjudge.client._images import ImagePolicy, prepare
    from editjudge.client._models import Item, Limits
    from editjudge.client._wire import item_json

    policy = ImagePolicy(10_000_000, 32 << 20)
    tricky = 'say "hi" \\ \n <b>\u00e9\u6f22</b>'
    url = prepare(png(3), policy).data_url()
    single = json.loads(item_json(Item(png(3), tricky, png(1), protocol="p"), "x", policy))
    assert single == {
        "image": url,
        "source_image": prepare(png(1), policy).data_url(),
        "instruction": tricky,
        "id": "x",
        "protocol": "p",
    }
    request = group_request([png(3), png(3)], tricky, png(1), None, None, policy, Limits())
    assert request.body is not None
    assert json.loads(request.body) == {
        "source_image": prepare(png(1), policy).data_url(),
        "images": [url, url],
        "instruction": tricky,
        "ids": ["0", "1"],
    }
