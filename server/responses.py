"""JSON responses as the router sends them (orjson), and the Retry-After it advises."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``payload`` serialised with orjson (what every route and error handler answers with)."""
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


def retry_after(health_interval_s: float) -> str:
    """Seconds until a retry may find a backend again: one health-check round, at least 1."""
    return str(max(1, math.ceil(health_interval_s)))
