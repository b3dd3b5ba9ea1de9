"""The HTTP routes, one module per resource, joined into one router here.

``score`` (``POST /score``), ``group`` (``POST /score/group``) and ``ops`` (health, readiness,
backends, info, metrics). Handlers stay thin: parse (``intake``), admit (``admission``), score.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from . import group, ops, score
from .score import openapi_components

_MODULES = (score, group, ops)
router = APIRouter()
for _module in _MODULES:
    router.include_router(_module.router)


def paths() -> set[str]:
    """Every route's path (for per-route metrics; anything else counts as ``other``)."""
    return {r.path for m in _MODULES for r in m.router.routes if isinstance(r, APIRoute)}


__all__ = ["openapi_components", "paths", "router"]
