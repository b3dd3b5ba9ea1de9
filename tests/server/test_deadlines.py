"""Slow and hung backends against the per-call timeout and the per-request deadline: no hangs."""

from __future__ import annotations

import time

from tests.helpers import fake_engines, item, router


async def test_hung_backend_single_request_is_504_at_the_deadline() -> None:
    async with (
        fake_engines(2, hang=True) as engines,
        router([u for _, u in engines], request_deadline_s=0.5) as c,
    ):
        t0 = time.monotonic()
        r = await c.post("/score", json=item(0))
        elapsed = time.monotonic() - t0
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert int(r.headers["retry-after"]) >= 1
        assert elapsed < 2.0, f"took {elapsed:.2f}s for a 0.5 s deadline"
        # running out of the caller's deadline is no mark against the backends
        backends = (await c.get("/backends")).json()
        assert all(b["failures"] == 0 and b["state"] == "closed" for b in backends)


async def test_slow_backends_time_out_per_call_and_fail_over_then_give_up() -> None:
    async with (
        fake_engines(2, latency_s=5.0) as engines,
        router([u for _, u in engines], request_timeout_s=0.3, max_attempts=2) as c,
    ):
        t0 = time.monotonic()
        r = await c.post("/score", json=item(0))
        elapsed = time.monotonic() - t0
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "backend_timeout"
        assert "retry-after" in r.headers
        assert elapsed < 2.0, f"two 0.3 s attempts took {elapsed:.2f}s"
        # both engines were tried once each: the retry went to the other one
        assert [len(e.requests) for e, _ in engines] == [2, 2]
        backends = (await c.get("/backends")).json()
        assert all(b["failures"] == 1 for b in backends)


async def test_a_slow_backend_is_failed_over_to_a_fast_one() -> None:
    async with (
        fake_engines(2) as engines,
        router([u for _, u in engines], request_timeout_s=0.3) as c,
    ):
        engines[0][0].latency_s = 5.0
        r = await c.post("/score", json={"items": [item(i) for i in range(6)]})
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * 6
        assert {x["backend"] for x in results} == {engines[1][1]}


async def test_batch_past_its_deadline_returns_every_item_in_order_without_hanging() -> None:
    async with (
        fake_engines(1, latency_s=0.2) as engines,
        router([u for _, u in engines], request_deadline_s=0.7, max_in_flight_per_backend=4) as c,
    ):
        # 2 items at a time x 0.2 s: about 6 of the 20 finish inside 0.7 s
        t0 = time.monotonic()
        r = await c.post("/score", json={"items": [item(i) for i in range(20)]})
        elapsed = time.monotonic() - t0
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["id"] for x in results] == [f"item-{i}" for i in range(20)]
        statuses = [x["status"] for x in results]
        assert 0 < statuses.count("ok") < 20, statuses
        late = [x for x in results if x["status"] == "error"]
        assert {x["error"]["code"] for x in late} == {"deadline_exceeded"}
        assert all(x["score"] is None for x in late)
        assert elapsed < 1.5, f"took {elapsed:.2f}s for a 0.7 s deadline"
