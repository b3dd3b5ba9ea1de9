"""``Reward`` / ``AsyncReward``: in-memory images in, one float per image out, in order."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from editjudge import (
    APIConnectionError,
    AsyncReward,
    AuthenticationError,
    RetryPolicy,
    Reward,
    RewardError,
)
from editjudge.client import _reward_batch
from tests.client.judges import FAIL_RED, digit_by_red, prose_for_fail_red, solid
from tests.client.servers import LoopbackRouter, asgi_router


def as_numpy(digit: int) -> np.ndarray:
    return np.asarray(solid(digit))  # HWC uint8


async def test_mixed_image_kinds_come_back_in_order_over_several_requests() -> None:
    digits = [5, 0, 8, 3, 3, 6, 1, 7, 2, 4]
    images: list[Any] = [solid(d) if i % 2 else as_numpy(d) for i, d in enumerate(digits)]
    sources = [np.zeros((40, 40, 3), np.uint8)] * len(images)
    knobs = {"reply": digit_by_red, "latency_s": 0.02}
    async with asgi_router(2, engine_knobs=knobs) as (http, _, sent):
        reward = AsyncReward(
            "http://router", protocol="expected", http_client=http, batch_size=3, concurrency=4
        )
        scores = await reward(images, [f"edit {i}" for i in range(10)], sources)
    assert [r.scores["answer"] for r in reward.last_results] == digits
    assert scores == [r.score for r in reward.last_results]
    assert all(isinstance(s, float) and not math.isnan(s) for s in scores)
    assert [r.id for r in reward.last_results] == [str(i) for i in range(10)]
    posts = [json.loads(r.content) for r in sent if r.url.path == "/score"]
    assert sorted(len(p["items"]) for p in posts) == [1, 3, 3, 3]
    first = posts[0]["items"][0]
    assert first["image"].startswith("data:image/jpeg;base64,")  # generated pixels go as JPEG
    assert first["source_image"].startswith("data:image/jpeg;base64,")
    assert reward.last_z_scores and all(math.isnan(z) for z in reward.last_z_scores)


async def test_groups_go_to_score_group_and_bring_z_scores() -> None:
    groups = {"a": [1, 5, 5, 8], "b": [2, 2, 6]}
    images, instructions, sources, gids = [], [], [], []
    for i, (gid, digits) in enumerate(groups.items()):
        source = np.full((32, 32, 3), 40 * i, np.uint8)
        for d in digits:
            images.append(solid(d))
            instructions.append(f"instruction of {gid}")
            sources.append(source)
            gids.append(gid)
    # interleave the two groups: results must still come back in input order
    order = [0, 4, 1, 5, 2, 6, 3]
    pick = [[seq[i] for i in order] for seq in (images, instructions, sources, gids)]
    async with asgi_router(2, engine_knobs={"reply": digit_by_red}) as (http, _, sent):
        reward = AsyncReward("http://router", protocol="expected", http_client=http)
        # any iterables will do, generators too
        scores = await reward(iter(pick[0]), pick[1], pick[2], group_ids=iter(pick[3]))
    results = reward.last_results
    expected_digits = [[*groups["a"], *groups["b"]][i] for i in order]
    assert [r.scores["answer"] for r in results] == expected_digits
    assert scores == [r.score for r in results]
    for gid in groups:
        members = [i for i, g in enumerate(pick[3]) if g == gid]
        got = [scores[i] for i in members]
        mean, std = statistics.fmean(got), statistics.pstdev(got)
        for i in members:
            assert reward.last_z_scores[i] == pytest.approx((scores[i] - mean) / std, abs=1e-3)
    posts = [r for r in sent if r.method == "POST"]
    assert sorted(r.url.path for r in posts) == ["/score/group"] * 2
    sizes = sorted(len(json.loads(r.content)["images"]) for r in posts)
    assert sizes == [3, 4]


async def test_a_failed_item_is_nan_or_raises_never_a_number() -> None:
    images = [solid(2), Image.new("RGB", (64, 48), (FAIL_RED, 90, 160)), solid(6)]
    async with asgi_router(1, engine_knobs={"reply": prose_for_fail_red}) as (http, _, __):
        reward = AsyncReward("http://router", http_client=http)
        scores = await reward(images, "edit")
        assert not math.isnan(scores[0]) and not math.isnan(scores[2])
        assert math.isnan(scores[1])
        failed = reward.last_results[1]
        assert failed.status == "error" and failed.error is not None
        assert failed.error.code == "unparseable_reply" and "I like it" in (failed.raw or "")
        strict = AsyncReward("http://router", http_client=http, on_error="raise")
        with pytest.raises(RewardError, match="1 of 3 items") as info:
            await strict(images, "edit")
    assert info.value.failed == [1]
    assert [r.status for r in info.value.results] == ["ok", "error", "ok"]
    assert strict.last_results == info.value.results


async def test_a_request_that_outlasts_its_retries_fails_its_items_or_raises() -> None:
    def router_that_drops_scoring(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            return httpx.Response(200, json={"protocols": ["viescore"]})
        raise httpx.ConnectError("connection reset", request=request)

    transport = httpx.MockTransport(router_that_drops_scoring)
    once = RetryPolicy(max_attempts=1)
    async with AsyncReward("http://gpu-box", transport=transport, retry=once) as lenient:
        scores = await lenient([solid(1), solid(2)], "edit")
    assert len(scores) == 2 and all(math.isnan(s) for s in scores)
    assert [r.error.code for r in lenient.last_results if r.error] == ["connection_error"] * 2
    assert "connection reset" in (lenient.last_results[0].error.message or "")  # type: ignore[union-attr]
    strict = AsyncReward("http://gpu-box", on_error="raise", transport=transport, retry=once)
    async with strict:
        with pytest.raises(APIConnectionError, match="cannot reach"):
            await strict([solid(1)], "edit")


def test_a_wrong_key_raises_even_with_nan() -> None:
    with (
        LoopbackRouter(1, api_keys="right") as router,
        Reward(router.url, api_key="wrong") as reward,
        pytest.raises(AuthenticationError),
    ):
        reward([solid(1)], "edit")


def test_blocking_reward_over_loopback() -> None:
    with LoopbackRouter(2, engine_knobs={"reply": digit_by_red}) as router:
        with Reward(router.url, protocol="expected") as reward:
            scores = reward([as_numpy(d) for d in (7, 2, 4)], ["a", "b", "c"])
            assert [r.scores["answer"] for r in reward.last_results] == [7, 2, 4]
            assert scores == [r.score for r in reward.last_results]
            assert reward([], []) == [] and reward.last_results == []
            assert reward.client.info().protocols
        with pytest.raises(RuntimeError, match="closed"):
            reward([solid(1)], "edit")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r([solid(1)] * 2, ["a"]), ValueError, "1 instructions for 2 images"),
        (lambda r: r([solid(1)], "e", [None, None]), ValueError, "2 source_images for 1 images"),
        (lambda r: r([solid(1)], "e", group_ids=[1, 2]), ValueError, "2 group_ids"),
        (lambda r: r([np.zeros((8, 8, 3))], "e"), ValueError, r"images\[0\]: .* uint8"),
        (lambda r: r([np.zeros((2, 8, 8, 3), np.uint8)], "e"), ValueError, "shape"),
        (lambda r: r([[1, 2, 3]], "e"), TypeError, "not list"),
        (lambda r: r([solid(1)], "e", [np.zeros((8, 8, 5), np.uint8)]), ValueError, "source"),
        (lambda r: r([solid(1)] * 2, "e", group_ids=["g", "g"]), ValueError, "no source image"),
        (
            lambda r: r([solid(1)] * 2, ["x", "y"], [solid(0)] * 2, group_ids=["g", "g"]),
            ValueError,
            "mixes instructions",
        ),
    ],
)
async def test_arguments_that_cannot_work_raise_before_anything_is_sent(
    call: Any, error: type[Exception], message: str
) -> None:
    async with asgi_router(1) as (http, _, sent):
        reward = AsyncReward("http://router", http_client=http, on_error="nan")
        with pytest.raises(error, match=message):
            await call(reward)
    assert [r for r in sent if r.method == "POST"] == []


async def test_a_shared_source_object_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = _reward_batch.encode

    def counting(value: Any, *args: Any, **kwargs: Any) -> bytes:
        calls.append(id(value))
        return real(value, *args, **kwargs)

    monkeypatch.setattr(_reward_batch, "encode", counting)
    source = np.full((64, 64, 3), 7, np.uint8)
    other = np.full((64, 64, 3), 9, np.uint8)
    async with asgi_router(1) as (http, _, __):
        reward = AsyncReward("http://router", http_client=http, batch_size=2)
        scores = await reward([solid(d) for d in range(6)], "e", [source] * 5 + [other])
    assert len(scores) == 6 and not any(math.isnan(s) for s in scores)
    assert calls.count(id(source)) == 1 and calls.count(id(other)) == 1
    assert len(calls) == 8  # six edited images, two distinct sources


def test_on_error_must_be_nan_or_raise() -> None:
    with pytest.raises(ValueError, match="on_error"):
        AsyncReward("http://x", on_error="zero")  # type: ignore[arg-type]
