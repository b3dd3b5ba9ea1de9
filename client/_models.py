"""Typed results and server facts, mirroring the router's wire models (``server/schemas.py``).

The models accept fields they do not know (``extra="allow"``) so a newer router can add fields
without breaking older clients, and those fields survive a round trip through JSONL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "error"]
MiB = 1024 * 1024

#: What an image argument may be: a file path, encoded bytes, or a Pillow image.
ImageInput = str | Path | bytes | Image.Image


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Open):
    """Machine-readable ``code`` plus a human ``message``."""

    code: str
    message: str


class Fingerprint(_Open):
    """What determined a score (model, vLLM version, protocol, prompt hash, sampling)."""

    model: str | None = None
    vllm_version: str | None = None
    protocol: str | None = None
    template_hash: str | None = None
    sampling: dict[str, Any] = Field(default_factory=dict)
    image_policy: str | None = None


class ScoreResult(_Open):
    """The outcome of one item. ``score`` is ``None`` whenever ``status`` is ``"error"``."""

    id: str | None = None
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

    @property
    def ok(self) -> bool:
        """True when the judge produced a valid score."""
        return self.status == "ok"

    @classmethod
    def failed(
        cls, item_id: str | None, code: str, message: str, meta: dict[str, Any] | None = None
    ) -> ScoreResult:
        """An error result made on this side (the item never reached a judge)."""
        error = ErrorInfo(code=code, message=message)
        return cls(id=item_id, status="error", error=error, meta=meta)


class GroupResult(_Open):
    """``POST /score/group``'s answer: one result per candidate in request order, each with
    ``rank`` (1 = best) and ``z_score`` within the group, plus the engine that scored the group
    and the prompt tokens its calls used and found cached."""

    results: list[ScoreResult]
    backend: str | None = None
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None


class Limits(_Open):
    """The router's input limits (``GET /info``); defaults are the router's own defaults."""

    max_body_bytes: int = 64 * MiB
    max_image_bytes: int = 32 * MiB
    max_image_pixels: int = 40_000_000
    max_batch_items: int = 1024
    resize_max_pixels: int | None = None
    resize_grid: int | None = None
    request_deadline_s: float | None = None

    @property
    def pixel_cap(self) -> int:
        """Images above this many pixels are downscaled before upload."""
        if self.resize_max_pixels:
            return min(self.resize_max_pixels, self.max_image_pixels)
        return self.max_image_pixels


class Capacity(_Open):
    """``GET /info``'s ``capacity``: how much work keeps the router's engines busy."""

    healthy_backends: int = 0
    backends: int = 0
    in_flight_window: int = 0  # requests the healthy engines may hold now, summed
    queued: int = 0  # work waiting in the router for a window to open
    suggested_items_in_flight: int = 0


class ServerInfo(_Open):
    """``GET /info``: model, protocols, limits, capacity and version of the router."""

    version: str | None = None
    model: str | None = None
    vllm_version: str | None = None
    protocols: list[str] = Field(default_factory=list)
    default_protocol: str | None = None
    routing_policy: str | None = None
    limits: Limits = Field(default_factory=Limits)
    capacity: Capacity | None = None  # None: a router older than this field
    auth: bool = False


@dataclass(frozen=True)
class Item:
    """One edit to score: the edited ``image``, the ``instruction``, optionally the source.

    Images may be paths, encoded bytes or Pillow images. ``id`` is echoed in the result; when it
    is omitted in :meth:`~editjudge.Client.score_many`, the input position is used (``"0"``, ...).
    ``meta`` is any JSON object of at most 4 KB, returned unchanged in the result (e.g. a
    benchmark's task type, for ``editjudge report --by``); ``imgedit`` reads its ``edit_type``.
    """

    image: ImageInput
    instruction: str
    source_image: ImageInput | None = None
    id: str | None = None
    protocol: str | None = None
    meta: dict[str, Any] | None = None


def as_item(value: Item | dict[str, Any]) -> Item:
    """Accept an :class:`Item` or a mapping with the same keys."""
    if isinstance(value, Item):
        return value
    if isinstance(value, dict):
        fields = dict(value)
        if fields.get("id") is not None:
            fields["id"] = str(fields["id"])
        try:
            return Item(**fields)
        except TypeError as exc:
            raise TypeError(f"not a valid item: {exc}") from None
    raise TypeError(f"items must be editjudge.Item or dict, not {type(value).__name__}")
