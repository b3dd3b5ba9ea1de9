"""The per-app state built by the lifespan, and the dependencies routes take from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from .admission import Budget
from .config import Settings
from .engine import EngineClient
from .errors import NoHealthyBackend
from .images import ImageLimits
from .intake import ImageWorkers, Intake
from .metrics import Metrics
from .pool import BackendPool
from .protocols import ProtocolRegistry
from .scoring import EngineInfo, Scorer


@dataclass
class AppContext:
    """Everything a request handler may use; one instance per app, no globals."""

    settings: Settings
    pool: BackendPool
    client: EngineClient
    scorer: Scorer
    protocols: ProtocolRegistry
    limits: ImageLimits
    budget: Budget
    metrics: Metrics
    info: EngineInfo
    api_key_digests: tuple[bytes, ...] = ()
    image_workers: ImageWorkers = field(default_factory=lambda: ImageWorkers(1))


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    # on every request for what is an attribute read.
    return context_of(request)


def context_of(request: Request) -> AppContext:
    """The app's context, for the scoring routes, which take no FastAPI dependencies: resolving
    ``Ctx`` and ``Authorized`` through FastAPI cost ~0.2 ms of router CPU per request."""
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]


def intake_of(ctx: AppContext) -> Intake:
    return Intake(ctx.protocols, ctx.limits, ctx.settings.max_batch_items, ctx.image_workers)


def require_healthy(ctx: AppContext) -> None:
    """503 before any work when no backend could take it (called after the body is parsed, so
    bad input is still a 4xx while the engines are down)."""
    if ctx.pool.healthy_count() == 0:
        raise NoHealthyBackend(
            "no healthy scoring backend; retry shortly", ctx.settings.health_interval_s
        )
