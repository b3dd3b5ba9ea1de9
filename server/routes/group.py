"""``POST /score/group``: K candidate edits of one source image under one instruction.

The request is ``{"source_image", "instruction", "images": [...], "ids"?, "protocol"?, "meta"?}``
(``meta`` is echoed in every candidate's result);
the answer is ``{"results": [...], "backend", "prompt_tokens", "cached_prompt_tokens"}`` with
results in request order, each with ``rank`` and ``z_score`` within the group (see
:mod:`editjudge.server.group`). A bad source image, instruction or request shape is a 4xx for the
whole request; a bad candidate image becomes an error item in its place and is left out of the
ranking.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from ..admission import body_reservation
from ..auth import Authorized
from ..deps import AppContext, Ctx, require_healthy
from ..errors import EditJudgeError, InvalidRequest, TooManyItems, UnsupportedMediaType
from ..group import GroupScorer
from ..images import ImageLimits, PreparedImage
from ..intake import THREAD_MIN_ITEMS, image_field, load_json, validate
from ..protocols import Item, Rejected, ScoringProtocol
from ..responses import json_response
from ..schemas import ErrorResponse, GroupRequest, GroupResponse

router = APIRouter()

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GroupRequest.model_json_schema()}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 429, 503)
}


@router.post(
    "/score/group",
    openapi_extra=_BODY,
    responses={200: {"model": GroupResponse}, **_ERRORS},
    summary="Score K candidate edits of one source image on one engine, with rank and z-score.",
)
async def score_group(request: Request, ctx: Ctx, _: Authorized) -> Response:
    """Per-candidate results in request order plus the group's engine and prompt-token counts."""
    deadline = time.monotonic() + ctx.settings.request_deadline_s
    reserve = body_reservation(request.headers.get("content-length"), ctx.settings.max_body_bytes)
    with ctx.budget.admit(0, reserve):
        group = await _parse(request, ctx)
    protocol = ctx.protocols.get(group.protocol).specialize(group.meta)
    source = image_field(group.source_image, ctx.limits, "source_image")
    if len(group.images) >= THREAD_MIN_ITEMS:
        entries = await asyncio.to_thread(_candidates, group, source, protocol, ctx.limits)
    else:
        entries = _candidates(group, source, protocol, ctx.limits)
    require_healthy(ctx)
    size = source.size + sum(e.image.size for e in entries if isinstance(e, Item))
    with ctx.budget.admit(len(entries), size):
        outcome = await GroupScorer(ctx.scorer).score(
            source, group.instruction, entries, protocol, deadline
        )
    response = GroupResponse(
        results=outcome.results,
        backend=outcome.backend,
        prompt_tokens=outcome.prompt_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
    )
    return json_response(response.model_dump(mode="json"))


async def _parse(request: Request, ctx: AppContext) -> GroupRequest:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise UnsupportedMediaType(f"content type {ctype!r} is not supported; send JSON")
    group: GroupRequest = validate(GroupRequest, load_json(await request.body()))
    if len(group.images) > ctx.settings.max_batch_items:
        raise TooManyItems(
            f"group has {len(group.images)} images; the limit is {ctx.settings.max_batch_items}"
        )
    if group.ids is not None and len(group.ids) != len(group.images):
        raise InvalidRequest(
            f"ids has {len(group.ids)} entries for {len(group.images)} images; give one per image"
        )
    return group


def _candidates(
    group: GroupRequest, source: PreparedImage, protocol: ScoringProtocol, limits: ImageLimits
) -> list[Item | Rejected]:
    out: list[Item | Rejected] = []
    for i, value in enumerate(group.images):
        item_id = group.ids[i] if group.ids is not None else str(i)
        try:
            image = image_field(value, limits, f"images.{i}")
            item = protocol.prepare(Item(group.instruction, image, source, item_id, group.meta))
        except EditJudgeError as exc:
            out.append(Rejected(item_id, exc, group.meta))
            continue
        out.append(item)
    return out
