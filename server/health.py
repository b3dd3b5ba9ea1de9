"""Active health checks: every backend's ``GET /health``, all at once, every interval.

The pool decides what a check means (:meth:`~editjudge.server.pool.BackendPool.set_health`: state
changes are logged once, with the reason); this module only runs the checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .engine import EngineClient
from .pool import Backend, BackendPool

log = logging.getLogger("editjudge.pool")

HEALTH_TIMEOUT_S = 5.0


async def health_loop(
    pool: BackendPool,
    client: EngineClient,
    interval_s: float,
    on_healthy: Callable[[Backend], object] | None = None,
) -> None:
    """Poll every backend's ``/health`` forever; call ``on_healthy`` when one becomes healthy.

    The check's timeout does not shrink with the interval: a router busy enough to lag its own
    event loop by a fraction of a second must not mistake that for its backends being down (a dead
    engine still shows at once, as a refused connection). A round that fails unexpectedly is logged
    and the loop goes on, since a dead loop would never bring a backend back.
    """
    while True:
        try:
            await check_all(pool, client, timeout=HEALTH_TIMEOUT_S, on_healthy=on_healthy)
        except Exception:
            log.exception("health check round failed; next round in %gs", interval_s)
        await asyncio.sleep(interval_s)


async def check_all(
    pool: BackendPool,
    client: EngineClient,
    timeout: float,
    on_healthy: Callable[[Backend], object] | None = None,
) -> None:
    """One round of active health checks, all backends concurrently."""
    backends = pool.backends
    checks = await asyncio.gather(
        *(client.get_health(f"{b.url}/health", timeout) for b in backends)
    )
    for backend, check in zip(backends, checks, strict=True):
        was = backend.healthy
        pool.set_health(backend, check)
        if check.ok and not was and on_healthy is not None:
            outcome = on_healthy(backend)
            if asyncio.iscoroutine(outcome):
                await outcome
