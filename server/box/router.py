"""The router inside ``editjudge serve``: its socket, bound before any engine starts; its start with
the first healthy engine; its drain before the engines stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

import uvicorn

from ..app import SERVING_OPTIONS, create_app
from ..config import Settings
from .supervisor import Supervision

log = logging.getLogger("editjudge.launcher")


class _RouterServer(uvicorn.Server):
    """uvicorn without its own signal handling: the launcher decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def wait_any(*events: asyncio.Event) -> None:
    """Return as soon as one of ``events`` is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def bind_router(host: str, port: int) -> socket.socket:
    """The router's socket, bound before any engine starts: a port in use is then a clear error
    at once, not a crash once the engines have loaded (uvicorn exits the process on it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"editjudge serve: cannot listen on {host}:{port} for the router: {exc.strerror or exc}"
        ) from None
    return sock


def pin_router(cpus: tuple[int, ...]) -> None:
    """Keep this process (the router) on its own cores, if the plan set some aside."""
    if cpus:
        try:
            os.sched_setaffinity(0, set(cpus))
        except OSError as exc:
            log.warning("cannot pin the router to its cores (%s); running unpinned", exc)


def router_server(args: argparse.Namespace, backends: list[str]) -> _RouterServer:
    """The router, built before any engine starts: a router that cannot be built (a missing
    dependency, a bad setting) must fail ``serve`` at once, not after minutes of engine starts."""
    settings = Settings(backends=backends, host=args.host, port=args.port)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        timeout_graceful_shutdown=args.drain_timeout,
        log_config=None,  # its records go through our handler, which survives a closed stderr
        **SERVING_OPTIONS,
    )
    return _RouterServer(config)


async def run_router(server: uvicorn.Server, sock: socket.socket) -> None:
    """``server.serve()``, except that a failed startup, which uvicorn ends with ``sys.exit``,
    returns like any other end: the engines must still be stopped."""
    with contextlib.suppress(SystemExit):
        await server.serve(sockets=[sock])


async def serve_router(
    args: argparse.Namespace, sup: Supervision, sock: socket.socket, server: _RouterServer
) -> None:
    """Run the router from the first healthy engine until ``sup.stopping``, then drain it: its
    in-flight requests are answered (up to ``--drain-timeout``) while the engines still run."""
    await wait_any(sup.any_healthy, sup.stopping)
    if sup.stopping.is_set():
        return
    log.info("starting the router on http://%s:%d", args.host, args.port)
    router = asyncio.create_task(run_router(server, sock))
    stopping = asyncio.create_task(sup.stopping.wait())
    await asyncio.wait([router, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not sup.stopping.is_set():
        sup.fail("editjudge serve: the router stopped on its own (see its errors above)")
    log.info("stopping: draining the router, then %d engines", len(sup.engines))
    server.should_exit = True
    await router
