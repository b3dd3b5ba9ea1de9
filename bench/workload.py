"""What the benchmarks send, and how a reply is read: the sources of :mod:`bench.loadgen`.

Every workload has the shape of ``../shared/gpu/load.py``, GRPO-like: groups of edits share a
source image, every edited image is unique (:mod:`bench.images`). The sources:

* :class:`ItemSource` (GPU runs): VIEScore items with 512x512 JPEGs, as ``POST /score`` bodies or as
  the exact chat-completions bodies the router would send (built with the router's own protocol
  code), so direct and routed runs give the engines identical work;
* :class:`TemplateSource` (CPU overhead): pre-serialised bodies that cost the generator almost
  nothing, each with never-seen-before images (see :func:`unique_prefix_b64`);
* :class:`BodySource`: bodies made up front, one request each (group requests, the soak's mix).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.images import jpeg, noisy_image
from bench.loadgen import Reply
from bench.router_app import SingleCall
from editjudge.server.images import ImageLimits, PreparedImage, prepare_image
from editjudge.server.protocols import Item, Sampling, VIEScore

GROUP = 8  # edits per source image
LIMITS = ImageLimits(10**8, 10**8, frozenset({"JPEG"}))
INSTRUCTION = "make the sky purple and add a red kite"


def read_score(url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
    """A ``/score`` or ``/score/group`` reply: one (backend, status) per item it carried."""
    status, raw = replies[0]
    if status != 200:
        return Reply(((url, f"http_{status}"),), detail=raw[:300].decode("utf-8", "replace"))
    data = orjson.loads(raw)
    results = data.get("results", [data])
    items = tuple(
        (str(r.get("backend")), "ok" if r["status"] == "ok" else r["error"]["code"])
        for r in results
    )
    counters = {
        "item_cached_prompt_tokens": sum(r.get("cached_prompt_tokens") or 0 for r in results),
        "prompt_tokens": data.get("prompt_tokens") or 0,
        "cached_prompt_tokens": data.get("cached_prompt_tokens") or 0,
    }
    bad = next((r for r in results if r["status"] != "ok"), None)
    return Reply(items, counters, orjson.dumps(bad).decode()[:300] if bad else "")


def read_chat(url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
    """The chat completions of one item, all sent to ``url``: ok when every one answered."""
    bad = next(((s, raw) for s, raw in replies if s != 200), None)
    if bad is None:
        return Reply(((url, "ok"),))
    return Reply(((url, f"http_{bad[0]}"),), detail=bad[1][:300].decode("utf-8", "replace"))


@dataclass(frozen=True)
class WorkItem:
    """One GPU-run item: a unique edit, its group's source and an instruction."""

    index: int
    source: bytes
    edit: bytes
    instruction: str

    def score_json(self, protocol: str | None = None) -> bytes:
        """The router request for this item."""
        body: dict[str, object] = {
            "id": str(self.index),
            "image": base64.b64encode(self.edit).decode(),
            "source_image": base64.b64encode(self.source).decode(),
            "instruction": self.instruction,
        }
        if protocol:
            body["protocol"] = protocol
        return orjson.dumps(body)

    def chat_bodies(self, model: str, reasoning_chars: int = 0, seed: int = 0) -> list[bytes]:
        """The chat-completions bodies the router sends for this item (VIEScore)."""
        item = Item(
            self.instruction,
            prepare_image(self.edit, LIMITS),
            prepare_image(self.source, LIMITS),
            str(self.index),
        )
        calls = VIEScore(reasoning_chars).calls(item)
        return [orjson.dumps(c.body(model, Sampling(seed=seed))) for c in calls]


def items(start: int, stop: int, step: int = 1) -> list[WorkItem]:
    """Items ``start..stop`` (every ``step``-th); item i's source is shared by its group of 8."""
    out = []
    for i in range(start, stop, step):
        group = i // GROUP
        source, edit = jpeg(1_000_000 + group), jpeg(i)
        out.append(WorkItem(i, source, edit, f"In group {group}: {INSTRUCTION}."))
    return out


@dataclass
class ItemSource:
    """GPU items ``offset + i``, straight to engines (``direct``) or through ``/score``."""

    mode: str  # direct | router
    model: str = "judge"
    offset: int = 0
    protocol: str | None = None
    reasoning: int = 0  # direct: VIEScore reasoning characters, as the router would ask
    bodies: dict[int, list[bytes]] = field(default_factory=dict)

    def prepare(self, indices: range) -> None:
        made = items(self.offset + indices.start, self.offset + indices.stop, indices.step)
        for i, w in zip(indices, made, strict=True):
            if self.mode == "direct":
                self.bodies[i] = w.chat_bodies(self.model, self.reasoning)
            else:
                self.bodies[i] = [w.score_json(self.protocol)]

    def task(self, i: int) -> Sequence[bytes]:
        return self.bodies[i]

    def read(self, url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
        return read_chat(url, replies) if self.mode == "direct" else read_score(url, replies)


@dataclass
class BodySource:
    """Bodies made up front; request ``i`` sends ``bodies[i % len(bodies)]``."""

    bodies: Sequence[bytes]
    chat: bool = False  # replies are chat completions, not /score results

    def prepare(self, indices: range) -> None:
        pass

    def task(self, i: int) -> Sequence[bytes]:
        return [self.bodies[i % len(self.bodies)]]

    def read(self, url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
        return read_chat(url, replies) if self.chat else read_score(url, replies)


def data_url(raw: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def group(g: int, k: int, seed: int, size: int = 512) -> dict[str, Any]:
    """Group ``g``: ``k`` candidate edits of one source, each image unique to ``seed`` and ``g``."""
    base = seed + g * (k + 1)
    return {
        "source_image": data_url(jpeg(base, size)),
        "instruction": f"Instruction {g}: {INSTRUCTION}.",
        "images": [data_url(jpeg(base + 1 + c, size)) for c in range(k)],
        "ids": [f"g{g}-c{c}" for c in range(k)],
    }


def group_body(g: dict[str, Any], route: str, protocol: str) -> bytes:
    """One group as ``POST /score/group`` (``route="group"``) or as a ``/score`` batch."""
    if route == "group":
        return orjson.dumps({**g, "protocol": protocol})
    batch = [
        {"id": i, "image": img, "source_image": g["source_image"], "instruction": g["instruction"]}
        for i, img in zip(g["ids"], g["images"], strict=True)
    ]
    return orjson.dumps({"items": batch, "protocol": protocol})


# The CPU overhead workload. Encoding thousands of distinct JPEGs would cost the generator more than
# the system under test, so a few base JPEGs are made once and each request gets a unique 12-byte
# JPEG comment (COM) segment spliced in right after the SOI marker. The prefix (SOI + COM) is 18
# bytes, a multiple of 3, so its base64 text (24 characters) can be concatenated with the
# precomputed base64 of the rest of the file: a fresh, valid, never-seen-before image costs two
# tiny encodes and a ``bytes.join``. The router cannot tell these from real distinct images.
MODEL = "fake-judge"
_SLOT_S = b"@@SLOT-SOURCE@@"
_SLOT_E = b"@@SLOT-EDITED@@"


def overhead_jpeg(seed: int, size: int = 512) -> bytes:
    """A 512x512 JPEG of a flat colour with 7000 random pixels (~100 KB, hard to compress)."""
    return noisy_image(seed, size, 7_000, "JPEG", quality=90)


def unique_prefix_b64(tag: int) -> bytes:
    """Base64 of SOI + a COM segment carrying ``tag``: 18 bytes -> 24 base64 characters."""
    com = b"\xff\xfe" + struct.pack(">H", 14) + tag.to_bytes(12, "big")
    return base64.b64encode(b"\xff\xd8" + com)


@dataclass(frozen=True)
class Template:
    """A pre-serialised body with two holes for the source and edited images' base64 text."""

    parts: tuple[bytes, bytes, bytes]  # before source, between, after edited

    def render(self, source_b64: bytes, edited_b64: bytes) -> bytes:
        return b"".join((self.parts[0], source_b64, self.parts[1], edited_b64, self.parts[2]))


def _split(body: bytes) -> Template:
    head, _, rest = body.partition(_SLOT_S)
    mid, _, tail = rest.partition(_SLOT_E)
    assert head and mid and tail, "slots not found in the body"
    return Template((head, mid, tail))


def _placeholder(slot: bytes) -> PreparedImage:
    return PreparedImage(b"", "image/jpeg", 512, 512, "", slot.decode("latin-1"))


def chat_template() -> Template:
    """The chat-completions body a client sends straight to an engine (same as the router's)."""
    item = Item(INSTRUCTION, _placeholder(_SLOT_E), _placeholder(_SLOT_S), None)
    (call,) = SingleCall().calls(item)
    return _split(orjson.dumps(call.body(MODEL, Sampling())))


def score_template(protocol: str) -> Template:
    """The ``POST /score`` body: source and edited image as data URLs, instruction, protocol."""
    body = {
        "source_image": "data:image/jpeg;base64," + _SLOT_S.decode("latin-1"),
        "instruction": INSTRUCTION,
        "image": "data:image/jpeg;base64," + _SLOT_E.decode("latin-1"),
        "protocol": protocol,
    }
    return _split(orjson.dumps(body))


class TemplateSource:
    """Request ``i`` -> a unique body; source images repeat within groups of ``GROUP``.

    A reply counts as ok when it is a 200 holding ``expect`` (a substring test: parsing each
    reply would add to the generator's CPU time, which the overhead benchmark reports).
    """

    def __init__(self, template: Template, expect: bytes, seed: int = 0, variants: int = 8):
        self.template, self.expect = template, expect
        # base64 of each base JPEG without its 2-byte SOI (the unique prefix supplies the SOI).
        self._rest = [base64.b64encode(overhead_jpeg(seed * 1000 + k)[2:]) for k in range(variants)]
        self._salt = seed << 64

    def body(self, i: int) -> bytes:
        group = i // GROUP
        src = unique_prefix_b64(self._salt | (1 << 63) | group) + self._rest[group % 2]
        edit = unique_prefix_b64(self._salt | i) + self._rest[2 + i % (len(self._rest) - 2)]
        return self.template.render(src, edit)

    def prepare(self, indices: range) -> None:
        pass

    def task(self, i: int) -> Sequence[bytes]:
        return [self.body(i)]

    def read(self, url: str, replies: Sequence[tuple[int, bytes]]) -> Reply:
        status, raw = replies[0]
        if status == 200 and self.expect in raw:
            return Reply(((url, "ok"),))
        return Reply(((url, f"http_{status}"),), detail=raw[:300].decode("utf-8", "replace"))
