"""Discovery: DNS answers become the pool's backend set; bad answers never break it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from editjudge.server.config import Settings
from editjudge.server.discovery import (
    Change,
    Discovery,
    SrvResolver,
    endpoint_url,
    from_settings,
    resolve_addresses,
)
from editjudge.server.metrics import Metrics
from editjudge.server.pool import BackendPool, PoolConfig
from tests.dns_stub import dns_stub


class FakeResolver:
    """Answers with whatever ``answer`` holds; an exception instance is raised instead."""

    def __init__(self, answer: Any = ()) -> None:
        self.answer: Any = answer
        self.calls = 0

    async def __call__(self, name: str, port: int) -> Sequence[tuple[str, int]]:
        self.calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "hang":
            await asyncio.Event().wait()
        return self.answer  # type: ignore[no-any-return]


def make(
    resolver: FakeResolver, static: Sequence[str] = (), **kw: Any
) -> tuple[Discovery, BackendPool, Metrics]:
    pool = BackendPool([], PoolConfig())
    metrics = Metrics(pool)
    disc = Discovery(
        pool, resolver, "engines", port=8000, interval_s=0.01, static=static, metrics=metrics, **kw
    )
    return disc, pool, metrics


def urls(pool: BackendPool) -> list[str]:
    return [b.url for b in pool.backends]


def refreshes(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "editjudge_discovery_refreshes_total", {"outcome": outcome}
    )
    assert value is not None
    return value


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("10.0.0.7", 8000, "http://10.0.0.7:8000"),
        ("fd00::1", 8001, "http://[fd00::1]:8001"),
        (
            "vllm-0.engines.ns.svc.cluster.local",
            80,
            "http://vllm-0.engines.ns.svc.cluster.local:80",
        ),
    ],
)
def test_endpoint_urls(host: str, port: int, url: str) -> None:
    assert endpoint_url("http", host, port) == url


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("", 80),
        ("a/b", 80),
        ("evil@host", 80),
        ("a:b", 80),
        (None, 80),
        ("h", 0),
        ("h", 70000),
        ("h", "80"),
        ("h", True),
    ],
)
def test_malformed_endpoints_are_refused(host: Any, port: Any) -> None:
    with pytest.raises(ValueError):
        endpoint_url("http", host, port)


async def test_engines_appear_and_disappear_and_known_ones_keep_state() -> None:
    resolver = FakeResolver([("10.0.0.1", 8000)])
    disc, pool, _ = make(resolver)
    assert await disc.refresh() == Change(added=["http://10.0.0.1:8000"])
    first = pool.backends[0]
    first.served, first.healthy = 7, True

    resolver.answer = [("10.0.0.2", 8000), ("10.0.0.1", 8000)]
    change = await disc.refresh()
    assert change == Change(added=["http://10.0.0.2:8000"])
    assert urls(pool) == ["http://10.0.0.1:8000", "http://10.0.0.2:8000"]
    assert pool.get("http://10.0.0.1:8000") is first and first.served == 7

    resolver.answer = [("10.0.0.2", 8000)]
    assert await disc.refresh() == Change(removed=["http://10.0.0.1:8000"])
    assert urls(pool) == ["http://10.0.0.2:8000"]
    assert not await disc.refresh()  # same answer: nothing changes


async def test_static_backends_stay_alongside_discovered_ones() -> None:
    resolver = FakeResolver([("10.0.0.1", 8000)])
    disc, pool, _ = make(resolver, static=["http://gpu-box-a:8001"])
    await disc.refresh()
    assert urls(pool) == ["http://gpu-box-a:8001", "http://10.0.0.1:8000"]
    resolver.answer = []
    await disc.refresh()
    assert urls(pool) == ["http://gpu-box-a:8001"]


@pytest.mark.parametrize(
    "bad",
    [
        OSError("temporary failure in name resolution"),
        RuntimeError("resolver bug"),
        None,
        42,
        "10.0.0.9",
        [("10.0.0.9", "http")],
        [("10.0.0.9",)],
        "hang",
    ],
)
async def test_bad_answers_keep_the_last_set(bad: Any) -> None:
    resolver = FakeResolver([("10.0.0.1", 8000)])
    disc, pool, metrics = make(resolver)
    disc.timeout_s = 0.05
    await disc.refresh()
    resolver.answer = bad
    assert await disc.refresh() is None
    assert urls(pool) == ["http://10.0.0.1:8000"]
    assert refreshes(metrics, "error") == 1 and refreshes(metrics, "ok") == 1


async def test_malformed_records_are_skipped_when_others_are_good() -> None:
    resolver = FakeResolver([("10.0.0.1", 8000), ("10.0.0.2", -1), "junk", ("", 8000)])
    disc, pool, _ = make(resolver)
    await disc.refresh()
    assert urls(pool) == ["http://10.0.0.1:8000"]


async def test_no_records_empties_the_pool() -> None:
    resolver = FakeResolver([("10.0.0.1", 8000)])
    disc, pool, _ = make(resolver)
    await disc.refresh()
    resolver.answer = []
    assert await disc.refresh() == Change(removed=["http://10.0.0.1:8000"])
    assert pool.backends == []


async def test_loop_survives_failures_and_failing_hooks() -> None:
    seen: list[Change] = []

    async def on_change(change: Change) -> None:
        seen.append(change)
        raise RuntimeError("hook failed")

    resolver = FakeResolver(OSError("dns down"))
    disc, pool, metrics = make(resolver, on_change=on_change)
    task = asyncio.create_task(disc.run())
    try:
        while resolver.calls < 3:
            await asyncio.sleep(0.01)
        resolver.answer = [("10.0.0.1", 8000)]
        while not pool.backends:
            await asyncio.sleep(0.01)
        resolver.answer = [("10.0.0.2", 8000)]
        while urls(pool) != ["http://10.0.0.2:8000"]:
            await asyncio.sleep(0.01)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert refreshes(metrics, "error") >= 3
    assert seen[:2] == [
        Change(added=["http://10.0.0.1:8000"]),
        Change(added=["http://10.0.0.2:8000"], removed=["http://10.0.0.1:8000"]),
    ]


class LateResolver:
    """Starts a lookup (``asked`` is set) and answers ``ENGINE`` when ``answer`` is resolved.

    With ``swallow``, a cancellation of the lookup is ignored and the answer given anyway, as
    dnspython does on Python 3.11 when the cancellation comes with the DNS reply (it waits in
    ``asyncio.wait_for``, which loses the cancellation then: CPython gh-86296).
    """

    ENGINE = ("10.0.0.1", 8000)

    def __init__(self, swallow: bool = False) -> None:
        self.swallow = swallow
        self.asked = asyncio.Event()
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __call__(self, name: str, port: int) -> Sequence[tuple[str, int]]:
        self.asked.set()
        try:
            await self.answer
        except asyncio.CancelledError:
            if not self.swallow:
                raise
        return [self.ENGINE]


async def ends_cancelled(task: asyncio.Task[None]) -> bool:
    """Whether ``task``, whose cancellation was requested, ends cancelled (within a second)."""
    done, _ = await asyncio.wait({task}, timeout=1.0)
    if not done:  # it ran on: a second cancellation reaches it in its sleep
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return task in done and task.cancelled()


async def test_loop_stops_when_cancelled_as_the_answer_arrives() -> None:
    # The answer and the router's shutdown land in one turn of the event loop. The loop must still
    # stop: the lifespan waits for it, so a loop that runs on holds the router's shutdown for ever.
    resolver = LateResolver()
    disc, _, _ = make(resolver)
    task = asyncio.create_task(disc.run())
    await resolver.asked.wait()
    resolver.answer.set_result(None)
    task.cancel()
    assert await ends_cancelled(task)


async def test_loop_stops_when_the_resolver_swallows_its_cancellation() -> None:
    resolver = LateResolver(swallow=True)
    disc, pool, _ = make(resolver)
    task = asyncio.create_task(disc.run())
    await resolver.asked.wait()
    task.cancel()
    assert await ends_cancelled(task)
    assert pool.backends == []  # a cancelled round changes nothing


def test_settings_pick_the_resolver() -> None:
    pool = BackendPool([], PoolConfig())
    assert from_settings(Settings(backends=["http://a:1"]), pool) is None
    a = from_settings(Settings(discovery="dns", discovery_dns_name="engines"), pool)
    assert a is not None and a.resolver is resolve_addresses and a.port == 8000
    srv = from_settings(Settings(discovery="dns", discovery_dns_name="_http._tcp.engines"), pool)
    assert srv is not None and isinstance(srv.resolver, SrvResolver)


async def test_system_resolver_finds_localhost() -> None:
    assert ("127.0.0.1", 9001) in await resolve_addresses("localhost", 9001)


async def test_srv_lookups_against_a_dns_server() -> None:
    async with dns_stub() as (stub, port):
        resolver = SrvResolver(["127.0.0.1"], port=port, timeout_s=2.0)
        name = "_http._tcp.engines.test"
        stub.srv[name] = [
            ("vllm-1.engines.test", 8000),
            ("vllm-0.engines.test", 8001),
            (".", 8002),  # "not available" record: no engine
        ]
        assert await resolver(name, 1) == [
            ("vllm-0.engines.test", 8001),
            ("vllm-1.engines.test", 8000),
        ]
        stub.srv[name] = []  # the name exists, no engine is ready
        assert await resolver(name, 1) == []
        assert await resolver("_http._tcp.nothing.test", 1) == []  # NXDOMAIN
        stub.fail = True
        with pytest.raises(Exception, match=r"SERVFAIL|answered"):
            await resolver(name, 1)
