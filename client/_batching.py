"""``score_many``'s engine: chunk the items, keep a bounded number of batch requests in flight.

Items are read lazily in chunks of ``batch_size``. A chunk's images are prepared in a worker
thread (Pillow releases the GIL), packed into as few bodies as ``max_body_bytes`` allows, and
posted. Items the router could not place right now (no healthy backend) are posted again after a
backoff; everything else the router answers is a result. The first request-level error that
outlasts the retries cancels the other chunks and is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import anyio
import anyio.to_thread
import httpx

from ._exceptions import InputError
from ._images import ImagePolicy
from ._models import Item, Limits, ScoreResult, as_item
from ._retry import RetryPolicy
from ._wire import batch_body, pack, parse_batch, sized_item_json

ResultCallback = Callable[[int, ScoreResult], None]
Post = Callable[[bytes], Awaitable[httpx.Response]]


class BatchRunner:
    """One ``score_many`` call. ``deliver(index, result)`` receives every result exactly once."""

    def __init__(
        self,
        post: Post,
        retry: RetryPolicy,
        concurrency: int,
        limits: Limits,
        images: ImagePolicy,
        protocol: str | None,
        deliver: ResultCallback,
    ) -> None:
        self.post, self.retry, self.concurrency = post, retry, concurrency
        self.limits, self.images, self.protocol = limits, images, protocol
        self.deliver = deliver
        self._failure: Exception | None = None

    async def run(self, items: Iterable[Item | dict[str, Any]], chunk_size: int) -> None:
        limiter = anyio.Semaphore(self.concurrency)
        async with anyio.create_task_group() as tg:
            for start, chunk in _chunks(items, chunk_size):
                await limiter.acquire()
                if self._failure is not None:
                    break
                tg.start_soon(self._chunk, start, chunk, limiter, tg.cancel_scope)
        if self._failure is not None:
            raise self._failure

    async def _chunk(
        self,
        start: int,
        chunk: list[Item | dict[str, Any]],
        limiter: anyio.Semaphore,
        scope: anyio.CancelScope,
    ) -> None:
        try:
            results = await self._score_chunk(start, chunk)
            for offset, result in enumerate(results):
                self.deliver(start + offset, result)
        except Exception as exc:
            if self._failure is None:
                self._failure = exc
            scope.cancel()
        finally:
            limiter.release()

    async def _score_chunk(
        self, start: int, chunk: list[Item | dict[str, Any]]
    ) -> list[ScoreResult]:
        prepared = await anyio.to_thread.run_sync(self._prepare, start, chunk)
        results = {i: p for i, p in enumerate(prepared) if isinstance(p, ScoreResult)}
        todo = [i for i, p in enumerate(prepared) if isinstance(p, bytes)]
        parts = [p for p in prepared if isinstance(p, bytes)]
        for group in pack([len(p) for p in parts], self.protocol, self.limits):
            got = await self._post_with_item_retries([parts[g] for g in group])
            for g, result in zip(group, got, strict=True):
                results[todo[g]] = result
        return [results[i] for i in range(len(prepared))]

    def _prepare(self, start: int, chunk: list[Item | dict[str, Any]]) -> list[bytes | ScoreResult]:
        out: list[bytes | ScoreResult] = []
        for offset, raw in enumerate(chunk):
            item = as_item(raw)
            item_id = str(item.id) if item.id is not None else str(start + offset)
            try:
                part = sized_item_json(item, item_id, self.images, self.protocol, self.limits)
            except InputError as exc:
                out.append(ScoreResult.failed(item_id, exc.code, exc.message, item.meta))
            else:
                out.append(part)
        return out

    async def _post_with_item_retries(self, parts: list[bytes]) -> list[ScoreResult]:
        results: dict[int, ScoreResult] = {}
        pending = list(range(len(parts)))
        attempt = 0
        while True:
            response = await self.post(batch_body([parts[i] for i in pending], self.protocol))
            for i, result in zip(pending, parse_batch(response, len(pending)), strict=True):
                results[i] = result
            pending = [i for i in pending if self.retry.retry_item(results[i])]
            if not pending or attempt + 1 >= self.retry.max_attempts:
                return [results[i] for i in range(len(parts))]
            await anyio.sleep(self.retry.backoff(attempt))
            attempt += 1


def _chunks(
    items: Iterable[Item | dict[str, Any]], size: int
) -> Iterator[tuple[int, list[Item | dict[str, Any]]]]:
    iterator = iter(items)
    start = 0
    while chunk := list(islice(iterator, size)):
        yield start, chunk
        start += len(chunk)
