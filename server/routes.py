"""HTTP routes. Handlers stay thin: parse (``intake``), admit (``admission``), score."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .auth import require_api_key
from .context import AppContext, Ctx
from .errors import (
    InvalidRequest,
    NoHealthyBackend,
    UnsupportedMediaType,
)
from .intake import Parsed, image_from_bytes, load_json, parse_json_request, validate
from .protocols import Item
from .schemas import (
    BackendInfo,
    BatchRequest,
    BatchResponse,
    Capacity,
    ErrorResponse,
    InfoResponse,
    ScoreItem,
    ScoreResult,
)

router = APIRouter()
Authorized = Annotated[None, Depends(require_api_key)]

# Item error codes that mean "the service could not do it now" rather than "this item is bad";
# a single-item request reports them as that HTTP status (with Retry-After) so clients retry.
_SERVICE_STATUS = {
    "no_healthy_backend": 503,
    "backend_unavailable": 503,
    "deadline_exceeded": 504,
    "backend_timeout": 504,
}

_REF = "#/components/schemas/{model}"
_SCORE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": _REF.format(model="ScoreItem")},
                        {"$ref": _REF.format(model="BatchRequest")},
                    ]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "instruction"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "source_image": {"type": "string", "format": "binary"},
                        "instruction": {"type": "string", "minLength": 1, "maxLength": 8192},
                        "id": {"type": "string", "maxLength": 512},
                        "protocol": {"type": "string", "maxLength": 64},
                    },
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "A result for a single item, or results in request order for a batch.",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": _REF.format(model="ScoreResult")},
                            {"$ref": _REF.format(model="BatchResponse")},
                        ]
                    }
                }
            },
        }
    },
}


def openapi_components() -> dict[str, Any]:
    """Schemas that the hand-written ``/score`` body and response above refer to.

    The handler parses its body itself (JSON or multipart), so FastAPI cannot see these models;
    the app adds them to its OpenAPI document.
    """
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ScoreItem, "validation"),
        (BatchRequest, "validation"),
        (ScoreResult, "serialization"),  # as sent: fields with defaults are always present
        (BatchResponse, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=_REF)
    defs: dict[str, Any] = top["$defs"]
    return defs


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 429, 503, 504)
}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


@router.post(
    "/score",
    openapi_extra=_SCORE_OPENAPI,
    responses=_ERRORS,
    summary="Score one edit (JSON or multipart) or a batch (JSON with 'items').",
)
async def score(request: Request, ctx: Ctx, _: Authorized) -> Response:
    """Returns a result object for a single item, or ``{"results": [...]}`` for a batch."""
    started = time.monotonic()
    deadline = started + ctx.settings.request_deadline_s
    with ctx.budget.admit(0, body_reservation(request, ctx)):
        parsed = await _parse(request, ctx)
    require_healthy(ctx)
    with ctx.budget.admit(len(parsed.entries), parsed.image_bytes):
        results = await ctx.scorer.score_many(parsed.entries, parsed.protocols, deadline)
    if parsed.batch:
        return json_response({"results": [r.model_dump(mode="json") for r in results]})
    return _single(results[0], ctx)


def require_healthy(ctx: AppContext) -> None:
    """503 before any work when no backend could take it."""
    if ctx.pool.healthy_count() == 0:
        raise NoHealthyBackend(
            "no healthy scoring backend; retry shortly", ctx.settings.health_interval_s
        )


def body_reservation(request: Request, ctx: AppContext) -> int:
    """Bytes to hold while the body is read: its declared length, else the most it may be."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else ctx.settings.max_body_bytes


def _retry_after(ctx: AppContext) -> str:
    """Seconds until a retry may find a backend again: one health-check round, at least 1."""
    return str(max(1, math.ceil(ctx.settings.health_interval_s)))


def _single(result: ScoreResult, ctx: AppContext) -> Response:
    status = _SERVICE_STATUS.get(result.error.code, 200) if result.error else 200
    if status != 200 and result.error is not None:
        err = result.error.model_dump()
        return json_response({"error": err}, status, {"Retry-After": _retry_after(ctx)})
    return json_response(result.model_dump(mode="json"))


async def _parse(request: Request, ctx: AppContext) -> Parsed:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _parse_multipart(request, ctx)
    if ctype not in ("application/json", ""):
        raise UnsupportedMediaType(
            f"content type {ctype!r} is not supported; send application/json or multipart/form-data"
        )
    obj = load_json(await request.body())
    return await parse_json_request(obj, ctx.protocols, ctx.limits, ctx.settings.max_batch_items)


async def _parse_multipart(request: Request, ctx: AppContext) -> Parsed:
    limit = ctx.settings.max_body_bytes
    try:
        form = await request.form(max_files=2, max_fields=8, max_part_size=limit)
    except StarletteHTTPException as exc:  # Starlette's answer to a broken multipart body
        raise InvalidRequest(f"malformed multipart body: {exc.detail}") from None
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
        unknown = set(form.keys()) - {"image", "source_image", "instruction", "id", "protocol"}
        if unknown:
            raise InvalidRequest(f"unknown form fields: {', '.join(sorted(unknown))}")
        if "image" not in files:
            raise InvalidRequest("multipart requests need a file field 'image'")
        instruction = fields.get("instruction", "").strip()
        if not instruction:
            raise InvalidRequest("multipart requests need a non-empty field 'instruction'")
        # The same field rules (lengths) as a JSON item; the image is checked below, as a file.
        meta = {k: fields[k] for k in ("id", "protocol") if k in fields}
        validate(ScoreItem, {"image": "file", "instruction": instruction, **meta})
        image = image_from_bytes(await files["image"].read(), ctx.limits, "image")
        source = None
        if "source_image" in files:
            data = await files["source_image"].read()
            source = image_from_bytes(data, ctx.limits, "source_image")
    finally:
        await form.close()
    protocol = ctx.protocols.get(fields.get("protocol"))
    item = Item(instruction, image, source, fields.get("id"))
    size = len(image.data) + (len(source.data) if source else 0)
    return Parsed([item], [protocol], False, size)


@router.get("/health", summary="Liveness: the router process is up.")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: 200 if at least one backend is healthy, else 503.")
async def ready(ctx: Ctx) -> Response:
    healthy = ctx.pool.healthy_count()
    body = {"ready": healthy > 0, "healthy_backends": healthy, "backends": len(ctx.pool.backends)}
    if healthy:
        return json_response(body)
    return json_response(body, 503, {"Retry-After": _retry_after(ctx)})


@router.get("/backends", response_model=list[BackendInfo], summary="Backend health and load.")
async def backends(ctx: Ctx, _: Authorized) -> list[BackendInfo]:
    now = time.monotonic()
    return [
        BackendInfo(
            url=b.url,
            healthy=b.healthy and b.circuit(now) != "open",
            state=b.circuit(now),
            in_flight=b.in_flight,
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
    """The load that keeps every healthy engine busy (at least one engine's worth)."""
    healthy = ctx.pool.healthy_count()
    per = ctx.settings.target_items_per_backend
    return Capacity(
        healthy_backends=healthy,
        backends=len(ctx.pool.backends),
        target_items_per_backend=per,
        suggested_items_in_flight=max(1, healthy) * per,
    )


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(request: Request, ctx: Ctx) -> Response:
    if ctx.settings.protect_metrics:
        await require_api_key(request, ctx)
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")
