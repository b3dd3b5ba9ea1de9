"""Routers for client tests: in-process (ASGI transport) and on loopback (uvicorn in a thread)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from editjudge.server.testing import FakeEngine, LocalRouter
from tests.helpers import fake_engines


@contextlib.asynccontextmanager
async def asgi_router(
    n_engines: int = 2, engine_knobs: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, list[FakeEngine], list[httpx.Request]]]:
    """The router in-process behind fake engines; yields its http client, engines, and a log of
    the requests the client sent (to count batches)."""
    async with fake_engines(n_engines, **(engine_knobs or {})) as engines:
        settings = Settings(backends=[u for _, u in engines], health_interval_s=0.2, **overrides)
        app = create_app(settings)
        sent: list[httpx.Request] = []

        async def record(request: httpx.Request) -> None:
            sent.append(request)

        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://router",
                event_hooks={"request": [record]},
            ) as http,
        ):
            yield http, [e for e, _ in engines], sent


def LoopbackRouter(
    n_engines: int = 2, engine_knobs: dict[str, Any] | None = None, **overrides: Any
) -> LocalRouter:
    """Fake engines and the router under uvicorn on 127.0.0.1, in a background thread (the
    public :class:`LocalRouter`), entered as soon as it serves, healthy engines or not."""
    return LocalRouter(
        n_engines,
        engine_knobs=engine_knobs,
        wait_ready=False,
        health_interval_s=0.2,
        **overrides,
    )
