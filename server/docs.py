"""``/docs`` (Swagger UI) and ``/redoc`` that work without the internet.

FastAPI's own pages load their JavaScript, CSS, favicon and (ReDoc) fonts from public CDNs, so on
an air-gapped GPU box, or a laptop offline, they stay blank. Here the router serves those assets
itself, under ``/docs/assets``, from the ``fastapi-offline`` package (MIT), which ships the
``swagger-ui-dist`` 5 bundle (Apache-2.0), ReDoc 2's standalone bundle (MIT) and FastAPI's favicon.
Like FastAPI's pages, these need no API key: they show the API's shape, never its data.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"  # FastAPI's default, kept for Swagger UI's login
ASSETS_PACKAGE = "fastapi_offline"
SWAGGER_JS, SWAGGER_CSS = "swagger-ui-bundle.js", "swagger-ui.css"
REDOC_JS, FAVICON = "redoc.standalone.js", "favicon.png"
# Swagger UI's default checks the document against validator.swagger.io, which an offline page
# cannot reach; the router's OpenAPI document is generated, so there is nothing to validate.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> Path:
    """The packaged asset folder; ``RuntimeError`` naming the fix when a file is missing."""
    spec = importlib.util.find_spec(ASSETS_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"the /docs assets need the {ASSETS_PACKAGE.replace('_', '-')} package: "
            "install editjudge's server extra"
        )
    folder = Path(spec.origin).parent / "static"
    missing = [
        f for f in (SWAGGER_JS, SWAGGER_CSS, REDOC_JS, FAVICON) if not (folder / f).is_file()
    ]
    if missing:
        version = importlib.metadata.version(ASSETS_PACKAGE)
        raise RuntimeError(
            f"{ASSETS_PACKAGE} {version} lacks the /docs assets {', '.join(missing)} in {folder}"
        )
    return folder


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect page, ``/redoc`` and their assets from this router.

    ``app`` must be built with ``docs_url=None, redoc_url=None``, so that FastAPI's CDN pages are
    not registered first.
    """
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)


def _root(request: Request) -> str:
    """The path prefix a reverse proxy serves the router under (``--root-path``), if any."""
    return str(request.scope.get("root_path", "")).rstrip("/")
