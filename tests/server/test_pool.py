from __future__ import annotations

import asyncio
import time

import pytest

from editjudge.server.engine import HEALTHY, HealthCheck
from editjudge.server.errors import (
    BackendHTTPError,
    BackendTimeout,
    BackendUnavailable,
    DeadlineExceeded,
    NoHealthyBackend,
)
from editjudge.server.health import health_loop
from editjudge.server.pool import BackendPool, PoolConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(n: int = 2, clock: Clock | None = None, **cfg: object) -> BackendPool:
    p = BackendPool([f"http://b{i}" for i in range(n)], PoolConfig(**cfg), clock or time.monotonic)  # type: ignore[arg-type]
    for b in p.backends:
        b.healthy = True
    return p


async def test_least_outstanding_spreads_leases() -> None:
    p = pool(2)
    deadline = time.monotonic() + 5
    async with p.lease(deadline=deadline) as a, p.lease(deadline=deadline) as b:
        assert a.url != b.url
        assert a.in_flight == b.in_flight == 1
    assert all(b.in_flight == 0 for b in p.backends)


async def test_in_flight_is_bounded_and_waiters_proceed_on_release() -> None:
    p = pool(1, max_in_flight=2)
    deadline = time.monotonic() + 5
    peak = 0
    running = 0

    async def work() -> None:
        nonlocal peak, running
        async with p.lease(deadline=deadline):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(work() for _ in range(10)))
    assert peak == 2


async def test_weight_counts_requests() -> None:
    p = pool(1, max_in_flight=4)
    async with p.lease(weight=2, deadline=time.monotonic() + 1) as b:
        assert b.in_flight == 2


async def test_no_healthy_backend_and_deadline() -> None:
    p = pool(1)
    p.backends[0].healthy = False
    with pytest.raises(NoHealthyBackend):
        async with p.lease(deadline=time.monotonic() + 0.05):
            pass
    p = pool(1, max_in_flight=1)
    async with p.lease(deadline=time.monotonic() + 1):
        with pytest.raises(DeadlineExceeded):
            async with p.lease(deadline=time.monotonic() + 0.05):
                pass


async def test_avoid_prefers_other_backends() -> None:
    p = pool(2)
    for _ in range(5):
        async with p.lease(avoid=frozenset({"http://b0"}), deadline=time.monotonic() + 1) as b:
            assert b.url == "http://b1"


def test_refused_connection_marks_backend_down_at_once() -> None:
    p = pool(2)
    b0 = p.backends[0]
    p.record_failure(b0, BackendUnavailable("refused", b0.url))
    assert not b0.healthy and p.healthy_count() == 1


async def test_circuit_opens_then_half_open_probe_then_closes() -> None:
    clock = Clock()
    p = pool(2, clock=clock, failure_threshold=2, circuit_open_s=5.0)
    b0 = p.backends[0]
    for _ in range(2):
        p.record_failure(b0, BackendTimeout("slow", b0.url))
    assert b0.circuit(clock.now) == "open" and not b0.eligible(clock.now)
    assert p.healthy_count() == 1
    clock.now += 5.1
    assert b0.circuit(clock.now) == "half_open" and b0.eligible(clock.now)
    p.backends[1].in_flight = 10  # make b0 the choice
    async with p.lease(deadline=clock.now + 1) as b:
        assert b is b0 and b0.probing
        assert not b0.eligible(clock.now)  # only one probe at a time
        p.record_success(b0, 0.1)
    assert b0.circuit(clock.now) == "closed" and not b0.probing


def test_failed_probe_reopens_the_circuit() -> None:
    clock = Clock()
    p = pool(1, clock=clock, failure_threshold=1, circuit_open_s=5.0)
    b0 = p.backends[0]
    p.record_failure(b0, BackendTimeout("slow", b0.url))
    clock.now += 6
    assert b0.circuit(clock.now) == "half_open"
    p.record_failure(b0, BackendTimeout("slow", b0.url))
    assert b0.circuit(clock.now) == "open"


def test_set_urls_keeps_known_state() -> None:
    p = pool(2)
    p.backends[0].served = 5
    p.set_urls(["http://b0", "http://b9"])
    assert [b.url for b in p.backends] == ["http://b0", "http://b9"]
    assert p.backends[0].served == 5 and not p.backends[1].healthy


async def test_without_any_healthy_backend_work_fails_fast_not_at_the_deadline() -> None:
    p = pool(2, no_backend_wait_s=0.1)
    for b in p.backends:
        b.healthy = False
    t0 = time.monotonic()
    with pytest.raises(NoHealthyBackend) as err:
        async with p.lease(deadline=t0 + 60):
            pass
    assert time.monotonic() - t0 < 1.0
    assert err.value.retry_after_s is not None


async def test_waiting_work_proceeds_when_a_backend_returns_within_the_wait() -> None:
    p = pool(1, no_backend_wait_s=5.0)
    p.backends[0].healthy = False

    async def comes_back() -> None:
        await asyncio.sleep(0.05)
        p.set_health(p.backends[0], HEALTHY)

    task = asyncio.create_task(comes_back())
    async with p.lease(deadline=time.monotonic() + 60) as b:
        assert b is p.backends[0]
    await task


async def test_health_loop_survives_a_failing_round_and_brings_a_backend_back() -> None:
    p = pool(1)
    p.backends[0].healthy = False  # e.g. marked down by a refused connection
    calls = 0

    class FlakyClient:
        async def get_health(self, url: str, timeout: float) -> HealthCheck:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("unexpected")
            return HEALTHY

    task = asyncio.create_task(health_loop(p, FlakyClient(), 0.01))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            if p.backends[0].healthy:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert p.backends[0].healthy and calls >= 2


def test_an_engines_4xx_about_one_request_is_no_mark_against_it() -> None:
    clock = Clock()
    p = pool(1, clock=clock, failure_threshold=2)
    b0 = p.backends[0]
    for _ in range(5):  # e.g. images the engine could not decode
        p.record_failure(b0, BackendHTTPError("bad request", b0.url, 400, "invalid image"))
    assert b0.circuit(clock.now) == "closed" and b0.eligible(clock.now)
    assert b0.failures == 5 and b0.consecutive_failures == 0
    for _ in range(2):  # 5xx still open the circuit
        p.record_failure(b0, BackendHTTPError("oops", b0.url, 503, ""))
    assert b0.circuit(clock.now) == "open"


async def test_a_waiter_cancelled_as_it_is_woken_stops_and_hands_the_wake_up_on() -> None:
    # The release that wakes A and A's cancellation land in the same loop turn (a client that
    # left, a deadline): A must stop rather than take the slot (asyncio.wait_for on Python 3.11
    # returned the wake-up and lost the cancellation), and the slot must reach B at once, not
    # at the pool's 1 s re-check.
    p = pool(1, max_in_flight=1)
    deadline = time.monotonic() + 5
    holder = p.lease(deadline=deadline)
    await holder.__aenter__()

    async def wait_for_a_lease(flow: str) -> str:
        async with p.lease(deadline=deadline, flow=flow) as backend:
            return backend.url

    a = asyncio.create_task(wait_for_a_lease("a"))
    await asyncio.sleep(0)
    b = asyncio.create_task(wait_for_a_lease("b"))
    while p.queued < 2:
        await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # wakes A, the first in line
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    assert await asyncio.wait_for(b, timeout=0.5) == "http://b0"
    assert p.backends[0].in_flight == 0
