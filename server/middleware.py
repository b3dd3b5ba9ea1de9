"""ASGI middleware that guards memory before any handler runs: the request body limit."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTooLarge

_CLOSE = (b"connection", b"close")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from ``Content-Length``, else while streaming.

    A 408 (the body arrived too slowly) answered before the body's end closes the connection, so
    the server does not go on reading a slow upload after its answer. Other early answers (401
    before the body is read, 429) leave the connection open: the server discards the rest of the
    body as it comes, and the caller is sure to read the answer, which a close under a client
    still sending can lose.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = 0, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
            elif name == b"transfer-encoding":
                chunked = True
        if declared > self.max_bytes:
            await _reject(send, self.max_bytes)
            return
        received = 0
        done = declared == 0 and not chunked

        async def limited() -> Message:
            nonlocal received, done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"request body is larger than {self.max_bytes} bytes")
                done = done or not message.get("more_body", False)
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 408 and not done:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self.app(scope, limited, closing)


async def _reject(send: Send, max_bytes: int) -> None:
    err = BodyTooLarge(f"request body is larger than {max_bytes} bytes")
    body = orjson.dumps({"error": err.to_dict()})
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestMetricsMiddleware:
    """Count responses by route and status without Starlette's BaseHTTPMiddleware overhead."""

    def __init__(self, app: ASGIApp, count: Callable[[str, int], None], routes: set[str]) -> None:
        self.app = app
        self.count = count
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in self.routes else "other"

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.count(path, int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)
