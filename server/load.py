"""How busy each engine is: vLLM's own count of running requests, polled from ``/metrics``.

The pool steers each engine's window by it (:mod:`editjudge.server.window`). An engine that
exports no such gauge (another server, or metrics off) keeps a fixed window; a failed poll leaves
the window as it is: health is the health loop's business, not this one's.
"""

from __future__ import annotations

import asyncio
import logging

from .engine import EngineClient
from .errors import BackendError
from .pool import Backend, BackendPool

log = logging.getLogger("editjudge.load")

RUNNING = b"vllm:num_requests_running"
LOAD_TIMEOUT_S = 2.0


def running_requests(metrics: bytes) -> int | None:
    """The sum of ``vllm:num_requests_running`` samples in a Prometheus text page (one per
    engine core of a data-parallel server), or None when the page has none."""
    total, found = 0.0, False
    start = metrics.find(RUNNING)
    while start >= 0:
        end = metrics.find(b"\n", start)
        line = metrics[start : end if end >= 0 else len(metrics)]
        name, _, value = line.rpartition(b" ")
        # Skip the HELP/TYPE comments' mentions and longer names that merely start alike.
        if name[len(RUNNING) : len(RUNNING) + 1] in (b"{", b"") and name.startswith(RUNNING):
            try:
                total += float(value)
                found = True
            except ValueError:
                pass
        start = metrics.find(RUNNING, start + len(RUNNING))
    return round(total) if found else None


async def sample(pool: BackendPool, client: EngineClient, backend: Backend) -> None:
    """Read one engine's running count and hand it to the pool."""
    try:
        page = await client.get_bytes(f"{backend.url}/metrics", LOAD_TIMEOUT_S)
    except BackendError:
        return
    pool.record_load(backend, running_requests(page))


async def load_loop(pool: BackendPool, client: EngineClient, interval_s: float) -> None:
    """Sample every healthy engine every ``interval_s`` seconds, forever.

    An unexpected failure is logged once (then at debug level, until sampling works again): a
    client that cannot read metrics must not fill the log twice a second.
    """
    failing = False
    while True:
        try:
            healthy = [b for b in pool.backends if b.healthy]
            await asyncio.gather(*(sample(pool, client, b) for b in healthy))
            failing = False
        except Exception:
            level = logging.DEBUG if failing else logging.ERROR
            log.log(level, "engine load sampling failed; windows stay as they are", exc_info=True)
            failing = True
        await asyncio.sleep(interval_s)
