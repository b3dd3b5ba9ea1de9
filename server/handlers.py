"""How errors become answers: one JSON shape, ``{"error": {"code": ..., "message": ...}}``, for
the router's own :class:`~editjudge.server.errors.EditJudgeError` tree, FastAPI's validation
errors, Starlette's HTTP errors and anything unexpected."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from .deps import AppContext
from .errors import EditJudgeError, ServiceError, Unauthorized
from .responses import json_response

log = logging.getLogger("editjudge")


async def editjudge_error(request: Request, exc: EditJudgeError) -> Response:
    """The answer to an :class:`EditJudgeError`, from FastAPI's stack or :class:`DirectRoutes`."""
    headers = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, ServiceError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s or 1)))
        ctx: AppContext | None = getattr(request.app.state, "ctx", None)
        if ctx is not None:
            ctx.metrics.rejected.labels(exc.code).inc()
    return json_response({"error": exc.to_dict()}, exc.status, headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app answers, as ``{"error": {"code", "message"}}``: the router's own
    errors, request validation (422), unknown routes and methods, and anything unexpected (500,
    logged with its traceback, never shown to the caller)."""
    app.add_exception_handler(EditJudgeError, editjudge_error)  # type: ignore[arg-type]

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        body = {"code": "invalid_request", "message": f"{where}: {first.get('msg')}"}
        return json_response({"error": body}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(
            {"error": {"code": code, "message": str(exc.detail)}},
            exc.status_code,
            dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {"code": "internal_error", "message": "unexpected router error; see router logs"}
        return json_response({"error": body}, 500)
