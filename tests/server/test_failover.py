"""Failover with real processes: ``kill -9`` of an engine mid-batch, all engines down and back.

The router runs as deployed (``python -m server`` under uvicorn) and the engines are separate
``python -m server.testing.fake_engine`` processes on loopback, so a kill is a real dead socket.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from pathlib import Path

import httpx
import orjson

from tests.helpers import b64, image_bytes
from tests.processes import Proc, Procs

N_ITEMS = 500


def _batch(n: int) -> tuple[list[dict[str, object]], list[str]]:
    """``n`` items with distinct edited images; also each item's image digest as engines see it."""
    source = b64(image_bytes((10, 200, 10), size=(32, 24)))
    items, digests = [], []
    for i in range(n):
        edited = b64(image_bytes((i % 256, i // 256, 99), size=(32, 24)))
        items.append({"image": edited, "source_image": source, "instruction": f"edit {i}"})
        items[-1]["id"] = f"item-{i}"
        url = f"data:image/png;base64,{edited}"
        digests.append(hashlib.blake2b(url.encode(), digest_size=8).hexdigest())
    return items, digests


def _events(path: Path) -> list[tuple[str, str, str]]:
    """``(event, item_digest, call)`` per line of an engine's request log (call: sc or pq)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.endswith("}"):  # a line cut short by kill -9
            continue
        e = orjson.loads(line)
        out.append((e["event"], e["images"][-1], "sc" if len(e["images"]) == 2 else "pq"))
    return out


async def _wait_busy(path: Path, n: int, timeout: float = 60.0) -> None:
    """Until the engine has received ``n`` calls and is working on some right now."""
    deadline = time.monotonic() + timeout
    while True:
        events = collections.Counter(e for e, _, _ in _events(path))
        if events["recv"] >= n and events["recv"] > events["done"]:
            return
        assert time.monotonic() < deadline, f"engine never got busy with {n} calls"
        await asyncio.sleep(0.005)


async def test_kill9_one_engine_mid_batch_loses_and_duplicates_nothing(
    procs: Procs, tmp_path: Path
) -> None:
    logs = [tmp_path / f"requests-{i}.jsonl" for i in range(3)]
    engines = [procs.engine(latency=0.2, request_log=log) for log in logs]
    env = {"EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": "16", "EDITJUDGE_MAX_BATCH_ITEMS": "1000"}
    router = procs.router([e.url for e in engines], env=env)
    items, digests = _batch(N_ITEMS)
    victim = engines[0]

    async with httpx.AsyncClient(base_url=router.url, timeout=120) as client:
        batch = asyncio.create_task(client.post("/score", json={"items": items}))
        await _wait_busy(logs[0], 40)  # the victim is mid-way through its third round
        victim.kill9()
        r = await batch
        metrics = (await client.get("/metrics")).text
        backends = (await client.get("/backends")).json()

    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == [f"item-{i}" for i in range(N_ITEMS)]
    bad = [x for x in results if x["status"] != "ok"]
    assert not bad, bad[:3]
    assert all(0 <= x["score"] <= 10 for x in results)
    by_backend = collections.Counter(x["backend"] for x in results)
    assert 0 < by_backend[victim.url] < N_ITEMS / 3, by_backend  # it died partway through
    assert not next(b for b in backends if b["url"] == victim.url)["healthy"]
    assert 'editjudge_retries_total{code="backend_unavailable"}' in metrics

    retried = _check_engine_side_work(engines, logs, results, digests, victim)
    print(f"kill -9: items per engine {dict(by_backend)}; calls redone elsewhere: {retried}")


def _check_engine_side_work(
    engines: list[Proc],
    logs: list[Path],
    results: list[dict[str, object]],
    digests: list[str],
    victim: Proc,
) -> int:
    """Each item's calls were answered by the engine its result names; any other work on an item
    is an attempt on the killed engine that never came back (a retry, not a duplicate)."""
    received = {e.url: collections.Counter[tuple[str, str]]() for e in engines}
    answered = {e.url: collections.Counter[tuple[str, str]]() for e in engines}
    for engine, log in zip(engines, logs, strict=True):
        for event, digest, call in _events(log):
            (received if event == "recv" else answered)[engine.url][digest, call] += 1
    retried = 0
    for result, digest in zip(results, digests, strict=True):
        owner = result["backend"]
        for call in ("sc", "pq"):
            assert answered[str(owner)][digest, call] == 1, (result["id"], call)
            for engine in engines:
                n = received[engine.url][digest, call]
                if engine.url == owner:
                    assert n == 1, (result["id"], call, "sent twice to its own engine")
                elif engine is victim:
                    assert n <= 1
                    retried += n
                else:
                    assert n == 0, (result["id"], call, "worked on by two live engines")
    assert retried > 0  # the kill did interrupt work in flight, which was redone elsewhere
    return retried


async def test_all_engines_down_then_back_without_restarting_the_router(procs: Procs) -> None:
    engines = [procs.engine(latency=0.05) for _ in range(2)]
    ports = [int(e.url.rsplit(":", 1)[1]) for e in engines]
    router = procs.router([e.url for e in engines])
    item = {"image": b64(image_bytes()), "instruction": "add a hat"}

    async with httpx.AsyncClient(base_url=router.url, timeout=30) as client:
        assert (await client.post("/score", json=item)).json()["status"] == "ok"
        for e in engines:
            e.kill9()
        ready = await _poll(client, "/ready", 503)
        assert int(ready.headers["retry-after"]) >= 1
        assert ready.json()["healthy_backends"] == 0
        r = await client.post("/score", json=item)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "no_healthy_backend"
        assert int(r.headers["retry-after"]) >= 1
        r = await client.post("/score", json={"items": [item, item]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_healthy_backend"

        for port in ports:  # the same engines come back on the same addresses
            procs.engine(port=port, latency=0.05)
        await _poll(client, "/ready", 200, healthy=2)
        r = await client.post("/score", json={"items": [item] * 8})
        assert r.status_code == 200
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * 8
        assert {x["backend"] for x in results} == {e.url for e in engines}


async def test_all_engines_die_mid_batch_items_fail_fast_and_in_order(procs: Procs) -> None:
    """No backend left while items wait: they end as ``no_healthy_backend`` errors, soon."""
    engines = [procs.engine(latency=0.3) for _ in range(2)]
    env = {"EDITJUDGE_MAX_IN_FLIGHT_PER_BACKEND": "4", "EDITJUDGE_NO_BACKEND_WAIT_S": "1"}
    router = procs.router([e.url for e in engines], env=env)
    items, _ = _batch(40)

    async with httpx.AsyncClient(base_url=router.url, timeout=60) as client:
        t0 = time.monotonic()
        batch = asyncio.create_task(client.post("/score", json={"items": items}))
        await asyncio.sleep(0.5)
        for e in engines:
            e.kill9()
        r = await batch
        elapsed = time.monotonic() - t0

    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["id"] for x in results] == [f"item-{i}" for i in range(40)]
    codes = collections.Counter(x["error"]["code"] if x["error"] else "ok" for x in results)
    assert codes["ok"] > 0 and codes["no_healthy_backend"] > 0, codes
    assert set(codes) <= {"ok", "no_healthy_backend", "backend_unavailable"}, codes
    assert elapsed < 10, f"took {elapsed:.1f}s: items waited for the 600 s request deadline"
    print(f"all engines killed mid-batch: {dict(codes)} in {elapsed:.1f}s")


async def _poll(
    client: httpx.AsyncClient, path: str, status: int, timeout: float = 20.0, healthy: int = 0
) -> httpx.Response:
    """GET ``path`` until it answers ``status`` (and, for /ready, ``healthy`` backends)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(path)
        done = r.status_code == status and r.json().get("healthy_backends", 0) >= healthy
        if done or time.monotonic() > deadline:
            assert r.status_code == status, r.text
            return r
        await asyncio.sleep(0.05)
