"""Wire models of the HTTP API (requests, results, error bodies).

These shapes are the public contract of ``POST /score``; change them only with a deprecation path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Status = Literal["ok", "error"]


class ErrorInfo(BaseModel):
    """Machine-readable ``code`` plus a human ``message``."""

    code: str
    message: str


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer."""

    error: ErrorInfo


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("instruction must not be blank")
    return value


# One rule for every instruction the API accepts, whichever endpoint it comes through.
Instruction = Annotated[str, Field(min_length=1, max_length=8192), AfterValidator(_not_blank)]

META_MAX_BYTES = 4096


def meta_size(value: dict[str, Any]) -> int:
    """Bytes of ``value`` as compact JSON (how ``meta``'s limit is measured)."""
    return len(orjson.dumps(value))


def _small(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and meta_size(value) > META_MAX_BYTES:
        raise ValueError(f"meta must be at most {META_MAX_BYTES} bytes of JSON")
    return value


# The caller's own JSON object, returned unchanged in the item's result (e.g. a benchmark's task
# type and language, for ``editjudge report --by``); ``imgedit`` reads ``meta.edit_type``.
Meta = Annotated[
    dict[str, Any] | None,
    AfterValidator(_small),
    Field(description=f"Any JSON object (at most {META_MAX_BYTES} bytes), echoed in the result."),
]


class ScoreItem(BaseModel):
    """One edit to judge: the edited ``image``, optionally its ``source_image``, the instruction."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(..., min_length=1, description="Edited image: base64 or data URL.")
    source_image: str | None = Field(None, description="Source image: base64 or data URL.")
    instruction: Instruction
    id: str | None = Field(None, max_length=512)
    protocol: str | None = Field(None, max_length=64)
    meta: Meta = None


class BatchRequest(BaseModel):
    """Several items scored together; results come back in request order."""

    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(..., min_length=1)
    protocol: str | None = Field(None, max_length=64)


class GroupRequest(BaseModel):
    """K candidate edits of one source image under one instruction (``POST /score/group``)."""

    model_config = ConfigDict(extra="forbid")

    source_image: str = Field(..., min_length=1)
    instruction: Instruction
    images: list[str] = Field(..., min_length=1)
    ids: list[str] | None = None
    protocol: str | None = Field(None, max_length=64)
    meta: Meta = None


class Fingerprint(BaseModel):
    """What determines a score, so a run can be reproduced or compared."""

    model: str | None
    vllm_version: str | None
    protocol: str
    template_hash: str
    sampling: dict[str, Any]
    image_policy: str


class ScoreResult(BaseModel):
    """The outcome of one item. ``score`` is null whenever ``status`` is ``"error"``."""

    id: str | None
    status: Status
    score: float | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    reasoning: str | None = None
    raw: str | None = None
    error: ErrorInfo | None = None
    backend: str | None = None
    latency_ms: float = 0.0
    cached_prompt_tokens: int | None = None
    cache_hit: bool = False
    rank: int | None = None
    z_score: float | None = None
    fingerprint: Fingerprint | None = None
    meta: dict[str, Any] | None = None


class BatchResponse(BaseModel):
    results: list[ScoreResult]


class GroupResponse(BaseModel):
    results: list[ScoreResult]
    backend: str | None
    cached_prompt_tokens: int | None
    prompt_tokens: int | None


class BackendInfo(BaseModel):
    url: str
    healthy: bool
    state: str
    in_flight: int
    window: int = Field(description="Requests this engine may hold now.")
    running: int | None = Field(description="Requests the engine said it runs (None: unknown).")
    served: int
    failures: int
    latency_ms_ewma: float | None


class Capacity(BaseModel):
    """How much work the router wants, so clients can size their concurrency to the box."""

    healthy_backends: int = Field(description="Engines taking traffic now.")
    backends: int = Field(description="Engines the router knows.")
    in_flight_window: int = Field(
        description="Requests the healthy engines may hold now, summed (their windows); the "
        "router queues the rest."
    )
    queued: int = Field(description="Work waiting in the router for a window to open.")
    suggested_items_in_flight: int = Field(
        description="Items a client should keep in flight so that every healthy engine's window "
        "can grow to its ceiling (within half the router's item budget); the router queues the "
        "rest."
    )


class InfoResponse(BaseModel):
    version: str
    model: str | None
    vllm_version: str | None
    protocols: list[str]
    default_protocol: str
    routing_policy: str
    limits: dict[str, int | float | None]
    capacity: Capacity
    auth: bool
