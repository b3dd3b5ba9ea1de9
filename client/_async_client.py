"""``AsyncClient``: score image edits against an editjudge router, asynchronously.

The one implementation of the client: chunking, retries, image preparation and the wire format
live here; :class:`~editjudge.client.Client` (``_client``) runs it on a private event-loop thread.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

from ._batching import BatchRunner, ResultCallback
from ._exceptions import EditJudgeError
from ._group import group_request, parse_group
from ._images import ImagePolicy
from ._models import GroupResult, ImageInput, Item, ScoreResult, ServerInfo
from ._retry import RetryPolicy
from ._transport import before_connecting, connection_error
from ._wire import error_from_response, parse_info, parse_result, sized_item_json

T = TypeVar("T")

DEFAULT_URL = "http://localhost:8000"
API_KEY_ENV = "EDITJUDGE_API_KEY"
_CONNECT_TIMEOUT_S = 10.0
_INFO_TIMEOUT_S = 30.0
# Wait this much longer than the router's own request deadline: by then it has answered (504)
# unless the connection is dead.
_DEADLINE_MARGIN_S = 30.0
_DEFAULT_DEADLINE_S = 600.0
_FALLBACK_CONCURRENCY = 4


def normalise_url(url: str) -> str:
    """``gpu-box:8000`` -> ``http://gpu-box:8000``; anything but http(s) is a ``ValueError``."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


def _version() -> str:
    try:
        return importlib.metadata.version("editjudge")
    except importlib.metadata.PackageNotFoundError:
        return "0"


class AsyncClient:
    """Asynchronous client of an editjudge router.

    Args:
        base_url: the router, e.g. ``"http://gpu-box:8000"``.
        api_key: sent as ``Authorization: Bearer <key>``; defaults to ``$EDITJUDGE_API_KEY``.
        timeout: seconds to wait for one answer; default: the router's request deadline + 30 s.
        retry: the :class:`RetryPolicy` (429, 502, 503, timeouts, broken connections, with
            backoff). A server that cannot be reached at all fails at once, unless it has
            answered this client before (then it is most likely restarting, and is waited for).
        concurrency: batch requests in flight at once in :meth:`score_many`; default: enough to
            keep the items the router suggests (``GET /info`` ``capacity``) in flight, so a big
            box is fed as well as a small one (see :meth:`concurrency_for`).
        batch_size: items per batch request (also capped by the router's ``max_batch_items``).
        max_pixels: downscale images above this many pixels, even if the router allows more.
        http_client, transport: bring your own ``httpx.AsyncClient`` or transport (tests, proxies).
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
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if (concurrency is not None and concurrency < 1) or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        self.base_url = normalise_url(base_url)
        self.retry = retry or RetryPolicy()
        self.concurrency, self.batch_size, self.max_pixels = concurrency, batch_size, max_pixels
        self._timeout = timeout
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"user-agent": f"editjudge-client/{_version()}"}
        if key:
            self._headers["authorization"] = f"Bearer {key}"
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport)
        self._info: ServerInfo | None = None
        # Whether the server has ever answered: until it has, "cannot connect" means a wrong URL
        # and is raised at once; afterwards it means a restart, and is retried (see _retry).
        self._reached = False
        self._info_lock: anyio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"  # never the key

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def info(self, refresh: bool = False) -> ServerInfo:
        """``GET /info`` (model, protocols, limits), fetched once and cached."""
        if self._info_lock is None:
            self._info_lock = anyio.Lock()
        async with self._info_lock:
            if self._info is None or refresh:
                response = await self.request("GET", "/info", timeout=_INFO_TIMEOUT_S)
                self._info = parse_info(response)
        return self._info

    async def score(
        self,
        image: ImageInput,
        instruction: str,
        source_image: ImageInput | None = None,
        *,
        id: str | None = None,
        protocol: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ScoreResult:
        """Score one edit. Raises :class:`InputError` or :class:`APIError` subclasses.

        A judge reply without a valid score is a result with ``status == "error"``, not an error.
        ``meta`` (a JSON object of at most 4 KB) comes back unchanged in the result.
        """
        item = Item(image, instruction, source_image, id, protocol, meta)
        info = await self.info()
        body = await anyio.to_thread.run_sync(
            sized_item_json, item, id, self._images(info), None, info.limits
        )
        response = await self.request("POST", "/score", content=body, timeout=self._deadline(info))
        return parse_result(response)

    async def score_many(
        self,
        items: Iterable[Item | dict[str, Any]],
        *,
        protocol: str | None = None,
        on_result: ResultCallback | None = None,
    ) -> list[ScoreResult]:
        """Score many edits in batch requests; results come back in input order.

        ``items`` is consumed lazily. ``on_result(index, result)`` is called as results arrive
        (in completion order). Items that fail (here or on the router) are error results; only
        request-level trouble that outlasts the retries raises.
        """
        info = await self.info()
        results: dict[int, ScoreResult] = {}

        def deliver(index: int, result: ScoreResult) -> None:
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        deadline = self._deadline(info)

        async def post(body: bytes) -> httpx.Response:
            return await self.request("POST", "/score", content=body, timeout=deadline)

        runner = BatchRunner(
            post,
            self.retry,
            self.concurrency_for(info),
            info.limits,
            self._images(info),
            protocol,
            deliver,
        )
        await runner.run(items, self.batch_size_for(info))
        return [results[i] for i in range(len(results))]

    async def score_group(
        self,
        images: Sequence[ImageInput],
        instruction: str,
        source_image: ImageInput,
        *,
        ids: Sequence[str] | None = None,
        protocol: str | None = None,
    ) -> GroupResult:
        """Score K candidate edits of one source image under one instruction (``/score/group``).

        The router scores the whole group on one engine, which computes the shared prompt prefix
        (rubric, source image, instruction) once, and returns each candidate's result in input
        order with ``rank`` (1 = best) and ``z_score`` within the group: what a GRPO-style
        trainer needs as advantages. ``ids`` default to ``"0"``, ``"1"``, ...

        A candidate that cannot be prepared here (or read by the router) is an error result in
        its place, left out of the ranking. Raises :class:`InputError` when the source image or
        instruction cannot be sent, :class:`APIError` subclasses for request-level trouble. The
        request is retried as a whole; candidates the engines failed on are already retried on
        another engine by the router.
        """
        info = await self.info()
        request = await anyio.to_thread.run_sync(
            group_request,
            images,
            instruction,
            source_image,
            ids,
            protocol,
            self._images(info),
            info.limits,
        )
        if request.body is None:  # no candidate could be prepared: nothing to send
            return GroupResult(results=[request.failed[i] for i in range(len(request.ids))])
        response = await self.request(
            "POST", "/score/group", content=request.body, timeout=self._deadline(info)
        )
        return request.merge(parse_group(response, len(request.sent)))

    def batch_size_for(self, info: ServerInfo) -> int:
        """Items per batch request: ``batch_size``, capped by the router's ``max_batch_items``."""
        return min(self.batch_size, info.limits.max_batch_items)

    def concurrency_for(self, info: ServerInfo) -> int:
        """Batch requests :meth:`score_many` keeps in flight against the router ``info`` describes:
        ``concurrency`` if given, else enough for the router's ``suggested_items_in_flight``
        (4 with a router that does not suggest any)."""
        if self.concurrency is not None:
            return self.concurrency
        suggested = info.capacity.suggested_items_in_flight if info.capacity else 0
        if suggested <= 0:
            return _FALLBACK_CONCURRENCY
        return max(1, math.ceil(suggested / self.batch_size_for(info)))

    async def request(
        self, method: str, path: str, *, content: bytes | None = None, timeout: float
    ) -> httpx.Response:
        """One API call with retries; returns a 2xx response or raises a typed error."""
        headers = dict(self._headers)
        if content is not None:
            headers["content-type"] = "application/json"
        connect = min(timeout, _CONNECT_TIMEOUT_S)
        limits = httpx.Timeout(timeout, connect=connect)
        attempt = 0
        while True:
            error: EditJudgeError
            reached = True
            try:
                response = await self._http.request(
                    method, self.base_url + path, content=content, headers=headers, timeout=limits
                )
            except httpx.TransportError as exc:
                error = connection_error(exc, self.base_url, timeout, connect)
                reached = self._reached or not before_connecting(exc)
            else:
                self._reached = True
                if response.is_success:
                    return response
                error = error_from_response(response)
            if not self.retry.should_retry(error, attempt, reached=reached):
                raise error
            await anyio.sleep(self.retry.backoff(attempt, getattr(error, "retry_after", None)))
            attempt += 1

    def _images(self, info: ServerInfo) -> ImagePolicy:
        limits = info.limits
        cap = min(limits.pixel_cap, self.max_pixels) if self.max_pixels else limits.pixel_cap
        grid = limits.resize_grid if limits.resize_max_pixels else None
        return ImagePolicy(cap, limits.max_image_bytes, grid)

    def _deadline(self, info: ServerInfo) -> float:
        if self._timeout is not None:
            return self._timeout
        return (info.limits.request_deadline_s or _DEFAULT_DEADLINE_S) + _DEADLINE_MARGIN_S
