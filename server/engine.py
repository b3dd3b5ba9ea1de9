"""How to talk to one vLLM OpenAI-compatible server: a thin async HTTP client.

One client (one connection pool with keep-alive) is shared by the whole app. Two transports are
available, aiohttp (default: the cheaper per-request CPU cost under high concurrency) and httpx,
selected by ``EDITJUDGE_HTTP_CLIENT``; both map failures onto :mod:`editjudge.server.errors`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import orjson

from .bodies import EngineBody
from .errors import BackendHTTPError, BackendTimeout, BackendUnavailable

_JSON = {"content-type": "application/json"}
Body = bytes | EngineBody  # EngineBody: streamed in its chunks, see editjudge.server.bodies


@dataclass(frozen=True)
class ChatReply:
    """The parts of a chat completion the protocols use."""

    content: str
    finish_reason: str | None
    top_logprobs: list[dict[str, float]] | None  # per generated token: candidate -> logprob
    prompt_tokens: int | None
    cached_tokens: int | None


@dataclass(frozen=True)
class HealthCheck:
    """The outcome of one ``GET /health``: passed, or why not (``HTTP 503``, ``timed out after
    5s``, ``connection refused``, ``unknown host (...)``)."""

    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


HEALTHY = HealthCheck()


class EngineClient(Protocol):
    """Transport-independent calls to a vLLM server at ``base_url``."""

    async def post_json(self, url: str, body: Body, timeout: float) -> Any: ...

    async def get_json(self, url: str, timeout: float) -> Any: ...

    async def get_bytes(self, url: str, timeout: float) -> bytes:
        """The body of a 2xx answer (e.g. a metrics page); raises a ``BackendError`` otherwise."""
        ...

    async def get_health(self, url: str, timeout: float) -> HealthCheck:
        """``GET url``: healthy on 200; never raises for a network failure or another status."""
        ...

    async def aclose(self) -> None: ...


async def chat(client: EngineClient, base_url: str, body: Body, timeout: float) -> ChatReply:
    """POST a pre-serialised chat-completions body and return the first choice."""
    payload = await client.post_json(f"{base_url}/v1/chat/completions", body, timeout)
    return parse_chat_reply(payload, base_url)


def parse_chat_reply(payload: Any, backend: str) -> ChatReply:
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content") or ""
        usage = payload.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return ChatReply(
            content=content,
            finish_reason=choice.get("finish_reason"),
            top_logprobs=_top_logprobs(choice.get("logprobs")),
            prompt_tokens=usage.get("prompt_tokens"),
            cached_tokens=details.get("cached_tokens"),
        )
    except (KeyError, IndexError, TypeError, AttributeError):
        raise BackendHTTPError(
            "backend reply is not a chat completion", backend, 502, str(payload)[:500]
        ) from None


def _top_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    if not logprobs or not logprobs.get("content"):
        return None
    return [
        {alt["token"]: float(alt["logprob"]) for alt in tok.get("top_logprobs") or []}
        for tok in logprobs["content"]
    ]


def why_unreachable(exc: BaseException) -> str:
    """A short reason for a failed connection, found along the exception's causes: ``connection
    refused``, ``unknown host (...)``, ``no route to host``..., else the error's own text."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return f"unknown host ({cause.strerror})"
        if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _status_check(status: int) -> HealthCheck:
    return HEALTHY if status == 200 else HealthCheck(f"HTTP {status}")


def _headers(body: Body | None) -> dict[str, str] | None:
    if isinstance(body, EngineBody):  # a stream: its length is known, so no chunked encoding
        return {**_JSON, "content-length": str(body.length)}
    return _JSON if body is not None else None


def _backend_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _ok_body(url: str, status: int, body: bytes) -> bytes:
    if status >= 400:
        text = body[:500].decode("utf-8", "replace")
        raise BackendHTTPError(f"backend answered HTTP {status}", _backend_of(url), status, text)
    return body


def _check(url: str, status: int, body: bytes) -> Any:
    _ok_body(url, status, body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:500].decode("utf-8", "replace")
        raise BackendHTTPError("backend reply is not JSON", _backend_of(url), 502, text) from None


class AiohttpEngineClient:
    """aiohttp transport with one keep-alive connection pool."""

    def __init__(self, max_connections: int = 0) -> None:
        connector = aiohttp.TCPConnector(
            limit=max_connections, keepalive_timeout=60, ttl_dns_cache=60
        )
        # No cookie jar: engines set none, and a shared client must not carry state between
        # callers' requests; it also spares a jar lookup per request.
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def post_json(self, url: str, body: Body, timeout: float) -> Any:
        return _check(url, *await self._request("POST", url, body, timeout))

    async def get_json(self, url: str, timeout: float) -> Any:
        return _check(url, *await self._request("GET", url, None, timeout))

    async def get_bytes(self, url: str, timeout: float) -> bytes:
        status, raw = await self._request("GET", url, None, timeout)
        return _ok_body(url, status, raw)

    async def get_health(self, url: str, timeout: float) -> HealthCheck:
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                await r.read()
                return _status_check(r.status)
        except TimeoutError:  # before OSError, of which it is one
            return HealthCheck(f"timed out after {timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            return HealthCheck(why_unreachable(exc))

    async def _request(
        self, method: str, url: str, body: Body | None, timeout: float
    ) -> tuple[int, bytes]:
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=_headers(body),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:
                raw = await r.read()
                status = r.status
        except TimeoutError:
            raise BackendTimeout(f"no reply within {timeout:g}s", _backend_of(url)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise BackendUnavailable(
                f"cannot reach backend: {why_unreachable(exc)}", _backend_of(url)
            ) from None
        return status, raw

    async def aclose(self) -> None:
        await self._session.close()


class HttpxEngineClient:
    """httpx transport; ``transport`` lets tests plug in ``httpx.MockTransport``."""

    def __init__(
        self, max_connections: int | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=None)
        self._client = httpx.AsyncClient(limits=limits, transport=transport)

    async def post_json(self, url: str, body: Body, timeout: float) -> Any:
        return _check(url, *await self._request("POST", url, body, timeout))

    async def get_json(self, url: str, timeout: float) -> Any:
        return _check(url, *await self._request("GET", url, None, timeout))

    async def get_bytes(self, url: str, timeout: float) -> bytes:
        status, raw = await self._request("GET", url, None, timeout)
        return _ok_body(url, status, raw)

    async def get_health(self, url: str, timeout: float) -> HealthCheck:
        try:
            r = await self._client.get(url, timeout=timeout)
        except httpx.TimeoutException:
            return HealthCheck(f"timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return HealthCheck(why_unreachable(exc))
        return _status_check(r.status_code)

    async def _request(
        self, method: str, url: str, body: Body | None, timeout: float
    ) -> tuple[int, bytes]:
        try:
            r = await self._client.request(
                method,
                url,
                content=body,
                headers=_headers(body),
                timeout=timeout,
            )
        except httpx.TimeoutException:
            raise BackendTimeout(f"no reply within {timeout:g}s", _backend_of(url)) from None
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"cannot reach backend: {why_unreachable(exc)}", _backend_of(url)
            ) from None
        return r.status_code, r.content

    async def aclose(self) -> None:
        await self._client.aclose()


def make_engine_client(kind: str) -> EngineClient:
    """The transport named by ``EDITJUDGE_HTTP_CLIENT``."""
    if kind == "httpx":
        return HttpxEngineClient()
    return AiohttpEngineClient()
