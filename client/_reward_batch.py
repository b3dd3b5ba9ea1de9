"""A reward call's inputs: checked against each other, cut into requests, encoded on demand.

Everything that can be wrong with the arguments (lengths, image types and shapes, groups without
a source or with mixed instructions) is found here, before anything is encoded or sent.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._images import ImagePolicy
from ._pixels import check, encode, is_pixels


@dataclass(frozen=True)
class Unit:
    """Items sent in one request: a plain batch, or one group (``group=True``)."""

    indices: list[int]
    group: bool


class Batch:
    """One call's inputs, checked, and its images encoded on demand (sources once each)."""

    def __init__(
        self,
        images: Sequence[Any],
        instructions: Sequence[str],
        sources: Sequence[Any] | None,
        policy: ImagePolicy,
        lossless: bool,
    ) -> None:
        self.images, self.instructions, self.sources = images, instructions, sources
        self.policy, self.lossless = policy, lossless
        self._encoded: dict[int, bytes] = {}
        self._gates: dict[int, threading.Lock] = {}  # one per shared source being encoded
        self._lock = threading.Lock()

    def image(self, index: int) -> bytes | Any:
        return self._bytes(self.images[index])

    def source(self, index: int) -> bytes | Any | None:
        value = None if self.sources is None else self.sources[index]
        return None if value is None else self._bytes(value, reuse=True)

    def group_source(self, unit: Unit) -> bytes | Any:
        """A group's source image: its first member's (:func:`plan` made sure there is one)."""
        assert self.sources is not None
        return self._bytes(self.sources[unit.indices[0]], reuse=True)

    def _bytes(self, value: Any, reuse: bool = False) -> bytes | Any:
        if not is_pixels(value):
            return value  # a path or encoded bytes: the client's own preparation handles it
        if not reuse:
            return encode(value, self.policy, lossless=self.lossless)
        # The K samples of a prompt usually share one source object: encode it once, even when
        # several requests' worker threads ask for it at the same moment.
        key = id(value)
        with self._lock:
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            found = self._encoded.get(key)
            if found is None:
                found = self._encoded[key] = encode(value, self.policy, lossless=self.lossless)
        return found


def align(
    images: list[Any],
    instructions: str | Iterable[str],
    sources: Iterable[Any] | None,
    group_ids: Sequence[Hashable] | None,
) -> tuple[list[str], list[Any] | None]:
    """Check the call's arguments against each other; instructions and sources as lists."""
    n = len(images)
    texts = [instructions] * n if isinstance(instructions, str) else list(instructions)
    source_list = None if sources is None else list(sources)
    for name, values in (("instructions", texts), ("source_images", source_list)):
        if values is not None and len(values) != n:
            raise ValueError(f"{len(values)} {name} for {n} images: give one per image")
    if group_ids is not None and len(group_ids) != n:
        raise ValueError(f"{len(group_ids)} group_ids for {n} images: give one per image")
    for i, image in enumerate(images):
        _check_image(image, f"images[{i}]")
    for i, source in enumerate(source_list or []):
        if source is not None:
            _check_image(source, f"source_images[{i}]")
    return texts, source_list


def _check_image(value: Any, where: str) -> None:
    if isinstance(value, str | bytes) or hasattr(value, "__fspath__"):
        return  # paths and encoded bytes are checked where they are read
    check(value, where)


def plan(
    n: int,
    texts: list[str],
    sources: list[Any] | None,
    group_ids: Sequence[Hashable] | None,
    batch_size: int,
) -> list[Unit]:
    """The requests of a call: batches of ``batch_size`` in order, or one per group."""
    if group_ids is None:
        return [
            Unit(list(range(s, min(n, s + batch_size))), False) for s in range(0, n, batch_size)
        ]
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(group_ids):
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        first = members[0]
        if sources is None or sources[first] is None:
            raise ValueError(f"group {key!r} has no source image: /score/group needs one")
        if any(texts[i] != texts[first] for i in members):
            raise ValueError(f"group {key!r} mixes instructions: a group shares one instruction")
    return [Unit(members, True) for members in groups.values()]
