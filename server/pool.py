"""What backends exist and which are fit for traffic: the pool, its health, circuit breakers.

A backend takes traffic when its last active health check passed and its circuit is closed (or
half-open with no probe outstanding). Active checks poll ``GET /health``
(:mod:`editjudge.server.health`); passive signals come from real traffic: a refused connection
marks the backend down at once, and ``failure_threshold`` consecutive failures of other kinds open
the circuit for ``circuit_open_s``, after which a single request is let through as a probe. While
no backend at all is fit, work waits at most ``no_backend_wait_s`` for one to return, then fails
with ``no_healthy_backend`` instead of holding the caller until its deadline. Choosing among
eligible backends is delegated to :mod:`editjudge.server.policy`.

Each backend takes at most its *window* of requests; work beyond every window waits here, in a
:class:`~editjudge.server.fairqueue.FairQueue` (round-robin across requests, in order within one).
With ``adaptive`` on, :meth:`BackendPool.record_load` steers each window by the engine's own
queue (:mod:`editjudge.server.window`); otherwise every window is ``max_in_flight``.

Logs say when a backend changes state, once, with the reason: unhealthy (the health check's HTTP
status, timeout or connection error, or a request that could not reach it), healthy (again),
circuit open (after how many failures, and the last one) and circuit closed. A probe that changes
nothing logs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

from . import policy
from .engine import HealthCheck
from .errors import BackendError, BackendUnavailable, DeadlineExceeded, NoHealthyBackend
from .fairqueue import CURRENT_FLOW, FairQueue
from .window import EngineLoad, WindowLimits, next_window

log = logging.getLogger("editjudge.pool")

Clock = Callable[[], float]


@dataclass
class Backend:
    """Live state of one vLLM server."""

    url: str
    healthy: bool = False
    in_flight: int = 0
    served: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    open_until: float = 0.0  # circuit open until this monotonic time; 0 = closed
    probing: bool = False  # a half-open probe is in flight
    latency_ewma_s: float | None = None
    window: int = 64  # requests it may hold
    running: int | None = None  # what the engine last said it runs (None: it does not say)
    checked: bool = False  # an active health check has had its say (the first one always logs)
    down_since: float | None = None  # when it was last marked unhealthy; None while healthy
    circuit_logged: bool = False  # its circuit's opening was logged, so its closing will be

    def circuit(self, now: float) -> str:
        if self.open_until == 0.0:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def eligible(self, now: float) -> bool:
        state = self.circuit(now)
        return self.healthy and (state == "closed" or (state == "half_open" and not self.probing))


@dataclass(frozen=True)
class PoolConfig:
    max_in_flight: int = 64
    failure_threshold: int = 3
    circuit_open_s: float = 5.0
    policy: str = "least_outstanding"
    affinity_epsilon: float = 0.25
    no_backend_wait_s: float = 10.0
    adaptive: bool = False  # steer windows by the engines' queues (else fixed at max_in_flight)
    min_in_flight: int = 4
    start_in_flight: int = 32

    @property
    def limits(self) -> WindowLimits:
        """The adaptive window's bounds (a fixed window is ``max_in_flight``)."""
        low = min(self.min_in_flight, self.max_in_flight)
        start = min(max(self.start_in_flight, low), self.max_in_flight)
        return WindowLimits(minimum=low, start=start, maximum=self.max_in_flight)


class BackendPool:
    """The set of backends, their health, and fair admission of work onto them."""

    def __init__(self, urls: Iterable[str], config: PoolConfig, clock: Clock = time.monotonic):
        self.config = config
        self._clock = clock
        self._limits = config.limits
        self._backends: dict[str, Backend] = {u: self._new(u) for u in urls}
        self._waiters = FairQueue()
        self._rr = 0

    def _new(self, url: str) -> Backend:
        window = self._limits.start if self.config.adaptive else self.config.max_in_flight
        return Backend(url, window=window)

    @property
    def queued(self) -> int:
        """Leases waiting for a window to open (the router's own queue)."""
        return len(self._waiters)

    @property
    def backends(self) -> list[Backend]:
        return list(self._backends.values())

    def get(self, url: str) -> Backend | None:
        return self._backends.get(url)

    def healthy_count(self) -> int:
        now = self._clock()
        return sum(1 for b in self._backends.values() if b.healthy and b.circuit(now) != "open")

    def set_urls(self, urls: Sequence[str]) -> None:
        """Replace the backend set (discovery); known backends keep their state."""
        wanted = list(dict.fromkeys(urls))
        self._backends = {u: self._backends.get(u) or self._new(u) for u in wanted}
        self._wake()

    @contextlib.asynccontextmanager
    async def lease(
        self,
        *,
        weight: int = 1,
        key: str | None = None,
        avoid: frozenset[str] = frozenset(),
        deadline: float,
        flow: Hashable = None,
    ) -> AsyncIterator[Backend]:
        """Wait for a backend with room, hold ``weight`` request slots on it, release on exit.

        ``flow`` names the request the lease serves (default: the context's, see
        :func:`editjudge.server.fairqueue.flow`): waiting leases of different flows are served
        round-robin, those of one flow in order.
        """
        flow = CURRENT_FLOW.get() if flow is None else flow
        backend = await self._acquire(weight, key, avoid, deadline, flow)
        try:
            yield backend
        finally:
            backend.in_flight -= weight
            backend.probing = False
            self._wake(weight)

    async def _acquire(
        self, weight: int, key: str | None, avoid: frozenset[str], deadline: float, flow: Hashable
    ) -> Backend:
        woken = False
        down_since: float | None = None
        while True:
            backend = self._pick(weight, key, avoid)
            if backend is not None:
                backend.in_flight += weight
                if backend.circuit(self._clock()) == "half_open":
                    backend.probing = True
                return backend
            now = self._clock()
            remaining = deadline - now
            if remaining <= 0:
                if self.healthy_count() == 0:
                    raise NoHealthyBackend("no healthy backend became available in time")
                raise DeadlineExceeded("no backend had room before the request deadline")
            if self.healthy_count() == 0:
                down_since = now if down_since is None else down_since
                give_up = down_since + self.config.no_backend_wait_s - now
                if give_up <= 0:
                    raise NoHealthyBackend(
                        f"no healthy backend for {self.config.no_backend_wait_s:g}s",
                        retry_after_s=self.config.circuit_open_s,
                    )
                remaining = min(remaining, give_up)
            else:
                down_since = None
            # The periodic re-check is a safety net; releases and health changes wake us.
            woken = await self._waiters.wait(flow, min(remaining, 1.0), front=woken)

    def _wake(self, count: int | None = None) -> None:
        """Wake the next ``count`` waiters (all when None); each re-checks for room."""
        self._waiters.wake(count)

    def _pick(self, weight: int, key: str | None, avoid: frozenset[str]) -> Backend | None:
        now = self._clock()
        eligible = [b for b in self._backends.values() if b.eligible(now)]
        preferred = [b for b in eligible if b.url not in avoid] or eligible
        # An idle backend always admits one item, even one heavier than its window.
        roomy = [b for b in preferred if b.in_flight == 0 or b.in_flight + weight <= b.window]
        if not roomy:
            return None
        loads = [policy.BackendLoad(b.url, b.in_flight, b.served) for b in roomy]
        if self.config.policy == "round_robin":
            self._rr += 1
            return roomy[policy.round_robin(loads, self._rr)]
        if self.config.policy == "affinity":
            return roomy[policy.affinity(loads, key, self.config.affinity_epsilon, weight)]
        return roomy[policy.least_outstanding(loads)]

    def record_success(self, backend: Backend, latency_s: float) -> None:
        backend.served += 1
        backend.consecutive_failures = 0
        if backend.open_until and backend.circuit_logged:
            log.info("backend %s circuit closed: a request succeeded again", backend.url)
        backend.open_until, backend.circuit_logged = 0.0, False
        prev = backend.latency_ewma_s
        backend.latency_ewma_s = latency_s if prev is None else 0.8 * prev + 0.2 * latency_s

    def record_failure(self, backend: Backend, error: Exception) -> None:
        """Passive health: count the failure, maybe mark the backend down or open its circuit.

        A non-retryable error (the engine's 4xx about this one request, e.g. an image it could
        not decode) is counted but is no mark against the backend: it answered, so it is up.
        """
        backend.failures += 1
        if isinstance(error, BackendError) and not error.retryable:
            return
        backend.consecutive_failures += 1
        if isinstance(error, BackendUnavailable) and backend.healthy:
            self._mark_down(backend, f"request failed: {error}")
        self._maybe_open_circuit(backend, error)
        self._wake()

    def record_load(self, backend: Backend, running: int | None) -> None:
        """What the engine says it runs now; with ``adaptive`` on, steer its window by it."""
        backend.running = running
        if not self.config.adaptive or running is None:
            return
        load = EngineLoad(backend.in_flight, running, demand=self.queued > 0)
        window = next_window(backend.window, load, self._limits)
        if window != backend.window:
            log.debug("backend %s: window %d -> %d (%s)", backend.url, backend.window, window, load)
            grew = window - backend.window
            backend.window = window
            if grew > 0:
                self._wake(grew)

    def _maybe_open_circuit(self, backend: Backend, error: Exception) -> None:
        now = self._clock()
        state = backend.circuit(now)
        if state != "half_open" and backend.consecutive_failures < self.config.failure_threshold:
            return
        backend.open_until = now + self.config.circuit_open_s
        # A backend already marked down has had its line; requests that were on their way to it
        # when it went fail too and open its circuit, which says nothing new.
        if state == "closed" and backend.healthy:
            backend.circuit_logged = True
            log.warning(
                "backend %s circuit open for %gs: %d consecutive failures, the last: %s",
                backend.url,
                self.config.circuit_open_s,
                backend.consecutive_failures,
                error,
            )
        elif state == "half_open":  # a broken engine would say this every circuit_open_s
            log.debug("backend %s circuit open again: its probe failed: %s", backend.url, error)

    def set_health(self, backend: Backend, check: HealthCheck) -> None:
        """Apply an active health check: log and wake waiters only when the state changes."""
        first, backend.checked = not backend.checked, True
        if check.ok == backend.healthy and not first:
            return
        if check.ok:
            self._mark_up(backend)
        else:
            self._mark_down(backend, f"GET /health: {check.failure}")
        self._wake()

    def _mark_down(self, backend: Backend, why: str) -> None:
        log.warning("backend %s unhealthy: %s", backend.url, why)
        backend.healthy = False
        backend.down_since = self._clock()

    def _mark_up(self, backend: Backend) -> None:
        if backend.down_since is None:
            log.info("backend %s healthy", backend.url)
        else:
            down_s = self._clock() - backend.down_since
            log.info("backend %s healthy again after %.0fs down", backend.url, down_s)
        backend.healthy = True
        backend.down_since = None
