"""The benchmark workload: 2 x 512x512 JPEG edits, pre-serialised bodies, unique per request.

Like ``../shared/gpu/load.py``: groups of 8 edits share a source image, every edited image is
unique. Encoding thousands of distinct JPEGs would cost the load generator more than the system
under test, so a few base JPEGs are made once and each request gets a unique 12-byte JPEG comment
(COM) segment spliced in right after the SOI marker. The prefix (SOI + COM) is 18 bytes, a multiple
of 3, so its base64 text (24 characters) can be concatenated with the precomputed base64 of the rest
of the file: a fresh, valid, never-seen-before image costs the generator two tiny encodes and a
``bytes.join``. The router cannot tell these from real distinct images (different bytes, digest
and base64 text; same decode cost).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

import orjson

from bench.overhead.protocol import SingleCall
from bench.workload import noisy_image
from editjudge.server.images import PreparedImage
from editjudge.server.protocols import Item, Sampling

GROUP = 8  # edits per source image
MODEL = "fake-judge"
INSTRUCTION = "make the sky purple and add a red kite"
_SLOT_S = b"@@SLOT-SOURCE@@"
_SLOT_E = b"@@SLOT-EDITED@@"


def jpeg(seed: int, size: int = 512, noise: int = 7_000, quality: int = 90) -> bytes:
    """A 512x512 JPEG of a flat colour with ``noise`` random pixels (~100 KB, hard to compress)."""
    return noisy_image(seed, size, noise, "JPEG", quality=quality)


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


class Bodies:
    """Request ``i`` -> a unique body; source images repeat within groups of ``GROUP``."""

    def __init__(self, template: Template, seed: int = 0, variants: int = 8) -> None:
        self.template = template
        # base64 of each base JPEG without its 2-byte SOI (the unique prefix supplies the SOI).
        self._rest = [base64.b64encode(jpeg(seed * 1000 + k)[2:]) for k in range(variants)]
        self._salt = seed << 64

    def body(self, i: int) -> bytes:
        group = i // GROUP
        src = unique_prefix_b64(self._salt | (1 << 63) | group) + self._rest[group % 2]
        edit = unique_prefix_b64(self._salt | i) + self._rest[2 + i % (len(self._rest) - 2)]
        return self.template.render(src, edit)
