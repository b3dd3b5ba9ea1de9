"""From request bodies to validated :class:`~editjudge.server.protocols.Item` objects.

JSON bodies are parsed with orjson; a batch is validated item by item so one bad item becomes an
error result in its place instead of failing the request. Each item's protocol is resolved for its
``meta`` and prepares the item (``gedit`` resizes images as its reference does). Image work (base64,
Pillow header checks, a decode check, that preparation) runs in a worker thread for batches, where
Pillow releases the GIL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from .errors import EditJudgeError, InvalidJSON, InvalidRequest, TooManyItems
from .images import ImageLimits, PreparedImage, prepare_image, prepare_payload
from .protocols import Item, ProtocolRegistry, Rejected, ScoringProtocol
from .schemas import META_MAX_BYTES, BatchRequest, ScoreItem, meta_size

# Below this many items the thread hop costs more than it saves.
THREAD_MIN_ITEMS = 4


@dataclass(frozen=True)
class Parsed:
    """A request turned into work: entries (items or per-item errors) and their protocols."""

    entries: list[Item | Rejected]
    protocols: list[ScoringProtocol]
    batch: bool
    image_bytes: int


def load_json(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequest("body must be a JSON object")
    return obj


def validate(model: type[BaseModel], data: Any) -> Any:
    """Pydantic validation with our error shape: the first problem, in one readable line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


async def parse_json_request(
    obj: dict[str, Any], registry: ProtocolRegistry, limits: ImageLimits, max_items: int
) -> Parsed:
    if "items" not in obj:
        single = validate(ScoreItem, obj)
        item = build_item(single, limits, fallback_id=None)
        protocol, item = resolve(registry.get(single.protocol), item)
        return Parsed([item], [protocol], False, _bytes([item]))
    batch = validate(BatchRequest, obj)
    if len(batch.items) > max_items:
        raise TooManyItems(f"batch has {len(batch.items)} items; the limit is {max_items}")
    default = registry.get(batch.protocol)
    if len(batch.items) >= THREAD_MIN_ITEMS:
        entries = await asyncio.to_thread(_batch_entries, batch.items, registry, default, limits)
    else:
        entries = _batch_entries(batch.items, registry, default, limits)
    items = [e for e, _ in entries]
    return Parsed(items, [p for _, p in entries], True, _bytes(items))


def resolve(protocol: ScoringProtocol, item: Item) -> tuple[ScoringProtocol, Item]:
    """The protocol variant for the item's ``meta`` and the item as that protocol's judge sees it
    (:meth:`ScoringProtocol.specialize`, :meth:`ScoringProtocol.prepare`)."""
    chosen = protocol.specialize(item.meta)
    return chosen, chosen.prepare(item)


def _batch_entries(
    raw_items: list[Any], registry: ProtocolRegistry, default: ScoringProtocol, limits: ImageLimits
) -> list[tuple[Item | Rejected, ScoringProtocol]]:
    out: list[tuple[Item | Rejected, ScoringProtocol]] = []
    for index, raw in enumerate(raw_items):
        try:
            entry = validate(ScoreItem, raw)
            chosen = registry.get(entry.protocol) if entry.protocol else default
            item = build_item(entry, limits, fallback_id=str(index))
            protocol, item = resolve(chosen, item)
            out.append((item, protocol))
        except EditJudgeError as exc:
            out.append((Rejected(_raw_id(raw, index), exc, _raw_meta(raw)), default))
    return out


def _raw_id(raw: Any, index: int) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return str(raw["id"])
    return str(index)


def _raw_meta(raw: Any) -> dict[str, Any] | None:
    """A rejected item's ``meta``, echoed when it is itself valid (a bad image keeps its meta)."""
    meta = raw.get("meta") if isinstance(raw, dict) else None
    if isinstance(meta, dict) and meta_size(meta) <= META_MAX_BYTES:
        return meta
    return None


def build_item(entry: ScoreItem, limits: ImageLimits, fallback_id: str | None) -> Item:
    image = image_field(entry.image, limits, "image")
    source = image_field(entry.source_image, limits, "source_image") if entry.source_image else None
    item_id = entry.id if entry.id is not None else fallback_id
    return Item(entry.instruction, image, source, item_id, entry.meta)


def image_from_bytes(data: bytes, limits: ImageLimits, field: str) -> PreparedImage:
    try:
        return prepare_image(data, limits)
    except EditJudgeError as exc:
        exc.message = f"{field}: {exc.message}"
        raise


def image_field(value: str, limits: ImageLimits, field: str) -> PreparedImage:
    """A JSON image field (base64 or data URL); errors name the ``field``."""
    try:
        return prepare_payload(value, limits)
    except EditJudgeError as exc:
        exc.message = f"{field}: {exc.message}"
        raise


def _bytes(entries: list[Item | Rejected]) -> int:
    total = 0
    for e in entries:
        if isinstance(e, Item):
            total += e.image.size + (e.source.size if e.source else 0)
    return total
