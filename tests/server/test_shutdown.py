"""Graceful shutdown of the deployed router: SIGTERM stops accepting, drains, then exits 0."""

from __future__ import annotations

import asyncio
import collections
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson

from tests.helpers import item
from tests.processes import Procs


def _refuses(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_sigterm_drains_in_flight_requests_then_exits_0(procs: Procs, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    engine = procs.engine(latency=2.0, request_log=log)
    router = procs.router([engine.url])
    async with httpx.AsyncClient(base_url=router.url, timeout=30) as client:
        single = asyncio.create_task(client.post("/score", json=item(0)))
        batch = asyncio.create_task(client.post("/score", json={"items": [item(1), item(2)]}))
        while log.read_text().count('"recv"') < 6:  # both requests are with the engine
            await asyncio.sleep(0.01)
        t_term = time.monotonic()
        router.popen.send_signal(signal.SIGTERM)

        # stops accepting while the two requests are still in flight
        while not _refuses(router.url):
            assert time.monotonic() - t_term < 1.5, "still accepting 1.5 s after SIGTERM"
            await asyncio.sleep(0.02)
        assert not single.done() and not batch.done()

        r1, r2 = await single, await batch
    assert r1.status_code == 200 and r1.json()["status"] == "ok"
    assert r2.status_code == 200
    assert [x["status"] for x in r2.json()["results"]] == ["ok", "ok"]
    assert router.popen.wait(10) == 0
    drained = time.monotonic() - t_term
    assert drained < 5, f"shutdown took {drained:.1f}s for a 2 s request"
    print(f"SIGTERM: in-flight requests answered 200, exit 0, {drained:.2f}s after the signal")
    events = collections.Counter(orjson.loads(x)["event"] for x in log.read_text().splitlines())
    assert events == {"recv": 6, "done": 6}  # nothing was cut off or sent twice


def test_sigterm_when_idle_exits_0_at_once(procs: Procs) -> None:
    engine = procs.engine()
    router = procs.router([engine.url])
    with httpx.Client(base_url=router.url) as client:  # an idle keep-alive connection
        assert client.get("/health").status_code == 200
        t0 = time.monotonic()
        router.popen.send_signal(signal.SIGTERM)
        assert router.popen.wait(10) == 0
    assert time.monotonic() - t0 < 3
    assert "Finished server process" in router.log()
