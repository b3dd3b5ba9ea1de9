"""The real router in front of fake engines on loopback, served from a background thread: the
whole service on a laptop, for your own tests and for ``editjudge demo``.

>>> with LocalRouter(engines=2, latency_s=0.05) as box:
...     with Client(box.url) as judge:
...         judge.score("edit.png", "add a hat", source_image="source.png")

``box.engines`` are the live :class:`FakeEngine` objects: set ``healthy``, ``latency_s`` or
``status`` on them from the test to inject faults while clients talk to ``box.url``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from ..app import SERVING_OPTIONS, create_app
from ..config import Settings
from .fake_engine import FakeEngine, fake_engines

_START_TIMEOUT_S = 30.0


class ArgumentSettings(Settings):
    """:class:`Settings` from the constructor's arguments alone, never from ``EDITJUDGE_*``
    variables: a test or demo gets the same router whatever the shell exports."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class LocalRouter:
    """``engines`` fake engines (each ``FakeEngine(**engine_knobs)``) and the router, on
    127.0.0.1 while the ``with`` block runs; it is entered once the router reports a healthy
    engine (or at once with ``wait_ready=False``, e.g. for engines that start unhealthy).

    Args:
        sock: a socket bound to 127.0.0.1 for the router (default: any free port).
        settings: router settings (``Settings`` field names), e.g. ``api_keys="k1,k2"``.
    """

    def __init__(
        self,
        engines: int = 2,
        *,
        latency_s: float = 0.0,
        engine_knobs: dict[str, Any] | None = None,
        sock: socket.socket | None = None,
        wait_ready: bool = True,
        **settings: Any,
    ) -> None:
        self.n_engines, self.wait_ready = engines, wait_ready
        self.engine_knobs = {"latency_s": latency_s, **(engine_knobs or {})}
        self.settings = {"health_interval_s": 0.5, "log_level": "warning", **settings}
        self.sock = sock or _loopback_socket()
        host, port = self.sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.engines: list[FakeEngine] = []
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="editjudge-local", daemon=True)

    def __enter__(self) -> LocalRouter:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S) or self._error is not None:
            self.__exit__()
            why = repr(self._error) if self._error else f"not ready in {_START_TIMEOUT_S:g} s"
            raise RuntimeError(f"the local router did not start: {why}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)
        self.sock.close()

    @property
    def alive(self) -> bool:
        """Whether the router still serves (it stops on :meth:`__exit__` or a crash)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the caller by __enter__
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with fake_engines(self.n_engines, **self.engine_knobs) as started:
            self.engines.extend(engine for engine, _ in started)
            urls = [url for _, url in started]
            host, port = self.sock.getsockname()[:2]
            app = create_app(ArgumentSettings(backends=urls, host=host, port=port, **self.settings))
            config = uvicorn.Config(
                app, log_level="warning", timeout_graceful_shutdown=2, **SERVING_OPTIONS
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve(sockets=[self.sock]))
            await self._until_ready(serving)
            self._ready.set()
            await serving

    async def _until_ready(self, serving: asyncio.Task[None]) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline and not serving.done():
                if self._server is not None and self._server.started:
                    if not self.wait_ready:
                        return
                    try:
                        if (await http.get(self.url + "/ready")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                await asyncio.sleep(0.02)
        if serving.done():
            serving.result()  # raises what stopped it
        raise RuntimeError(f"no healthy engine behind {self.url} in {_START_TIMEOUT_S:g} s")


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
