"""Engines that answer badly: 5xx and non-JSON failover, 4xx is not retried, the circuit breaker
opens, /ready follows it, and a half-open probe closes it when the engine recovers."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import httpx

from tests.helpers import fake_engines, item, router


async def _backends(c: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {b["url"]: b for b in (await c.get("/backends")).json()}


async def test_5xx_engine_is_failed_over_and_its_circuit_opens() -> None:
    async with (
        fake_engines(2) as engines,
        router([u for _, u in engines], failure_threshold=2, circuit_open_s=60) as c,
    ):
        bad, bad_url = engines[0]
        bad.status = 500
        r = await c.post("/score", json={"items": [item(i) for i in range(20)]})
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * 20
        assert {x["backend"] for x in results} == {engines[1][1]}
        state = (await _backends(c))[bad_url]
        assert state["state"] == "open" and not state["healthy"]
        seen = len(bad.requests)
        # once open, the circuit keeps new work away (what was already in flight had failed)
        r = await c.post("/score", json={"items": [item(i) for i in range(20)]})
        assert [x["status"] for x in r.json()["results"]] == ["ok"] * 20
        assert len(bad.requests) == seen
        assert (await _backends(c))[bad_url]["failures"] == state["failures"]
        metrics = (await c.get("/metrics")).text
        assert 'editjudge_retries_total{code="backend_http_error"}' in metrics


async def test_non_json_reply_is_failed_over() -> None:
    async with fake_engines(2) as engines, router([u for _, u in engines]) as c:
        engines[0][0].raw_reply = b"<html>502 proxy error</html>"
        r = await c.post("/score", json={"items": [item(i) for i in range(6)]})
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * 6
        assert {x["backend"] for x in results} == {engines[1][1]}
        assert engines[0][0].requests  # it was tried


async def test_4xx_from_an_engine_is_not_retried() -> None:
    async with fake_engines(2, status=400) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", json=item(0))
        assert r.status_code == 200
        res = r.json()
        assert res["status"] == "error" and res["error"]["code"] == "backend_http_error"
        assert res["score"] is None
        # the request was wrong for any engine: exactly one engine saw it (both calls)
        assert sorted(len(e.requests) for e, _ in engines) == [0, 2]


async def test_ready_follows_circuits_and_a_half_open_probe_recovers() -> None:
    async with (
        fake_engines(2) as engines,
        router(
            [u for _, u in engines], failure_threshold=1, circuit_open_s=1.0, max_attempts=1
        ) as c,
    ):
        for e, _ in engines:
            e.status = 503
        r = await c.post("/score", json={"items": [item(i) for i in range(4)]})
        assert {x["error"]["code"] for x in r.json()["results"]} == {"backend_http_error"}
        # both circuits are open although /health still answers 200
        assert all(b["state"] == "open" for b in (await _backends(c)).values())
        ready = await c.get("/ready")
        assert ready.status_code == 503 and "retry-after" in ready.headers
        r = await c.post("/score", json=item(0))
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_healthy_backend"

        for e, _ in engines:
            e.status = 200
        await asyncio.sleep(1.1)  # the circuits go half-open
        assert (await c.get("/ready")).status_code == 200
        assert {b["state"] for b in (await _backends(c)).values()} == {"half_open"}
        r = await c.post("/score", json={"items": [item(i) for i in range(10)]})
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * 10
        assert {b["state"] for b in (await _backends(c)).values()} == {"closed"}
        used = collections.Counter(x["backend"] for x in results)
        assert set(used) == {u for _, u in engines}, used  # both back in rotation


async def test_failed_probe_reopens_the_circuit_and_spares_the_engine() -> None:
    async with (
        fake_engines(2) as engines,
        router([u for _, u in engines], failure_threshold=1, circuit_open_s=0.3) as c,
    ):
        bad, bad_url = engines[0]
        bad.status = 500
        await c.post("/score", json={"items": [item(i) for i in range(4)]})
        assert (await _backends(c))[bad_url]["state"] == "open"
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:  # steady traffic while the engine stays broken
            r = await c.post("/score", json={"items": [item(i) for i in range(4)]})
            assert [x["status"] for x in r.json()["results"]] == ["ok"] * 4
            await asyncio.sleep(0.05)
        # ~5 half-open windows in 1.5 s: one probe item each (2 calls), not the full traffic
        assert len(bad.requests) <= 2 * 8, len(bad.requests)
        assert (await _backends(c))[bad_url]["state"] in ("open", "half_open")
