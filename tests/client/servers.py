"""Routers for client tests: in-process (ASGI transport) and on loopback (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from editjudge.server.testing.fake_engine import FakeEngine
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


class LoopbackRouter:
    """Fake engines and the router under uvicorn on 127.0.0.1, in a background thread.

    ``engines`` are the live :class:`FakeEngine` objects: set ``healthy``/``latency_s`` on them
    from the test thread to inject faults while clients talk to ``url``.
    """

    def __init__(
        self, n_engines: int = 2, engine_knobs: dict[str, Any] | None = None, **overrides: Any
    ) -> None:
        self.n_engines, self.engine_knobs, self.overrides = n_engines, engine_knobs or {}, overrides
        self.url = ""
        self.engines: list[FakeEngine] = []
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopbackRouter:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"loopback router did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        async with fake_engines(self.n_engines, **self.engine_knobs) as engines:
            self.engines = [e for e, _ in engines]
            settings = Settings(
                backends=[u for _, u in engines], health_interval_s=0.2, **self.overrides
            )
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            config = uvicorn.Config(
                create_app(settings), log_level="warning", timeout_graceful_shutdown=2
            )
            self._server = uvicorn.Server(config)
            task = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started and not task.done():
                await asyncio.sleep(0.01)
            self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            self._ready.set()
            await task
