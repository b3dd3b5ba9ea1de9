"""Wire models of the HTTP API (requests, results, error bodies).

These shapes are the public contract of ``POST /score``; change them only with a deprecation path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

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


# An image travels inline: its bytes in standard base64 (no line breaks), bare or as a data URL.
# The router reads the format from the bytes, whatever a data URL declares; URLs are never fetched.
_IMAGE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "string",
            "format": "byte",
            "contentEncoding": "base64",
            "contentMediaType": "image/*",
            "pattern": "^[A-Za-z0-9+/]+={0,2}$",
        },
        {"type": "string", "pattern": "^data:[^,]*;base64,[A-Za-z0-9+/]+={0,2}$"},
    ],
    "description": "An image (JPEG, PNG or WebP by default): base64, or a base64 data URL.",
}
Image = Annotated[str, Field(min_length=1), WithJsonSchema(_IMAGE_SCHEMA)]
ItemId = Annotated[str, Field(max_length=512)]
ProtocolName = Annotated[
    str,
    Field(
        max_length=64,
        description="A scoring protocol this router serves (GET /info lists them); default: "
        "the router's EDITJUDGE_PROTOCOL.",
    ),
]


class ScoreItem(BaseModel):
    """One edit to judge: the edited ``image``, optionally its ``source_image``, the instruction."""

    model_config = ConfigDict(extra="forbid")

    image: Image
    source_image: Image | None = None
    instruction: Instruction
    id: ItemId | None = None
    protocol: ProtocolName | None = None
    meta: Meta = None


class BatchRequest(BaseModel):
    """Several items scored together; results come back in request order."""

    model_config = ConfigDict(extra="forbid")

    items: list[Any] = Field(..., min_length=1)
    protocol: ProtocolName | None = None


class GroupRequest(BaseModel):
    """K candidate edits of one source image under one instruction (``POST /score/group``)."""

    model_config = ConfigDict(extra="forbid")

    source_image: Image
    instruction: Instruction
    images: list[Image] = Field(..., min_length=1)
    ids: list[ItemId] | None = Field(
        None,
        description="One id per image, in the same order: exactly as many ids as images, each "
        "at most 512 characters (422 otherwise). Results carry them; by default an image's id "
        "is its index.",
    )
    protocol: ProtocolName | None = None
    meta: Meta = None


def name_protocols(schema: Any, names: list[str]) -> None:
    """Give every ``protocol`` property in an OpenAPI ``schema`` the served names as its enum."""
    if isinstance(schema, list):
        for node in schema:
            name_protocols(node, names)
        return
    if not isinstance(schema, dict):
        return
    found = schema.get("properties", {}).get("protocol")
    if isinstance(found, dict):
        for branch in [found, *found.get("anyOf", [])]:
            if branch.get("type") == "string":
                branch["enum"] = list(names)
    for value in schema.values():
        name_protocols(value, names)


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
