"""Operations endpoints: liveness, readiness, backends, info (limits and capacity), metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from ..auth import Authorized, require_api_key
from ..deps import AppContext, Ctx
from ..responses import json_response, retry_after
from ..schemas import BackendInfo, Capacity, InfoResponse
from ..version import __version__

router = APIRouter()


@router.get("/health", summary="Liveness: the router process is up.")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: 200 if at least one backend is healthy, else 503.")
async def ready(ctx: Ctx) -> Response:
    healthy = ctx.pool.healthy_count()
    body = {"ready": healthy > 0, "healthy_backends": healthy, "backends": len(ctx.pool.backends)}
    if healthy:
        return json_response(body)
    return json_response(body, 503, {"Retry-After": retry_after(ctx.settings.health_interval_s)})


@router.get("/backends", response_model=list[BackendInfo], summary="Backend health and load.")
async def backends(ctx: Ctx, _: Authorized) -> list[BackendInfo]:
    now = time.monotonic()
    return [
        BackendInfo(
            url=b.url,
            healthy=b.healthy and b.circuit(now) != "open",
            state=b.circuit(now),
            in_flight=b.in_flight,
            window=b.window,
            running=b.running,
            served=b.served,
            failures=b.failures,
            latency_ms_ewma=None if b.latency_ewma_s is None else round(b.latency_ewma_s * 1e3, 2),
        )
        for b in ctx.pool.backends
    ]


@router.get("/info", response_model=InfoResponse, summary="Model, protocols, limits, version.")
async def info(ctx: Ctx) -> InfoResponse:
    s = ctx.settings
    return InfoResponse(
        version=__version__,
        model=ctx.info.model,
        vllm_version=ctx.info.vllm_version,
        protocols=ctx.protocols.names(),
        default_protocol=ctx.protocols.default,
        routing_policy=s.routing_policy,
        limits={
            "max_body_bytes": s.max_body_bytes,
            "max_image_bytes": s.max_image_bytes,
            "max_image_pixels": s.max_image_pixels,
            "max_batch_items": s.max_batch_items,
            "resize_max_pixels": s.resize_max_pixels,
            "resize_grid": s.resize_grid,
            "request_deadline_s": s.request_deadline_s,
        },
        capacity=capacity(ctx),
        auth=s.auth_enabled,
    )


def capacity(ctx: AppContext) -> Capacity:
    """The load that keeps every healthy engine busy.

    Clients are asked for as many items as every engine's window may grow to (its ceiling,
    ``MAX_IN_FLIGHT_PER_BACKEND`` requests), within half the router's item budget: the window can
    only grow while work waits for it, and what exceeds the windows waits in the router, fairly.
    Sized from today's windows instead, a client starved a fresh engine: on 4xH200 with a dummy
    Qwen3-VL-30B-A3B, one engine given 64 items ran 103 requests at 3.9 items/s, and four given
    512 ran 26 items/s where 1024 ran 43 (BENCHMARKS.md).
    """
    healthy = [b for b in ctx.pool.backends if b.healthy]
    window = sum(b.window for b in healthy)
    ceiling = max(1, len(healthy)) * ctx.settings.max_in_flight_per_backend
    suggested = min(ceiling, max(1, ctx.settings.max_queued_items // 2))
    return Capacity(
        healthy_backends=len(healthy),
        backends=len(ctx.pool.backends),
        in_flight_window=window,
        queued=ctx.pool.queued,
        suggested_items_in_flight=suggested,
    )


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(request: Request, ctx: Ctx) -> Response:
    if ctx.settings.protect_metrics:
        await require_api_key(request, ctx)
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")
