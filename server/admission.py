"""Router-wide backpressure: a budget of admitted items and of the memory requests hold.

Work beyond the budget is refused at once with 429 and a ``Retry-After`` hint instead of being
queued without bound. Each request holds one :class:`Hold` that follows what it really keeps in
memory as it moves on:

* while its body is read, twice the bytes received so far (the raw bytes now, their parsed text
  next), never its declared or maximum length, so a slow upload holds only what it sent; what
  was received also counts against ``max_upload_bytes``, the part of the budget that unfinished
  bodies may hold, so slow uploads cannot lock finished work out. A declared length that could
  not fit now is refused before anything is read;
* while the body is parsed, the same (then the raw bytes are dropped);
* while an image is decoded (in a worker thread), its decoded pixels;
* while it is scored, its items and the base64 text of its images (one copy each: the engine
  bodies stream that same text, see :mod:`editjudge.server.bodies`).

A request alone in the router may exceed the limits, so the budget bounds concurrency without
making large valid requests impossible. Holds may be charged from image worker threads, hence the
lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import Overloaded


@dataclass
class Budget:
    """Items and bytes held by unfinished requests, against their limits."""

    max_items: int
    max_bytes: int
    retry_after_s: float = 1.0
    max_upload_bytes: int | None = None  # None: uploads share the whole byte budget
    items: int = 0
    bytes: int = 0
    uploading: int = 0
    peak_bytes: int = 0  # highest ``bytes`` since the last :meth:`reset_peak`
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hold(self) -> Hold:
        """An empty hold for one request; release it when the request ends."""
        return Hold(self)

    @contextlib.contextmanager
    def admit(self, items: int, image_bytes: int) -> Iterator[None]:
        """Hold ``items`` and ``image_bytes`` for the duration of the block, or raise Overloaded."""
        hold = self.hold()
        hold.charge(items=items, nbytes=image_bytes)
        try:
            yield
        finally:
            hold.release()

    def refuse_if_full(self) -> None:
        """Raise Overloaded if no request could be admitted now: refused before its body is read."""
        with self._lock:
            busy = self.items > 0 or self.bytes > 0
            if busy and (self.items >= self.max_items or self.bytes >= self.max_bytes):
                raise self._refuse()

    def reset_peak(self) -> None:
        """Restart ``peak_bytes`` from what is held now."""
        with self._lock:
            self.peak_bytes = self.bytes

    def _refuse(self) -> Overloaded:
        return Overloaded(
            f"router is at capacity ({self.items} items, {self.bytes} bytes in flight);"
            " retry later",
            retry_after_s=self.retry_after_s,
        )


class Hold:
    """What one request holds in its :class:`Budget`; charges grow and shrink as it moves on."""

    __slots__ = ("_budget", "_closed", "bytes", "items", "uploading")

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._closed = False
        self.items = self.bytes = self.uploading = 0

    def charge(self, *, items: int = 0, nbytes: int = 0, uploading: int = 0) -> None:
        """Add to (or, with negative values, take from) what this request holds.

        Growth that does not fit raises :class:`~editjudge.server.errors.Overloaded`, unless
        nothing else holds anything; the hold is then unchanged.
        """
        b = self._budget
        with b._lock:
            if self._closed:
                return  # the request ended while a worker thread was still busy for it
            self._check(items, nbytes, uploading)
            self.items += items
            self.bytes += nbytes
            self.uploading += uploading
            b.items += items
            b.bytes += nbytes
            b.uploading += uploading
            b.peak_bytes = max(b.peak_bytes, b.bytes)

    def require(self, *, nbytes: int, uploading: int) -> None:
        """Raise Overloaded unless this much more would fit now (nothing is charged)."""
        with self._budget._lock:
            self._check(0, nbytes, uploading)

    def _check(self, items: int, nbytes: int, uploading: int) -> None:
        b = self._budget
        alone = b.items == self.items and b.bytes == self.bytes
        if not alone and (
            (items > 0 and b.items + items > b.max_items)
            or (nbytes > 0 and b.bytes + nbytes > b.max_bytes)
            or (
                uploading > 0
                and b.max_upload_bytes is not None
                and b.uploading + uploading > b.max_upload_bytes
            )
        ):
            raise b._refuse()

    def parsing(self) -> None:
        """The body has arrived: it no longer counts against the upload share (its bytes, already
        charged twice as they arrived, stay: the raw body and its parsed text)."""
        self.charge(uploading=-self.uploading)

    def settle(self, items: int, nbytes: int) -> None:
        """Replace what is held by ``items`` and ``nbytes`` (nothing uploading), in one step."""
        self.charge(items=items - self.items, nbytes=nbytes - self.bytes, uploading=-self.uploading)

    @contextlib.contextmanager
    def borrow(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` more for the block (e.g. an image's decoded pixels)."""
        self.charge(nbytes=nbytes)
        try:
            yield
        finally:
            self.charge(nbytes=-nbytes)

    def release(self) -> None:
        """Give everything back; later charges (from a straggling worker thread) are ignored."""
        b = self._budget
        with b._lock:
            if self._closed:
                return
            self._closed = True
            b.items -= self.items
            b.bytes -= self.bytes
            b.uploading -= self.uploading
            self.items = self.bytes = self.uploading = 0
