"""Router-wide backpressure: a budget of admitted items and image bytes.

Work beyond the budget is refused at once with 429 and a ``Retry-After`` hint instead of being
queued without bound. A request first holds its declared body size while the body is read and
parsed, so a flood of large requests against a full budget is refused before any body is read;
then it holds its items and image bytes until it is answered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import Overloaded


@dataclass
class Budget:
    """Counts items and image bytes of admitted, unfinished requests."""

    max_items: int
    max_bytes: int
    retry_after_s: float = 1.0
    items: int = 0
    bytes: int = 0

    @contextlib.contextmanager
    def admit(self, items: int, image_bytes: int) -> Iterator[None]:
        """Hold ``items`` and ``image_bytes`` for the duration of the block, or raise Overloaded.

        A single request larger than the whole budget is still admitted when nothing else is,
        so the limits bound concurrency without making large valid batches impossible.
        """
        idle = self.items == 0 and self.bytes == 0
        if not idle and (
            self.items + items > self.max_items or self.bytes + image_bytes > self.max_bytes
        ):
            raise Overloaded(
                f"router is at capacity ({self.items} items, {self.bytes} image bytes in flight);"
                " retry later",
                retry_after_s=self.retry_after_s,
            )
        self.items += items
        self.bytes += image_bytes
        try:
            yield
        finally:
            self.items -= items
            self.bytes -= image_bytes


def body_reservation(content_length: str | None, max_body_bytes: int) -> int:
    """Bytes to hold while a body is read: its declared length, else the most it may be."""
    declared = content_length or ""
    return int(declared) if declared.isdigit() else max_body_bytes
