"""editjudge as the benchmark runs it: the real app, plus the one-call ``single`` protocol.

``python -m bench.overhead.router_app`` reads ``EDITJUDGE_*`` settings like ``python -m server``
and serves VIEScore and :class:`bench.overhead.protocol.SingleCall`. ``EDITJUDGE_WORKERS`` > 1
starts that many uvicorn worker processes, each with its own pool view (per-worker
least-outstanding).
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI

from bench.overhead.protocol import SingleCall
from editjudge.server.app import build_protocols, create_app
from editjudge.server.config import Settings


def make_app() -> FastAPI:
    settings = Settings()
    return create_app(settings, protocols=[*build_protocols(settings), SingleCall()])


def main() -> None:
    settings = Settings()
    workers = int(os.environ.get("EDITJUDGE_WORKERS", "1"))
    uvicorn.run(
        "bench.overhead.router_app:make_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
