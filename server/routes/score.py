"""``POST /score``: one edit (JSON or multipart) or a batch. The handler stays thin: parse
(``intake``), admit (``admission``), score (``scoring``)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..admission import Hold
from ..auth import require_api_key
from ..deps import AppContext, context_of, intake_of, require_healthy
from ..errors import InvalidRequest, UnsupportedMediaType
from ..images import ImageLimits, Memory, PreparedImage
from ..intake import Parsed, held_bytes, image_from_bytes, parse_json_body, resolve, validate
from ..protocols import Item, ScoringProtocol
from ..responses import json_response, retry_after
from ..schemas import BatchRequest, BatchResponse, ErrorResponse, ScoreItem, ScoreResult
from ..upload import UploadLimits, body_chunks, read_body

router = APIRouter()

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
                        "meta": {
                            "type": "string",
                            "description": "A JSON object (at most 4096 bytes), echoed in the "
                            "result.",
                        },
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
    code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 429, 503, 504)
}


@router.post(
    "/score",
    openapi_extra=_SCORE_OPENAPI,
    responses=_ERRORS,
    summary="Score one edit (JSON or multipart) or a batch (JSON with 'items').",
)
async def score(request: Request) -> Response:
    """Returns a result object for a single item, or ``{"results": [...]}`` for a batch."""
    ctx = context_of(request)
    await require_api_key(request, ctx)  # before anything reads the body
    started = time.monotonic()
    deadline = started + ctx.settings.request_deadline_s
    hold = ctx.budget.hold()
    try:
        parsed = await _parse(request, ctx, hold)
        require_healthy(ctx)
        hold.settle(len(parsed.entries), parsed.image_bytes)
        results = await ctx.scorer.score_many(parsed.entries, parsed.protocols, deadline)
    finally:
        hold.release()
    if parsed.batch:
        return json_response({"results": [r.model_dump(mode="json") for r in results]})
    return _single(results[0], ctx)


def _single(result: ScoreResult, ctx: AppContext) -> Response:
    status = _SERVICE_STATUS.get(result.error.code, 200) if result.error else 200
    if status != 200 and result.error is not None:
        err = result.error.model_dump()
        headers = {"Retry-After": retry_after(ctx.settings.health_interval_s)}
        return json_response({"error": err}, status, headers)
    return json_response(result.model_dump(mode="json"))


async def _parse(request: Request, ctx: AppContext, hold: Hold) -> Parsed:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "", "multipart/form-data"):
        raise UnsupportedMediaType(
            f"content type {ctype!r} is not supported; send application/json or multipart/form-data"
        )
    ctx.budget.refuse_if_full()
    if ctype == "multipart/form-data":
        return await _parse_multipart(request, ctx, hold)
    body = await read_body(request, hold, UploadLimits.from_settings(ctx.settings))
    hold.parsing()
    return await parse_json_body(body, intake_of(ctx), hold.borrow)


async def _parse_multipart(request: Request, ctx: AppContext, hold: Hold) -> Parsed:
    chunks = body_chunks(request, hold, UploadLimits.from_settings(ctx.settings))
    parser = MultiPartParser(
        request.headers,
        chunks,
        max_files=2,
        max_fields=8,
        max_part_size=ctx.settings.max_body_bytes,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"malformed multipart body: {exc.message}") from None
    finally:
        await chunks.aclose()
    hold.parsing()
    try:
        fields, files = _form_parts(form)
        instruction = fields.get("instruction", "").strip()
        if not instruction:
            raise InvalidRequest("multipart requests need a non-empty field 'instruction'")
        # The same field rules (lengths, meta) as a JSON item; the image is checked below as a file.
        named: dict[str, Any] = {k: fields[k] for k in ("id", "protocol") if k in fields}
        if "meta" in fields:
            named["meta"] = _form_meta(fields["meta"])
        entry = validate(ScoreItem, {"image": "file", "instruction": instruction, **named})
        protocol = ctx.protocols.get(entry.protocol)
        data = {name: await f.read() for name, f in files.items()}
    finally:
        await form.close()

    def prepared() -> tuple[ScoringProtocol, Item]:
        image, source = _form_images(data, ctx.limits, hold.borrow)
        # One worker hop for both: a protocol's preparation may decode too (gedit resizes).
        return resolve(protocol, Item(instruction, image, source, entry.id, entry.meta))

    protocol, item = await ctx.image_workers.run(prepared)
    return Parsed([item], [protocol], False, held_bytes([item]))


def _form_parts(form: FormData) -> tuple[dict[str, str], dict[str, UploadFile]]:
    """The form's text fields and files, each name at most once."""
    names = [name for name, _ in form.multi_items()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidRequest(f"form fields given more than once: {', '.join(repeated)}")
    unknown = set(names) - _FORM_FIELDS
    if unknown:
        raise InvalidRequest(f"unknown form fields: {', '.join(sorted(unknown))}")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
    if "image" not in files:
        raise InvalidRequest("multipart requests need a file field 'image'")
    return fields, files


def _form_images(
    data: dict[str, bytes], limits: ImageLimits, memory: Memory
) -> tuple[PreparedImage, PreparedImage | None]:
    """The uploaded files, validated (in a worker thread: this decodes pixels)."""
    image = image_from_bytes(data.pop("image"), limits, "image", memory)
    raw_source = data.pop("source_image", None)
    source = (
        None if raw_source is None else image_from_bytes(raw_source, limits, "source_image", memory)
    )
    return image, source


_FORM_FIELDS = {"image", "source_image", "instruction", "id", "protocol", "meta"}


def _form_meta(value: str) -> Any:
    """The ``meta`` form field: a JSON object, as text."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidRequest("meta: must be a JSON object, as text") from None
