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

import functools
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from ..admission import Hold
from ..auth import require_api_key
from ..deps import AppContext, context_of, intake_of, require_healthy
from ..errors import (
    EditJudgeError,
    InvalidRequest,
    ServiceError,
    TooManyItems,
    UnsupportedMediaType,
)
from ..group import GroupScorer
from ..images import B64Image, PreparedImage
from ..intake import (
    THREAD_MIN_ITEMS,
    Prepare,
    held_bytes,
    image_field,
    validate,
)
from ..jsonbody import load_group_json
from ..protocols import Item, Rejected, ScoringProtocol
from ..responses import json_response
from ..schemas import ErrorResponse, GroupRequest, GroupResponse
from ..upload import UploadLimits, read_body

router = APIRouter()

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GroupRequest.model_json_schema()}},
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 429, 503)
}


@router.post(
    "/score/group",
    openapi_extra=_BODY,
    responses={200: {"model": GroupResponse}, **_ERRORS},
    summary="Score K candidate edits of one source image on one engine, with rank and z-score.",
)
async def score_group(request: Request) -> Response:
    """Per-candidate results in request order plus the group's engine and prompt-token counts."""
    ctx = context_of(request)
    await require_api_key(request, ctx)  # before anything reads the body
    deadline = time.monotonic() + ctx.settings.request_deadline_s
    hold = ctx.budget.hold()
    try:
        group, cut = await _parse(request, ctx, hold)
        protocol = ctx.protocols.get(group.protocol).specialize(group.meta)
        instruction = group.instruction
        # A preparation that decodes (gedit resizes) never runs on the event loop.
        small = len(group.images) < THREAD_MIN_ITEMS and not protocol.decodes_at_intake
        job = functools.partial(_images, group, protocol)
        del group  # the parsed text goes once the images are made of it: they are kept once
        source, entries = await intake_of(ctx).run(job, hold.borrow, small, cut)
        del job, cut
        # The priming call shows the source as the candidates' prompts do (gedit converts it).
        source = next((e.source for e in entries if isinstance(e, Item) and e.source), source)
        require_healthy(ctx)
        hold.settle(len(entries), held_bytes(entries, also=[source]))
        outcome = await GroupScorer(ctx.scorer).score(
            source, instruction, entries, protocol, deadline
        )
    finally:
        hold.release()
    response = GroupResponse(
        results=outcome.results,
        backend=outcome.backend,
        prompt_tokens=outcome.prompt_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
    )
    return json_response(response.model_dump(mode="json"))


async def _parse(
    request: Request, ctx: AppContext, hold: Hold
) -> tuple[GroupRequest, dict[str, B64Image]]:
    """The validated request, and its images cut out of the body (see :mod:`..jsonbody`)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise UnsupportedMediaType(f"content type {ctype!r} is not supported; send JSON")
    ctx.budget.refuse_if_full()
    body = await read_body(request, hold, UploadLimits.from_settings(ctx.settings))
    hold.parsing()
    raw = body.take()
    obj, cut = load_group_json(raw)
    del raw  # parsed: the raw bytes are not needed any more
    group: GroupRequest = validate(GroupRequest, obj)
    if len(group.images) > ctx.settings.max_batch_items:
        raise TooManyItems(
            f"group has {len(group.images)} images; the limit is {ctx.settings.max_batch_items}"
        )
    if group.ids is not None and len(group.ids) != len(group.images):
        raise InvalidRequest(
            f"ids has {len(group.ids)} entries for {len(group.images)} images; give one per image"
        )
    return group, cut


def _images(
    group: GroupRequest, protocol: ScoringProtocol, prepare: Prepare
) -> tuple[PreparedImage, list[Item | Rejected]]:
    """The source image (a bad one fails the request) and each candidate as ``protocol`` prepares
    it (a bad one becomes an error item in its place)."""
    source = image_field(group.source_image, prepare, "source_image")
    out: list[Item | Rejected] = []
    for i, value in enumerate(group.images):
        item_id = group.ids[i] if group.ids is not None else str(i)
        try:
            image = image_field(value, prepare, f"images.{i}")
            item = protocol.prepare(Item(group.instruction, image, source, item_id, group.meta))
        except ServiceError:
            raise  # the budget cannot hold this decode: the request is refused, not the candidate
        except EditJudgeError as exc:
            out.append(Rejected(item_id, exc, group.meta))
            continue
        out.append(item)
    return source, out
