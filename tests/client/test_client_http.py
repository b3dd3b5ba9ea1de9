"""The client's HTTP behaviour against scripted answers (httpx.MockTransport)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from editjudge.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    Item,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
)
from tests.helpers import image_bytes

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
INFO = {"version": "0", "model": "m", "protocols": ["viescore"], "limits": {"max_batch_items": 8}}


def ok(item_id: str | None, score: float = 5.0) -> dict[str, Any]:
    return {"id": item_id, "status": "ok", "score": score, "scores": {"a": score}}


def error(item_id: str | None, code: str) -> dict[str, Any]:
    return {"id": item_id, "status": "error", "error": {"code": code, "message": code}}


Handler = Callable[[httpx.Request, dict[str, Any]], httpx.Response]


def scripted(handler: Handler, seen: list[httpx.Request]) -> httpx.MockTransport:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        return handler(request, json.loads(request.content))

    return httpx.MockTransport(respond)


def echo_batch(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
    if "items" in body:
        return httpx.Response(200, json={"results": [ok(i["id"]) for i in body["items"]]})
    return httpx.Response(200, json=ok(body.get("id")))


def items(n: int) -> list[Item]:
    return [Item(image_bytes((i, 0, 0)), f"edit {i}", image_bytes()) for i in range(n)]


async def test_score_sends_bearer_key_and_json_with_data_urls() -> None:
    seen: list[httpx.Request] = []
    async with AsyncClient(
        "http://x", api_key="sekrit", transport=scripted(echo_batch, seen)
    ) as client:
        result = await client.score(image_bytes(), "add a hat", image_bytes(), id="e1")
        assert "sekrit" not in repr(client)
    assert result.ok and result.id == "e1" and result.score == 5.0
    post = seen[-1]
    assert post.headers["authorization"] == "Bearer sekrit"
    body = json.loads(post.content)
    assert body["image"].startswith("data:image/png;base64,") and body["instruction"] == "add a hat"
    assert body["source_image"].startswith("data:image/png;base64,")


async def test_api_key_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITJUDGE_API_KEY", "from-env")
    seen: list[httpx.Request] = []
    async with AsyncClient("http://x", transport=scripted(echo_batch, seen)) as client:
        await client.score(image_bytes(), "x")
    assert seen[-1].headers["authorization"] == "Bearer from-env"


async def test_429_and_503_are_retried_honouring_retry_after() -> None:
    answers = [
        httpx.Response(
            429,
            json={"error": {"code": "overloaded", "message": "busy"}},
            headers={"retry-after": "0.2"},
        ),
        httpx.Response(
            503,
            json={"error": {"code": "no_healthy_backend", "message": "down"}},
            headers={"retry-after": "0.2"},
        ),
    ]

    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return answers.pop(0) if answers else echo_batch(request, body)

    seen: list[httpx.Request] = []
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.0, max_delay_s=1.0)
    async with AsyncClient("http://x", retry=policy, transport=scripted(handler, seen)) as c:
        t0 = time.monotonic()
        result = await c.score(image_bytes(), "x")
        elapsed = time.monotonic() - t0
    assert result.ok and len([r for r in seen if r.url.path == "/score"]) == 3
    assert elapsed >= 0.4  # two waits of Retry-After: 0.2, although base_delay_s is 0


@pytest.mark.parametrize(
    ("status", "cls"), [(400, BadRequestError), (401, AuthenticationError), (422, BadRequestError)]
)
async def test_4xx_is_raised_at_once(status: int, cls: type[Exception]) -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": "nope", "message": "bad"}})

    seen: list[httpx.Request] = []
    async with AsyncClient("http://x", retry=FAST, transport=scripted(handler, seen)) as c:
        with pytest.raises(cls) as info:
            await c.score(image_bytes(), "x")
    assert info.value.status == status and info.value.code == "nope"  # type: ignore[attr-defined]
    assert len([r for r in seen if r.url.path == "/score"]) == 1


async def test_retries_are_bounded() -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(503, json={"error": {"code": "no_healthy_backend", "message": "x"}})

    seen: list[httpx.Request] = []
    async with AsyncClient("http://x", retry=FAST, transport=scripted(handler, seen)) as c:
        with pytest.raises(ServiceUnavailableError, match="503 no_healthy_backend"):
            await c.score(image_bytes(), "x")
    assert len([r for r in seen if r.url.path == "/score"]) == FAST.max_attempts


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), APIConnectionError),
        (httpx.ConnectTimeout("timed out"), APITimeoutError),
    ],
)
async def test_a_server_never_reached_fails_at_once(
    failure: httpx.TransportError, cls: type[Exception]
) -> None:
    # A wrong URL: waiting through the retries would only hide it.
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise failure

    async with AsyncClient(
        "http://x", retry=FAST, transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(cls, match="cannot reach http://x"):
            await client.info()
    assert calls == 1


async def test_a_server_that_answered_before_is_waited_for_when_it_goes_away() -> None:
    # The router restarts mid-run: connections are refused for a while, then it is back.
    refusals = 2
    score_calls = 0

    def respond(request: httpx.Request) -> httpx.Response:
        nonlocal refusals, score_calls
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        score_calls += 1
        if refusals:
            refusals -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return echo_batch(request, json.loads(request.content))

    async with AsyncClient("http://x", retry=FAST, transport=httpx.MockTransport(respond)) as c:
        results = await c.score_many(items(3))
    assert [r.ok for r in results] == [True] * 3 and score_calls == 3


async def test_a_broken_connection_is_retried_even_before_any_answer_and_bounded() -> None:
    # The connection stood, so the server is there: a reset or a read timeout is worth a retry.
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadError("connection reset by peer")

    async with AsyncClient(
        "http://x", retry=FAST, transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(APIConnectionError, match="cannot reach http://x: connection reset"):
            await client.info()
    assert calls == FAST.max_attempts


async def test_a_reply_that_is_not_the_api_is_a_server_error() -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, text="<html>captive portal</html>")

    async with AsyncClient("http://x", retry=FAST, transport=scripted(handler, [])) as c:
        with pytest.raises(ServerError, match="not JSON"):
            await c.score(image_bytes(), "x")


async def test_score_many_chunks_keeps_order_and_bounds_in_flight() -> None:
    in_flight = peak = 0
    three_in_flight = anyio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        body = json.loads(request.content)
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            three_in_flight.set()
        with anyio.move_on_after(2):  # the first three requests meet here (if they can)
            await three_in_flight.wait()
        # the first chunk answers last, so completion order differs from input order
        await anyio.sleep(0.03 if body["items"][0]["id"] == "0" else 0)
        in_flight -= 1
        return httpx.Response(200, json={"results": [ok(i["id"]) for i in body["items"]]})

    arrived: list[int] = []
    async with AsyncClient(
        "http://x", concurrency=3, batch_size=5, transport=httpx.MockTransport(handler)
    ) as client:
        results = await client.score_many(items(37), on_result=lambda i, r: arrived.append(i))
    assert [r.id for r in results] == [str(i) for i in range(37)]
    assert sorted(arrived) == list(range(37)) and arrived != sorted(arrived)
    assert peak == 3


async def test_batch_size_is_capped_by_the_routers_max_batch_items() -> None:
    seen: list[httpx.Request] = []
    async with AsyncClient(
        "http://x", batch_size=100, transport=scripted(echo_batch, seen)
    ) as client:
        await client.score_many(items(20))
    sizes = [len(json.loads(r.content)["items"]) for r in seen if r.url.path == "/score"]
    assert sorted(sizes) == [4, 8, 8]  # INFO says max_batch_items = 8


async def test_item_errors_are_results_and_only_transient_ones_are_resent() -> None:
    posted: list[list[str]] = []
    transient = {"1": 2}  # item "1" finds no healthy backend twice, then succeeds

    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        ids = [i["id"] for i in body["items"]]
        posted.append(ids)
        results = []
        for i in ids:
            if transient.get(i, 0) > 0:
                transient[i] -= 1
                results.append(error(i, "no_healthy_backend"))
            elif i == "2":
                results.append(error(i, "unparseable_reply"))
            else:
                results.append(ok(i))
        return httpx.Response(200, json={"results": results})

    mixed: list[Item | dict[str, Any]] = [*items(3), {"image": b"not an image", "instruction": "x"}]
    async with AsyncClient("http://x", retry=FAST, transport=scripted(handler, [])) as c:
        results = await c.score_many(mixed)
    assert [r.status for r in results] == ["ok", "ok", "error", "error"]
    assert results[2].error.code == "unparseable_reply"  # type: ignore[union-attr]
    assert results[3].error.code == "invalid_image" and results[3].id == "3"  # type: ignore[union-attr]
    assert posted == [["0", "1", "2"], ["1"], ["1"]]  # the bad image was never sent


async def test_a_fatal_error_stops_score_many() -> None:
    def handler(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "key"}})

    async with AsyncClient("http://x", retry=FAST, transport=scripted(handler, [])) as c:
        with pytest.raises(AuthenticationError):
            await c.score_many(items(40))


def test_sync_client_has_the_same_behaviour() -> None:
    seen: list[httpx.Request] = []
    with Client("http://x", batch_size=4, transport=scripted(echo_batch, seen)) as client:
        assert client.info().model == "m"
        assert client.score(image_bytes(), "x", id="a").id == "a"
        results = client.score_many(
            [{"image": image_bytes(), "instruction": f"e{i}", "id": f"k{i}"} for i in range(10)]
        )
    assert [r.id for r in results] == [f"k{i}" for i in range(10)]
    with pytest.raises(RuntimeError, match="closed"):
        client.score(image_bytes(), "x")
