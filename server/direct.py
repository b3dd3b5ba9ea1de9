"""The scoring routes' short way through the ASGI stack.

``POST /score`` and ``POST /score/group`` take no FastAPI dependencies and parse their own
bodies, so FastAPI's routing, its exception and exit-stack middlewares and the route wrappers
do nothing for them but cost router CPU on every request (~0.2 ms under py-spy at saturation).
:class:`DirectRoutes` sits innermost among the app's own middlewares (the body limit, CORS and
request metrics still wrap it) and calls those two handlers itself; every other request goes
down FastAPI's stack as before. The routes stay registered with FastAPI for the OpenAPI document
and for anything that calls the app's router directly.

Errors are answered as FastAPI would: an :class:`~editjudge.server.errors.EditJudgeError` by the
app's handler for it, anything else propagates to Starlette's server-error middleware (500).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import EditJudgeError

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, EditJudgeError], Awaitable[Response]]


class DirectRoutes:
    """Pure ASGI: ``POST`` to one of ``routes`` (exact path) goes straight to its handler."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, Handler], on_error: ErrorHandler):
        self.app = app
        self.routes = dict(routes)
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = (
            self.routes.get(_route_path(scope))
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except EditJudgeError as exc:
            response = await self.on_error(request, exc)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path as Starlette's router matches it: without the ``root_path`` a proxy mounts the
    app under, when the server left it in ``path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    rest = path[len(root) :]
    return rest if rest.startswith("/") or not rest else path
