"""The router follows discovery: new engines get traffic, departed ones get none, no restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from editjudge.server.discovery import Resolver
from tests.dns_stub import dns_stub
from tests.helpers import fake_engines, item, router

# httpx.ASGITransport ignores the client's timeout, so a request or a lifespan shutdown that never
# finishes would hold the test until pytest-timeout ends it (600 s). Every test here takes about
# a second; this bound makes a hang fail in seconds instead.
DEADLINE_S = 20.0


class MutableResolver:
    """Answers with the current ``endpoints``; raises ``error`` instead when it is set."""

    def __init__(self) -> None:
        self.endpoints: Any = []
        self.error: Exception | None = None

    async def __call__(self, name: str, port: int) -> Sequence[tuple[str, int]]:
        if self.error is not None:
            raise self.error
        return self.endpoints  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def dns_router(
    name: str, resolver: Resolver | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        discovery="dns",
        discovery_dns_name=name,
        discovery_interval_s=0.05,
        health_interval_s=0.2,
        **overrides,
    )
    app = create_app(settings, resolver=resolver)
    # The deadline covers the lifespan's shutdown too: that is where a hang has shown.
    async with asyncio.timeout(DEADLINE_S), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r", timeout=30) as c:
            yield c


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


async def wait_for(
    client: httpx.AsyncClient, check: Callable[[list[dict[str, Any]]], bool]
) -> None:
    """Poll ``/backends`` until ``check`` holds (discovery runs every 50 ms)."""
    for _ in range(100):
        backends = (await client.get("/backends")).json()
        if check(backends):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/backends never matched: {backends}")


def healthy(*urls: str) -> Callable[[list[dict[str, Any]]], bool]:
    want = set(urls)
    return lambda bs: {b["url"] for b in bs} == want and all(b["healthy"] for b in bs)


async def score_batch(client: httpx.AsyncClient, n: int = 12) -> set[str]:
    r = await client.post("/score", json={"items": [item(i) for i in range(n)]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert all(x["status"] == "ok" for x in results), results
    return {x["backend"] for x in results}


async def test_engines_come_and_go_without_a_restart() -> None:
    resolver = MutableResolver()
    async with fake_engines(3, latency_s=0.01) as engines:
        (a, url_a), (b, url_b), (_c, url_c) = engines
        resolver.endpoints = [host_port(url_a)]
        async with dns_router("engines.test", resolver) as client:
            assert (await client.get("/ready")).status_code == 200
            assert await score_batch(client) == {url_a}

            resolver.endpoints = [host_port(url_a), host_port(url_b), host_port(url_c)]
            await wait_for(client, healthy(url_a, url_b, url_c))
            assert await score_batch(client, 24) == {url_a, url_b, url_c}

            resolver.endpoints = [host_port(url_c)]
            await wait_for(client, healthy(url_c))
            served_a, served_b = a.served, b.served
            assert await score_batch(client) == {url_c}
            assert (a.served, b.served) == (served_a, served_b)

            # DNS trouble and garbage keep the engines we know about.
            for bad in (OSError("SERVFAIL"), None, [("", -1)]):
                resolver.error = bad if isinstance(bad, Exception) else None
                if not isinstance(bad, Exception):
                    resolver.endpoints = bad
                await asyncio.sleep(0.2)
                assert await score_batch(client, 4) == {url_c}
            resolver.error = None

            resolver.endpoints = []  # every engine gone
            await wait_for(client, lambda bs: bs == [])
            ready = await client.get("/ready")
            assert ready.status_code == 503
            r = await client.post("/score", json=item(0))
            assert r.status_code == 503 and r.json()["error"]["code"] == "no_healthy_backend"

            resolver.endpoints = [host_port(url_b)]  # and one comes back
            await wait_for(client, healthy(url_b))
            assert await score_batch(client, 4) == {url_b}


async def test_srv_discovery_through_a_dns_server() -> None:
    """Real SRV lookups (dnspython) against a DNS stub; targets are host names."""
    from editjudge.server.discovery import SrvResolver

    name = "_http._tcp.engines.test"
    async with dns_stub() as (stub, dns_port), fake_engines(2) as engines:
        ports = [host_port(u)[1] for _, u in engines]
        stub.srv[name] = [("localhost", ports[0])]
        resolver = SrvResolver(["127.0.0.1"], port=dns_port, timeout_s=1.0)
        async with dns_router(name, resolver) as client:
            first = f"http://localhost:{ports[0]}"
            await wait_for(client, healthy(first))
            assert await score_batch(client, 4) == {first}
            stub.srv[name] = [("localhost", p) for p in ports]
            both = [f"http://localhost:{p}" for p in ports]
            await wait_for(client, healthy(*both))
            assert await score_batch(client, 16) == set(both)
            metrics = (await client.get("/metrics")).text
            assert 'editjudge_discovery_refreshes_total{outcome="ok"}' in metrics


async def test_static_backends_on_different_hosts() -> None:
    """The static list still works, and names need not be loopback IPs (hosts)."""
    async with fake_engines(2) as engines:
        ports = [host_port(u)[1] for _, u in engines]
        urls = [f"http://localhost:{ports[0]}", f"http://127.0.0.1:{ports[1]}"]
        async with router(urls) as client:
            assert await score_batch(client, 16) == set(urls)
