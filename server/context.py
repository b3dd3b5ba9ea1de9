"""The per-app state built by the lifespan, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .admission import Budget
from .config import Settings
from .engine import EngineClient
from .images import ImageLimits
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


async def get_context(request: Request) -> AppContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop
    # on every request for what is an attribute read.
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]
