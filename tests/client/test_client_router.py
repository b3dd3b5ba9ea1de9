"""The client against the real router: in-process (ASGI transport) and over loopback (uvicorn)."""

from __future__ import annotations

import base64
import io
import random
import socket
import threading
import time
from typing import Any

import pytest
from PIL import Image

from editjudge.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    Client,
    Item,
    RetryPolicy,
    ServerInfo,
)
from editjudge.server.testing import LocalRouter
from editjudge.server.testing.fake_engine import FakeEngine
from tests.client.servers import LoopbackRouter, asgi_router
from tests.helpers import image_bytes


def sent_images(engine: FakeEngine) -> list[Image.Image]:
    """The images an engine received (decoded from the chat requests' data URLs)."""
    out = []
    for body in engine.requests:
        for part in body["messages"][0]["content"]:
            if part["type"] == "image_url":
                data = part["image_url"]["url"].partition(",")[2]
                out.append(Image.open(io.BytesIO(base64.b64decode(data))))
    return out


def noise_png(size: tuple[int, int], seed: int) -> bytes:
    """An incompressible PNG: its encoded size is predictable (~3 bytes a pixel)."""
    im = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


async def test_in_process_score_and_batch_order_across_engines() -> None:
    async with asgi_router(2) as (http, engines, _):
        engines[0].latency_s = 0.03  # completion order != input order
        client = AsyncClient("http://router", http_client=http)
        single = await client.score(image_bytes(), "add a hat", image_bytes((9, 9, 9)))
        assert single.ok and 0 <= single.score <= 10  # type: ignore[operator]
        items = [
            Item(image_bytes((i, 0, 0)), f"edit {i}", image_bytes(), f"e{i}") for i in range(30)
        ]
        results = await client.score_many(items)
    assert [r.id for r in results] == [f"e{i}" for i in range(30)]
    assert all(r.ok and r.score is not None for r in results)
    assert len({r.backend for r in results}) == 2 and all(e.served for e in engines)


async def test_in_process_judge_failures_and_bad_items_are_results() -> None:
    async with asgi_router(1, engine_knobs={"reply": lambda body: "I like it"}) as (http, _, __):
        client = AsyncClient("http://router", http_client=http)
        results = await client.score_many(
            [
                Item(image_bytes(), "fine"),
                Item(image_bytes(), "x" * 9000),  # over the router's instruction limit
                Item(b"GIF89a broken", "not an image"),
            ]
        )
    assert [r.status for r in results] == ["error", "error", "error"]
    assert results[0].error.code == "unparseable_reply" and "I like it" in (results[0].raw or "")  # type: ignore[union-attr]
    assert results[1].error.code == "invalid_request"  # type: ignore[union-attr]
    assert results[2].error.code == "invalid_image" and results[2].backend is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        ({"max_image_pixels": 20_000}, (163, 122)),
        ({"max_image_pixels": 20_000, "resize_max_pixels": 5_000}, (81, 61)),
        ({"max_image_pixels": 20_000, "resize_max_pixels": 5_000, "resize_grid": 28}, (56, 56)),
    ],
)
async def test_images_are_downscaled_to_the_routers_cap(
    overrides: dict[str, Any], size: tuple[int, int]
) -> None:
    big = image_bytes(size=(400, 300), fmt="JPEG")  # 120k pixels: the router alone would say 413
    async with asgi_router(1, **overrides) as (http, engines, _):
        client = AsyncClient("http://router", http_client=http)
        result = await client.score(big, "edit", source_image=big)
    assert result.ok
    images = sent_images(engines[0])
    # the largest size within the cap (on the model's grid if the router has one), still JPEG;
    # with resize_max_pixels, exactly the size the router's own resize would have produced
    assert len(images) == 3 and all(im.size == size and im.format == "JPEG" for im in images)


async def test_batches_are_split_to_stay_under_max_body_bytes() -> None:
    images = [noise_png((100, 100), seed=i) for i in range(6)]  # ~30 KB each, incompressible
    async with asgi_router(1, max_body_bytes=100_000) as (http, _, sent):
        client = AsyncClient("http://router", http_client=http, batch_size=6)
        results = await client.score_many([Item(im, f"e{i}") for i, im in enumerate(images)])
    assert all(r.ok for r in results) and [r.id for r in results] == [str(i) for i in range(6)]
    posts = [r for r in sent if r.url.path == "/score"]
    assert len(posts) >= 2 and all(len(r.content) <= 100_000 for r in posts)


def test_loopback_sync_client_with_api_key() -> None:
    with LoopbackRouter(2, api_keys="k1,k2") as router:
        with Client(router.url, api_key="k2") as client:
            items = [{"image": image_bytes((i, 1, 1)), "instruction": f"e{i}"} for i in range(12)]
            results = client.score_many(items)
            assert [r.id for r in results] == [str(i) for i in range(12)]
            assert all(r.ok for r in results)
        with Client(router.url, api_key="wrong") as client, pytest.raises(AuthenticationError):
            client.score(image_bytes(), "x")
    assert sum(e.served for e in router.engines) == 24


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "nonexistent.invalid"])
def test_a_wrong_url_fails_in_about_two_seconds_naming_it(host: str) -> None:
    # With the default retry policy: before this fix, 8 tries took 25-45 s.
    url = "http://" + host.format(port=closed_port())
    items = [{"image": image_bytes(), "instruction": "x"}]
    with Client(url) as client:
        t0 = time.monotonic()
        with pytest.raises(APIConnectionError) as info:
            client.score_many(items)
        elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed
    message = str(info.value)
    assert message.startswith(f"cannot reach {url}: ") and "\n" not in message
    assert ("unknown host" if "invalid" in url else "connection refused") in message


def reusable_socket(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def test_a_router_restart_mid_run_is_waited_for_not_raised() -> None:
    # Once the client has had an answer, "connection refused" means a restart, not a wrong URL.
    first = LocalRouter(1, sock=reusable_socket()).__enter__()
    port = int(first.sock.getsockname()[1])
    second: list[LocalRouter] = []

    def restart() -> None:
        time.sleep(1.0)
        second.append(LocalRouter(1, sock=reusable_socket(port)).__enter__())

    policy = RetryPolicy(max_attempts=10, base_delay_s=0.2, max_delay_s=1.0)
    items = [{"image": image_bytes((i, 2, 2)), "instruction": f"e{i}"} for i in range(6)]
    try:
        with Client(first.url, retry=policy) as client:
            assert client.info().capacity is not None
            first.__exit__()  # the router is gone: its port refuses connections
            threading.Thread(target=restart).start()
            t0 = time.monotonic()
            results = client.score_many(items)
            waited = time.monotonic() - t0
    finally:
        for box in second:
            box.__exit__()
    assert [r.ok for r in results] == [True] * 6 and waited >= 1.0
    assert second and second[0].engines[0].served == 12  # all of it, by the new router


async def test_loopback_waits_out_a_router_without_healthy_backends() -> None:
    with LoopbackRouter(1, engine_knobs={"healthy": False}) as router:
        threading.Timer(1.0, lambda: setattr(router.engines[0], "healthy", True)).start()
        policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0)
        async with AsyncClient(router.url, retry=policy) as client:
            t0 = time.monotonic()
            result = await client.score(image_bytes(), "edit")
            waited = time.monotonic() - t0
    assert result.ok and waited >= 0.9  # answered 503 until the engine became healthy


async def test_concurrency_is_sized_from_the_routers_healthy_engines() -> None:
    """Without --concurrency the client keeps the router's suggested items in flight: a box
    with more engines gets more requests in flight, a small one is not flooded."""
    for n_engines, expected in ((1, 2), (4, 8)):
        async with asgi_router(n_engines, max_in_flight_per_backend=32) as (http, _, __):
            client = AsyncClient("http://router", http_client=http, batch_size=16)
            info = await client.info()
            assert info.capacity is not None and info.capacity.healthy_backends == n_engines
            # n x 32 (the windows' ceiling) items suggested, in requests of 16 items
            assert client.concurrency_for(info) == expected
            fixed = AsyncClient("http://router", http_client=http, concurrency=3)
            assert fixed.concurrency_for(info) == 3
    old_router = ServerInfo()  # no capacity field: the fixed fallback
    assert AsyncClient("http://x").concurrency_for(old_router) == 4


async def test_score_many_keeps_the_suggested_number_of_requests_in_flight() -> None:
    knobs = {"latency_s": 0.05}
    async with asgi_router(2, engine_knobs=knobs, max_in_flight_per_backend=8) as (http, _, __):
        client = AsyncClient("http://router", http_client=http, batch_size=4)
        peak, active = 0, 0
        real_request = client.request

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal peak, active
            active += 1
            peak = max(peak, active)
            try:
                return await real_request(*args, **kwargs)
            finally:
                active -= 1

        client.request = counting  # type: ignore[method-assign]
        items = [Item(image_bytes((i, 0, 0)), f"edit {i}", id=str(i)) for i in range(40)]
        results = await client.score_many(items)
    assert all(r.ok for r in results)
    assert peak == 4  # 2 engines x 8 (their windows' ceiling) items / 4 items per request


async def test_meta_round_trips_through_the_client_and_its_own_error_results() -> None:
    async with asgi_router(1) as (http, _, _):
        client = AsyncClient("http://router", http_client=http)
        single = await client.score(image_bytes(), "add a hat", meta={"task": "add", "k": [1]})
        assert single.ok and single.meta == {"task": "add", "k": [1]}
        items = [
            Item(image_bytes(), "fine", meta={"i": 0}),
            {"image": b"not an image", "instruction": "broken", "meta": {"i": 1}},
        ]
        results = await client.score_many(items)
    assert [r.meta for r in results] == [{"i": 0}, {"i": 1}]
    # refused by the client before any request (no fingerprint), its meta kept all the same
    assert results[1].status == "error" and results[1].fingerprint is None
