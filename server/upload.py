"""Reading request bodies: charged as they arrive, with a minimum upload rate.

Handlers read their body here, after authentication (checked first thing in the handler; nothing
earlier reads the body). Each chunk is charged to the request's
:class:`~editjudge.server.admission.Hold` as it arrives, both as bytes (twice: the raw body, then
its parsed text) and as upload bytes, so a request holds what it has received, never its declared
or maximum length, and the share of the budget that unfinished bodies may hold is bounded. A
declared length that could not fit now is refused before anything is read, as it would be part-way
through. The body must arrive at a minimum rate, the way Apache's ``mod_reqtimeout`` sets it:
complete within ``timeout_s`` plus one second per ``min_rate`` bytes received, or 408
``body_timeout``. A caller that disconnects mid-upload ends the request with one log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.requests import Request

from .admission import Hold
from .config import Settings
from .errors import BodyTimeout, ClientDisconnected

log = logging.getLogger("editjudge.upload")


@dataclass(frozen=True)
class UploadLimits:
    """How slowly a body may arrive: ``timeout_s`` plus one second per ``min_rate`` bytes."""

    timeout_s: float
    min_rate: int

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(settings.body_timeout_s, settings.body_min_rate)


async def body_chunks(
    request: Request, hold: Hold, limits: UploadLimits
) -> AsyncGenerator[bytes, None]:
    """The body's chunks as they arrive, each charged to ``hold`` first (429 if it does not fit):
    twice its length as bytes (the raw body, then its parsed text), once as upload bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():  # would be refused part-way: refuse it before reading anything
        hold.require(nbytes=2 * int(declared), uploading=int(declared))
    loop = asyncio.get_running_loop()
    start = loop.time()
    received = 0
    while True:
        try:
            async with asyncio.timeout_at(start + limits.timeout_s + received / limits.min_rate):
                message = await request.receive()
        except TimeoutError:
            raise BodyTimeout(
                f"the request body arrived too slowly ({received} bytes in"
                f" {loop.time() - start:.1f}s; at least {limits.min_rate} bytes/s are needed)"
            ) from None
        if message["type"] == "http.disconnect":
            log.info("%s: client disconnected after %d body bytes", request.url.path, received)
            raise ClientDisconnected("the client disconnected before its body was read")
        chunk: bytes = message.get("body", b"")
        if chunk:
            hold.charge(nbytes=2 * len(chunk), uploading=len(chunk))
            received += len(chunk)
            yield chunk
        if not message.get("more_body", False):
            return


class Body:
    """A whole request body, as the chunks it arrived in (usually one: the server buffers what
    came before the handler asks), joined only when there are several."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def take(self) -> bytes:
        """The body's bytes, handed over: this object keeps no reference to them, so once the
        caller has parsed them and dropped its own, they are freed."""
        chunks, self._chunks = self._chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, hold: Hold, limits: UploadLimits) -> Body:
    """The whole body, charged to ``hold`` as it arrives (see :func:`body_chunks`)."""
    return Body([chunk async for chunk in body_chunks(request, hold, limits)])
