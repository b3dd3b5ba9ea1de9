"""From request bodies to validated :class:`~editjudge.server.protocols.Item` objects.

JSON bodies are parsed with orjson; a batch is validated item by item so one bad item becomes an
error result in its place instead of failing the request. Each item's protocol is resolved for its
``meta`` and prepares the item (``gedit`` resizes images as its reference does). Pixel decodes
never run on the event loop: a request with an image that needs one (anything but a pass-through
JPEG under the header check), or a batch of ``THREAD_MIN_ITEMS`` or more, is prepared in a bounded
pool of worker threads (:class:`ImageWorkers`), where Pillow and zlib release the GIL; each decode
charges its pixels to the request's budget hold while it runs; so does a protocol's preparation
that decodes (:attr:`~editjudge.server.protocols.ScoringProtocol.decodes_at_intake`). The rest
(JSON parsing, the header check) stays on the loop: it holds the GIL throughout, so a thread would
stall the loop just as long and add a GIL hand-over on every loop wake-up while it runs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import EditJudgeError, InvalidRequest, ServiceError, TooManyItems
from .images import (
    B64Image,
    ImageLimits,
    Memory,
    PreparedImage,
    prepare_image,
)
from .jsonbody import TOKEN_MAX, load_score_json
from .passthrough import prepare_payload, prepare_without_decode
from .protocols import Item, ProtocolRegistry, Rejected, ScoringProtocol
from .schemas import META_MAX_BYTES, BatchRequest, ScoreItem, meta_size
from .upload import Body

# Below this many items the thread hop costs more than it saves.
THREAD_MIN_ITEMS = 4

T = TypeVar("T")


@dataclass(frozen=True)
class Prepare:
    """Turns a JSON image field's value into a validated image (raises a 4xx error);
    ``decodes``: it may decode pixels, so it runs in a worker thread. ``cut``: the body's images
    cut out before the parse (:mod:`editjudge.server.jsonbody`), by their placeholders."""

    fn: Callable[[str | B64Image], PreparedImage]
    decodes: bool
    cut: Mapping[str, B64Image] = _field(default_factory=dict)

    def __call__(self, value: str) -> PreparedImage:
        # A placeholder is short: a long value is never looked up (hashing it is not free).
        image = self.cut.get(value) if self.cut and len(value) < TOKEN_MAX else None
        return self.fn(value if image is None else image)


class ImageWorkers:
    """A bounded pool of threads for image work, so decoding never runs on the event loop."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="editjudge-image")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _NeedsWorker(Exception):
    """An image needs a pixel decode: the request's image work moves to the worker threads."""


@dataclass(frozen=True)
class Intake:
    """What turning a body into work needs."""

    protocols: ProtocolRegistry
    limits: ImageLimits
    max_items: int
    workers: ImageWorkers

    async def run(
        self,
        job: Callable[[Prepare], T],
        memory: Memory,
        inline: bool,
        cut: Mapping[str, B64Image] | None = None,
    ) -> T:
        """``job(prepare)``: on the event loop if ``inline`` and no image needs a decode,
        else in a worker thread, where ``prepare`` decodes and charges ``memory``."""
        cut = cut or {}
        # What the inline pass checked, by id(value) (the values live as long as the request):
        # when one image then sends the job to a worker, the others are not checked again.
        checked: dict[int, PreparedImage] = {}
        if inline:
            inline_prepare = functools.partial(self._without_decode, checked)
            try:
                return job(Prepare(inline_prepare, decodes=False, cut=cut))
            except _NeedsWorker:
                pass
        full = functools.partial(prepare_payload, limits=self.limits, memory=memory)
        prepare = Prepare(_once_each(full, checked), decodes=True, cut=cut)
        return await self.workers.run(job, prepare)

    def _without_decode(
        self, checked: dict[int, PreparedImage], value: str | B64Image
    ) -> PreparedImage:
        image = prepare_without_decode(value, self.limits)
        if image is None:
            raise _NeedsWorker
        checked[id(value)] = image
        return image


@dataclass(frozen=True)
class Parsed:
    """A request turned into work: entries (items or per-item errors) and their protocols.

    ``image_bytes`` is what the images hold while the request is scored: their base64 text.
    """

    entries: list[Item | Rejected]
    protocols: list[ScoringProtocol]
    batch: bool
    image_bytes: int


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


async def parse_json_body(body: Body, intake: Intake, memory: Memory) -> Parsed:
    """A ``/score`` JSON body (one item or a batch) turned into work; the raw bytes are taken
    from ``body`` and dropped once parsed, so they do not outlive the parse."""
    raw = body.take()
    obj, cut = load_score_json(raw)
    del raw
    items = obj.get("items")
    small = not (isinstance(items, list) and len(items) >= THREAD_MIN_ITEMS)
    return await intake.run(functools.partial(_parse_obj, obj, intake), memory, small, cut)


def _parse_obj(obj: dict[str, Any], intake: Intake, prepare: Prepare) -> Parsed:
    registry = intake.protocols
    if "items" not in obj:
        single = validate(ScoreItem, obj)
        item = build_item(single, prepare, fallback_id=None)
        protocol, item = resolve(registry.get(single.protocol), item, prepare)
        return Parsed([item], [protocol], False, held_bytes([item]))
    batch = validate(BatchRequest, obj)
    if len(batch.items) > intake.max_items:
        raise TooManyItems(f"batch has {len(batch.items)} items; the limit is {intake.max_items}")
    default = registry.get(batch.protocol)
    entries = _batch_entries(batch.items, registry, default, prepare)
    items = [e for e, _ in entries]
    return Parsed(items, [p for _, p in entries], True, held_bytes(items))


def resolve(
    protocol: ScoringProtocol, item: Item, prepare: Prepare | None = None
) -> tuple[ScoringProtocol, Item]:
    """The protocol variant for the item's ``meta`` and the item as that protocol's judge sees it
    (:meth:`ScoringProtocol.specialize`, :meth:`ScoringProtocol.prepare`). A preparation that
    decodes moves the request's image work to a worker thread (``prepare`` does not decode)."""
    chosen = protocol.specialize(item.meta)
    if chosen.decodes_at_intake and prepare is not None and not prepare.decodes:
        raise _NeedsWorker
    return chosen, chosen.prepare(item)


def _batch_entries(
    raw_items: list[Any], registry: ProtocolRegistry, default: ScoringProtocol, prepare: Prepare
) -> list[tuple[Item | Rejected, ScoringProtocol]]:
    out: list[tuple[Item | Rejected, ScoringProtocol]] = []
    for index, raw in enumerate(raw_items):
        try:
            entry = validate(ScoreItem, raw)
            chosen = registry.get(entry.protocol) if entry.protocol else default
            item = build_item(entry, prepare, fallback_id=str(index))
            protocol, item = resolve(chosen, item, prepare)
            out.append((item, protocol))
        except (ServiceError, _NeedsWorker):
            raise  # the budget cannot hold this item's decode, or the work moves to a thread
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


def build_item(entry: ScoreItem, prepare: Prepare, fallback_id: str | None) -> Item:
    image = image_field(entry.image, prepare, "image")
    source = (
        image_field(entry.source_image, prepare, "source_image") if entry.source_image else None
    )
    item_id = entry.id if entry.id is not None else fallback_id
    return Item(entry.instruction, image, source, item_id, entry.meta)


def image_from_bytes(
    data: bytes, limits: ImageLimits, field: str, memory: Memory | None = None
) -> PreparedImage:
    """An uploaded file's bytes, validated (a pixel decode: call it in a worker thread)."""
    try:
        if memory is None:
            return prepare_image(data, limits)
        return prepare_image(data, limits, memory=memory)
    except EditJudgeError as exc:
        exc.message = f"{field}: {exc.message}"
        raise


def image_field(value: str, prepare: Callable[[str], PreparedImage], field: str) -> PreparedImage:
    """A JSON image field (base64 or data URL); errors name the ``field``."""
    try:
        return prepare(value)
    except EditJudgeError as exc:
        exc.message = f"{field}: {exc.message}"
        raise


def _once_each(
    prepare: Callable[[str | B64Image], PreparedImage],
    checked: Mapping[int, PreparedImage],
) -> Callable[[str | B64Image], PreparedImage]:
    """``prepare``, with a value seen before given the image made of it then: a batch whose items
    share a source image keeps (and sends) one copy of it. A value in ``checked`` (by id) has
    its image made already."""
    seen: dict[str | B64Image, PreparedImage] = {}

    def once(value: str | B64Image) -> PreparedImage:
        image = seen.get(value)
        if image is None:
            image = checked.get(id(value))
            seen[value] = image = prepare(value) if image is None else image
        return image

    return once


def held_bytes(entries: Sequence[Item | Rejected], also: Sequence[PreparedImage] = ()) -> int:
    """What the entries' images and ``also`` hold (base64 text, each image once), as the budget
    counts it."""
    images = {id(image): image for image in also}
    for e in entries:
        if isinstance(e, Item):
            images[id(e.image)] = e.image
            if e.source is not None:
                images[id(e.source)] = e.source
    return sum(image.held_bytes for image in images.values())
