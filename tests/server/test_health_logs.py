"""The router's log says when a backend changes state, once, with the reason; a health probe that
changes nothing says nothing. Real transports against loopback servers: a refused port, a 503, a
server that never answers, an engine that goes away, a circuit that opens and closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from editjudge.server.engine import HEALTHY, EngineClient, make_engine_client
from editjudge.server.errors import BackendHTTPError, BackendUnavailable
from editjudge.server.health import check_all
from editjudge.server.pool import BackendPool, PoolConfig
from editjudge.server.testing.fake_engine import FakeEngine, start
from tests.helpers import fake_engines, item, router
from tests.processes import Procs, free_port

TRANSPORTS = ["aiohttp", "httpx"]


def pool_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(level, message) of every pool record at INFO and above, in order."""
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "editjudge.pool" and r.levelno >= logging.INFO
    ]


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: health checks time out."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@contextlib.asynccontextmanager
async def engine_client(transport: str) -> AsyncIterator[EngineClient]:
    client = make_engine_client(transport)
    try:
        yield client
    finally:
        await client.aclose()


async def rounds(pool: BackendPool, client: EngineClient, n: int = 3) -> None:
    for _ in range(n):
        await check_all(pool, client, timeout=0.3)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_health_failure_is_one_line_with_its_reason(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    refused = f"http://127.0.0.1:{free_port()}"
    async with (
        fake_engines(2) as [(_, good), (sick, sick_url)],
        silent_server() as silent,
        engine_client(transport) as client,
    ):
        sick.healthy = False
        pool = BackendPool([good, sick_url, refused, silent], PoolConfig())
        await rounds(pool, client)  # the first round says how each one is; the others, nothing
        assert sorted(pool_lines(caplog)) == sorted(
            [
                ("INFO", f"backend {good} healthy"),
                ("WARNING", f"backend {sick_url} unhealthy: GET /health: HTTP 503"),
                ("WARNING", f"backend {refused} unhealthy: GET /health: connection refused"),
                ("WARNING", f"backend {silent} unhealthy: GET /health: timed out after 0.3s"),
            ]
        )
        caplog.clear()
        sick.healthy = True
        await rounds(pool, client)
        [(level, line)] = pool_lines(caplog)
        assert level == "INFO" and re.fullmatch(
            rf"backend {sick_url} healthy again after \d+s down", line
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_engine_that_goes_away_is_one_line(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    runner, url = await start(FakeEngine())
    async with engine_client(transport) as client:
        pool = BackendPool([url], PoolConfig())
        try:
            await rounds(pool, client)
            assert pool_lines(caplog) == [("INFO", f"backend {url} healthy")]
            caplog.clear()
        finally:
            await runner.cleanup()
        await rounds(pool, client)
    assert pool_lines(caplog) == [
        ("WARNING", f"backend {url} unhealthy: GET /health: connection refused")
    ]


async def test_a_request_that_finds_an_engine_gone_marks_it_down_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The passive path: real traffic meets a refused connection before the next health check."""
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    runner, gone = await start(FakeEngine())
    async with fake_engines(1) as [(_, up)], router([gone, up], health_interval_s=60) as c:
        await asyncio.sleep(0.3)  # the health loop's first round, at once, is over; next in 60 s
        await runner.cleanup()
        caplog.clear()
        r = await c.post("/score", json={"items": [item(i) for i in range(8)]})
        assert [x["status"] for x in r.json()["results"]] == ["ok"] * 8
    down = [line for line in pool_lines(caplog) if gone in line[1]]
    assert down == [
        (
            "WARNING",
            f"backend {gone} unhealthy: request failed: cannot reach backend: connection refused",
        )
    ]


async def test_a_circuit_opens_and_closes_with_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    async with (
        fake_engines(2) as engines,
        router([u for _, u in engines], failure_threshold=2, circuit_open_s=0.5) as c,
    ):
        (bad, bad_url), _ = engines
        startup = pool_lines(caplog)
        bad.status = 503  # /health still answers 200: only real traffic can tell
        for _ in range(2):
            r = await c.post("/score", json={"items": [item(i) for i in range(10)]})
            assert [x["status"] for x in r.json()["results"]] == ["ok"] * 10
        opened = pool_lines(caplog)[len(startup) :]
        assert opened == [
            (
                "WARNING",
                f"backend {bad_url} circuit open for 0.5s: 2 consecutive failures, "
                "the last: backend answered HTTP 503",
            )
        ]
        bad.status = 200
        await asyncio.sleep(0.6)
        for _ in range(3):
            await c.post("/score", json={"items": [item(i) for i in range(10)]})
        closed = pool_lines(caplog)[len(startup) + 1 :]
        assert closed == [("INFO", f"backend {bad_url} circuit closed: a request succeeded again")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_circuit_says_open_once_and_closed_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    clock = Clock()
    pool = BackendPool(["http://b0"], PoolConfig(failure_threshold=2, circuit_open_s=5), clock)
    b0 = pool.backends[0]
    pool.set_health(b0, HEALTHY)
    error = BackendHTTPError("backend answered HTTP 503", b0.url, 503, "")
    for _ in range(4):  # opens at the second; the rest were already on their way
        pool.record_failure(b0, error)
    for _ in range(3):  # half-open after 5 s; each probe fails and opens it again
        clock.now += 6
        assert b0.circuit(clock.now) == "half_open"
        pool.record_failure(b0, error)
    clock.now += 6
    pool.record_success(b0, 0.1)
    pool.record_success(b0, 0.1)
    assert pool_lines(caplog) == [
        ("INFO", "backend http://b0 healthy"),
        (
            "WARNING",
            "backend http://b0 circuit open for 5s: 2 consecutive failures, "
            "the last: backend answered HTTP 503",
        ),
        ("INFO", "backend http://b0 circuit closed: a request succeeded again"),
    ]


def test_a_backend_marked_down_says_nothing_about_its_circuit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests that were on their way to an engine when it went fail too, and open its circuit:
    its one line is that it is down, then that it is back."""
    caplog.set_level(logging.DEBUG, logger="editjudge.pool")
    clock = Clock()
    pool = BackendPool(["http://b0"], PoolConfig(failure_threshold=2, circuit_open_s=5), clock)
    b0 = pool.backends[0]
    pool.set_health(b0, HEALTHY)
    caplog.clear()
    for _ in range(3):
        pool.record_failure(b0, BackendUnavailable("cannot reach backend: connection refused", ""))
    assert b0.circuit(clock.now) == "open"
    clock.now += 30
    pool.set_health(b0, HEALTHY)
    pool.record_success(b0, 0.1)
    assert pool_lines(caplog) == [
        (
            "WARNING",
            "backend http://b0 unhealthy: request failed: cannot reach backend: connection refused",
        ),
        ("INFO", "backend http://b0 healthy again after 30s down"),
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_healthy_probes_log_nothing(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="editjudge")
    async with (
        fake_engines(2) as engines,
        router([u for _, u in engines], health_interval_s=0.02, http_client=transport) as c,
    ):
        await asyncio.sleep(0.5)  # some 20 rounds of probes
        assert (await c.get("/ready")).status_code == 200
    assert sorted(pool_lines(caplog)) == sorted(
        ("INFO", f"backend {u} healthy") for _, u in engines
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_router_process_logs_no_probe_lines(procs: Procs, transport: str) -> None:
    """``editjudge router`` as deployed, probing twenty times a second: its output names the
    backend once, and no probe (httpx would log each request at INFO)."""
    engine = procs.engine()
    env = {"EDITJUDGE_HTTP_CLIENT": transport, "EDITJUDGE_HEALTH_INTERVAL_S": "0.05"}
    router_proc = procs.router([engine.url], env=env)
    time.sleep(1.0)  # some 20 rounds
    httpx.get(f"{router_proc.url}/ready", timeout=5).raise_for_status()
    out = router_proc.log()
    assert out.count(f"backend {engine.url} healthy") == 1, out
    assert "/health" not in out, out
