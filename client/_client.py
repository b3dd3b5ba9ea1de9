"""``Client``: the blocking twin of :class:`AsyncClient`.

It runs an ``AsyncClient`` on a private event-loop thread (an anyio blocking portal), so both
behave the same in every detail (chunking, retries, image preparation) from one implementation.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import httpx

from ._async_client import DEFAULT_URL, AsyncClient
from ._batching import ResultCallback
from ._models import GroupResult, ImageInput, Item, ScoreResult, ServerInfo
from ._retry import RetryPolicy

T = TypeVar("T")


class Client:
    """Blocking client of an editjudge router; same arguments and behaviour as
    :class:`AsyncClient`. Use it as a context manager or call :meth:`close`.

    ``on_result`` callbacks of :meth:`score_many` run on the client's event-loop thread.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        batch_size: int = 16,
        max_pixels: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        def build() -> AsyncClient:
            return AsyncClient(
                base_url,
                api_key=api_key,
                timeout=timeout,
                retry=retry,
                concurrency=concurrency,
                batch_size=batch_size,
                max_pixels=max_pixels,
                transport=transport,
            )

        stack = contextlib.ExitStack()
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        self._portal = portal
        try:
            self._async: AsyncClient = portal.call(build)
        except BaseException:
            stack.close()
            raise
        self._closer = weakref.finalize(self, _shutdown, portal, self._async, stack)

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and stop the event-loop thread (idempotent)."""
        self._closer()

    def info(self, refresh: bool = False) -> ServerInfo:
        """``GET /info`` (model, protocols, limits), fetched once and cached."""
        return self._call(lambda: self._async.info(refresh))

    def score(
        self,
        image: ImageInput,
        instruction: str,
        source_image: ImageInput | None = None,
        *,
        id: str | None = None,
        protocol: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ScoreResult:
        """Score one edit; see :meth:`AsyncClient.score`."""
        return self._call(
            lambda: self._async.score(
                image, instruction, source_image, id=id, protocol=protocol, meta=meta
            )
        )

    def score_many(
        self,
        items: Iterable[Item | dict[str, Any]],
        *,
        protocol: str | None = None,
        on_result: ResultCallback | None = None,
    ) -> list[ScoreResult]:
        """Score many edits in input order; see :meth:`AsyncClient.score_many`."""
        return self._call(
            lambda: self._async.score_many(items, protocol=protocol, on_result=on_result)
        )

    def score_group(
        self,
        images: Sequence[ImageInput],
        instruction: str,
        source_image: ImageInput,
        *,
        ids: Sequence[str] | None = None,
        protocol: str | None = None,
    ) -> GroupResult:
        """Score K candidate edits of one source image; see :meth:`AsyncClient.score_group`."""
        return self._call(
            lambda: self._async.score_group(
                images, instruction, source_image, ids=ids, protocol=protocol
            )
        )

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        if not self._closer.alive:
            raise RuntimeError("this Client is closed")

        async def run() -> T:
            return await make()

        future = self._portal.start_task_soon(run)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C in the calling thread: stop the work, too
            raise


def _shutdown(
    portal: anyio.from_thread.BlockingPortal, client: AsyncClient, stack: contextlib.ExitStack
) -> None:
    try:
        portal.call(client.aclose)
    finally:
        stack.close()
