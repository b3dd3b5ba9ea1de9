"""The HTTP routes, one module per resource, joined into one router here.

``score`` (``POST /score``), ``group`` (``POST /score/group``) and ``ops`` (health, readiness,
backends, info, metrics). Handlers stay thin: parse (``intake``), admit (``admission``), score.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from . import group, ops, score
from .score import openapi_components

#: One router per resource. The app includes each directly: a router of routers would add a
#: second routing pass to every request.
ROUTERS: tuple[APIRouter, ...] = (score.router, group.router, ops.router)

#: ``POST`` routes that take no FastAPI dependencies: served by
#: :class:`~editjudge.server.direct.DirectRoutes` without FastAPI's routing.
DIRECT_ROUTES = {"/score": score.score, "/score/group": group.score_group}


def paths() -> set[str]:
    """Every route's path (for per-route metrics; anything else counts as ``other``)."""
    return {r.path for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)}


__all__ = ["DIRECT_ROUTES", "ROUTERS", "openapi_components", "paths"]
