"""``create_app``: the FastAPI application and the lifespan that owns every long-lived object."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .admission import Budget
from .auth import key_digests
from .cache import make_cache
from .catalog import build_protocols, build_registry
from .config import Settings
from .deps import AppContext
from .direct import DirectRoutes
from .discovery import Change, Discovery, Resolver, from_settings
from .docs import install_docs
from .engine import EngineClient, make_engine_client
from .handlers import editjudge_error, install_error_handlers
from .health import check_all, health_loop
from .images import ImageLimits
from .intake import ImageWorkers
from .load import load_loop
from .memory import (
    TRIM_AFTER_DROP,
    collect_young_less_often,
    freeze_startup_objects,
    restore_collector,
    thaw_startup_objects,
    trim_loop,
    tune_allocator,
)
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, RequestMetricsMiddleware
from .pool import Backend, BackendPool, PoolConfig
from .protocols import Sampling, ScoringProtocol
from .routes import DIRECT_ROUTES, ROUTERS, openapi_components, paths
from .schemas import name_protocols
from .scoring import EngineInfo, Scorer, ScoringConfig, discover
from .version import __version__

log = logging.getLogger("editjudge")

#: uvicorn options that every way of serving the app shares (``editjudge router``, ``serve``,
#: ``LocalRouter``). Idle connections are kept longer than clients keep theirs (httpx and the
#: SDK: 5 s, uvicorn's own default too; load balancers: 60 s): with equal timeouts a client can
#: send a request on a connection the router is closing at that moment, and see it reset.
SERVING_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "server_header": False,
    "timeout_keep_alive": 75,
}

# FastAPI's native OpenTelemetry (newer releases) asks on every request whether a provider is
# configured, environment look-ups included (~2% of the router's CPU at saturation). The router
# reports through its own Prometheus metrics and configures no OpenTelemetry: switched off where
# FastAPI has it.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def pool_config(settings: Settings) -> PoolConfig:
    """The backend pool's part of the settings."""
    return PoolConfig(
        max_in_flight=settings.max_in_flight_per_backend,
        adaptive=settings.in_flight_control == "adaptive",
        min_in_flight=settings.min_in_flight_per_backend,
        start_in_flight=settings.start_in_flight_per_backend,
        failure_threshold=settings.failure_threshold,
        circuit_open_s=settings.circuit_open_s,
        policy=settings.routing_policy,
        affinity_epsilon=settings.affinity_epsilon,
        no_backend_wait_s=settings.no_backend_wait_s,
    )


def image_limits(settings: Settings) -> ImageLimits:
    """What intake accepts of an image, and how it checks it."""
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        formats=frozenset(settings.image_formats),
        resize_max_pixels=settings.resize_max_pixels,
        resize_grid=settings.resize_grid,
        check=settings.image_check,
    )


def build_context(
    settings: Settings,
    client: EngineClient,
    protocols: Sequence[ScoringProtocol] | None = None,
) -> AppContext:
    """Wire the long-lived objects together (no I/O). ``protocols`` defaults to the built-ins."""
    pool = BackendPool(settings.backends, pool_config(settings))
    metrics = Metrics(pool)
    info = EngineInfo(model=settings.model)
    image_policy = (
        f"max_pixels={settings.resize_max_pixels},grid={settings.resize_grid}"
        if settings.resize_max_pixels
        else "passthrough"
    )
    config = ScoringConfig(
        sampling=Sampling(seed=settings.seed),
        request_timeout_s=settings.request_timeout_s,
        max_attempts=settings.max_attempts,
        image_policy=image_policy,
    )
    cache = make_cache(settings, on_hit=metrics.cache_hits.inc)
    return AppContext(
        settings=settings,
        pool=pool,
        client=client,
        scorer=Scorer(pool, client, config, metrics, info, cache=cache),
        protocols=build_registry(settings, protocols),
        limits=image_limits(settings),
        budget=Budget(
            settings.max_queued_items,
            settings.max_queued_image_bytes,
            max_upload_bytes=int(settings.max_queued_image_bytes * settings.upload_budget_share),
        ),
        metrics=metrics,
        info=info,
        api_key_digests=key_digests([k.get_secret_value().encode() for k in settings.api_keys]),
        image_workers=ImageWorkers(settings.image_threads),
    )


def create_app(
    settings: Settings | None = None,
    *,
    client: EngineClient | None = None,
    resolver: Resolver | None = None,
    protocols: Sequence[ScoringProtocol] | None = None,
) -> FastAPI:
    """Build the router app. ``client`` replaces the HTTP transport to the engines and
    ``resolver`` the DNS lookups of discovery (tests); ``protocols`` replaces the built-in
    scoring protocols (benchmarks, embedders with their own protocols)."""
    settings = settings or Settings()
    app = FastAPI(
        title="editjudge",
        version=__version__,
        lifespan=_lifespan(settings, client, resolver, protocols),
        description="Data-parallel VLM judge for image edits, in front of vLLM servers.",
        docs_url=None,  # install_docs serves /docs and /redoc without a CDN
        redoc_url=None,
        **_NO_TELEMETRY,
    )
    for router in ROUTERS:
        app.include_router(router)
    install_docs(app)
    _complete_openapi(app, settings, protocols)
    install_error_handlers(app)
    routes = paths()
    # Added first, so innermost of the app's middlewares: the ones below still wrap it.
    app.add_middleware(DirectRoutes, routes=DIRECT_ROUTES, on_error=editjudge_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    def count(route: str, status: int) -> None:
        ctx: AppContext | None = getattr(app.state, "ctx", None)
        if ctx is not None:
            ctx.metrics.requests.labels(route, str(status)).inc()

    app.add_middleware(RequestMetricsMiddleware, count=count, routes=routes)
    return app


def _lifespan(
    settings: Settings,
    client: EngineClient | None,
    resolver: Resolver | None,
    protocols: Sequence[ScoringProtocol] | None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: build the context, check every backend, run the background loops."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = build_context(settings, client or make_engine_client(settings.http_client), protocols)
        app.state.ctx = ctx

        async def on_healthy(_: Backend) -> None:
            if ctx.info.model is None or ctx.info.vllm_version is None:
                await discover(ctx.pool, ctx.client, ctx.info)

        discovery = _discovery(settings, ctx, resolver, on_healthy)
        if discovery is not None:
            await discovery.refresh()
        await check_all(ctx.pool, ctx.client, timeout=2.0, on_healthy=on_healthy)
        log.info(
            "editjudge %s: %d/%d backends healthy, model %s",
            __version__,
            ctx.pool.healthy_count(),
            len(ctx.pool.backends),
            ctx.info.model,
        )
        tune_allocator(settings.malloc_mmap_threshold)
        freeze_startup_objects()
        collector = collect_young_less_often()
        loops = _background_loops(settings, ctx, discovery, on_healthy)
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            restore_collector(collector)
            thaw_startup_objects()
            await _close(ctx)

    return lifespan


def _background_loops(
    settings: Settings,
    ctx: AppContext,
    discovery: Discovery | None,
    on_healthy: Callable[[Backend], Awaitable[None]],
) -> list[Coroutine[Any, Any, None]]:
    """What runs beside the requests while the app serves."""
    loops = [health_loop(ctx.pool, ctx.client, settings.health_interval_s, on_healthy)]
    if settings.in_flight_control == "adaptive":
        loops.append(load_loop(ctx.pool, ctx.client, settings.load_interval_s))
    if settings.memory_trim_interval_s > 0:
        loops.append(trim_loop(ctx.budget, settings.memory_trim_interval_s, TRIM_AFTER_DROP))
    if discovery is not None:
        loops.append(discovery.run())
    return loops


async def _close(ctx: AppContext) -> None:
    """Release what the context holds: engine connections, image threads, the score cache."""
    await ctx.client.aclose()
    ctx.image_workers.close()
    if ctx.scorer.cache is not None:
        ctx.scorer.cache.close()


def _discovery(
    settings: Settings,
    ctx: AppContext,
    resolver: Resolver | None,
    on_healthy: Callable[[Backend], Awaitable[None]],
) -> Discovery | None:
    """DNS discovery feeding ``ctx.pool``, when the settings ask for it."""

    async def on_change(change: Change) -> None:
        for url in change.removed:
            ctx.metrics.forget_backend(url)
        if change.added:  # check newcomers now rather than a health interval later
            await check_all(ctx.pool, ctx.client, timeout=2.0, on_healthy=on_healthy)

    return from_settings(
        settings, ctx.pool, resolver=resolver, on_change=on_change, metrics=ctx.metrics
    )


def _complete_openapi(
    app: FastAPI, settings: Settings, protocols: Sequence[ScoringProtocol] | None
) -> None:
    """Add the models that ``/score``'s hand-written body refers to to the OpenAPI document, and
    the names of the protocols this router serves (``protocols``, else the settings' own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # A copy: the document shares dicts with module-level route metadata, edited below.
            schema = app.openapi_schema = copy.deepcopy(FastAPI.openapi(app))
            schema.setdefault("components", {}).setdefault("schemas", {})
            schema["components"]["schemas"].update(openapi_components())
            served = build_protocols(settings) if protocols is None else protocols
            name_protocols(schema, [p.name for p in served])
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["build_context", "create_app"]
