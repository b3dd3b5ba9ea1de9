"""Engine request bodies that share the images' base64 text instead of copying it.

A chat-completions body carries each of its images as a data URL, and an item's calls repeat them
(VIEScore's two calls both show the edited image; a group's candidates all show its source).
Serialised whole, every call would copy every image it shows, and those copies would live as long
as the call. Here a call is serialised with a short placeholder in place of each image's base64
text, and the body is the list of the JSON pieces around the placeholders with the image's own
bytes (:attr:`PreparedImage.b64_bytes`, the one copy intake kept) between them. The transport
streams the pieces with a ``Content-Length`` (see :mod:`editjudge.server.engine`), so a body costs
only its prompt text, whatever its images weigh.

Protocols are unaware of this: they render an item whose images are stand-ins with the same
format and size and a placeholder for base64 text. A placeholder carries a random per-process
nonce, so no instruction can forge one.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import orjson

from .images import PreparedImage

if TYPE_CHECKING:
    from .protocols import Call, Item, Sampling

_NONCE = "~ej" + secrets.token_hex(12)


class EngineBody:
    """A request body as chunks, some of them shared; iterate it (async) to send it."""

    __slots__ = ("chunks", "length")

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = tuple(chunks)
        self.length = sum(len(c) for c in self.chunks)

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)

    def __len__(self) -> int:
        return self.length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _token(index: int) -> str:
    return f"{_NONCE}x{index}~"


@functools.lru_cache(maxsize=64)
def _pattern(count: int) -> re.Pattern[bytes]:
    """The first ``count`` placeholders, any of them: built once per count, not per body."""
    return re.compile(b"|".join(re.escape(_token(i).encode()) for i in range(count)))


class _Splice:
    """Stand-ins for an item's images, and how to put the real base64 text back."""

    def __init__(self) -> None:
        self.texts: dict[bytes, bytes] = {}  # placeholder -> base64 text
        self._seen: dict[int, PreparedImage] = {}

    def stand_in(self, image: PreparedImage) -> PreparedImage:
        found = self._seen.get(id(image))
        if found is not None:
            return found
        token = _token(len(self.texts))
        self.texts[token.encode()] = image.b64_bytes
        stand_in = PreparedImage(None, image.mime, image.width, image.height, "", token)
        self._seen[id(image)] = stand_in
        return stand_in

    def body(self, call: Call, model: str, sampling: Sampling) -> EngineBody:
        blob = orjson.dumps(call.body(model, sampling))
        if not self.texts:
            return EngineBody([blob])
        chunks: list[bytes] = []
        start = 0
        for match in _pattern(len(self.texts)).finditer(blob):
            chunks += (blob[start : match.start()], self.texts[match.group()])
            start = match.end()
        chunks.append(blob[start:])
        return EngineBody(chunks)


def item_bodies(
    calls: Callable[[Item], Sequence[Call]], item: Item, model: str, sampling: Sampling
) -> dict[str, EngineBody]:
    """Every call's body for ``item`` (``calls`` is the protocol's), keyed by call name."""
    splice = _Splice()
    stand_in = dataclasses.replace(
        item,
        image=splice.stand_in(item.image),
        source=splice.stand_in(item.source) if item.source is not None else None,
    )
    return {c.name: splice.body(c, model, sampling) for c in calls(stand_in)}


def prefix_body(
    prefix: Callable[[PreparedImage, str], Call | None],
    source: PreparedImage,
    instruction: str,
    model: str,
    sampling: Sampling,
) -> EngineBody | None:
    """The body of a group's priming call (``prefix`` is the protocol's), if it has one."""
    splice = _Splice()
    call = prefix(splice.stand_in(source), instruction)
    return splice.body(call, model, sampling) if call is not None else None
