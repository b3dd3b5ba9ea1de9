"""``/docs`` and ``/redoc`` work offline: the pages and every asset they load come from the router.

The in-process tests read the pages and fetch every URL they name. The browser test renders them
in headless Chromium with every host name but the router's address unresolvable, as on an
air-gapped box; FastAPI's stock pages, rendered the same way, stay blank (the control). It skips
when no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from editjudge.server.app import create_app
from editjudge.server.config import Settings
from tests.helpers import item, router
from tests.processes import Procs, free_port, wait_ready

PAGES = ["/docs", "/redoc"]


def referenced_urls(html: str) -> list[str]:
    """Every URL a page loads: scripts, stylesheets, icons and the OpenAPI document."""
    attributes = re.findall(r'\b(?:src|href|spec-url)="([^"]*)"', html)
    swagger_spec = re.findall(r"\burl: '([^']*)'", html)
    return attributes + swagger_spec


async def get(path: str, settings: Settings, root_path: str = "") -> httpx.Response:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        return await client.get(path)


@pytest.mark.parametrize("page", PAGES)
async def test_a_docs_page_loads_nothing_from_another_host(page: str) -> None:
    settings = Settings(backends=[])
    r = await get(page, settings)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "://" not in r.text, "the page names another host"
    urls = referenced_urls(r.text)
    assert len(urls) >= (4 if page == "/docs" else 3), urls  # script(s), style, icon, spec
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await get(url, settings)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000 or url.endswith(".png"), url


async def test_the_swagger_stylesheet_loads_nothing_from_another_host() -> None:
    css = (await get("/docs/assets/swagger-ui.css", Settings(backends=[]))).text
    for target in re.findall(r"url\(([^)]*)\)", css):
        assert target.strip("'\"").startswith("data:"), target


async def test_docs_stay_open_when_the_api_needs_a_key() -> None:
    async with router([], api_keys=["k-123"]) as client:
        for path in [*PAGES, "/docs/assets/swagger-ui-bundle.js", "/openapi.json"]:
            assert (await client.get(path)).status_code == 200, path
        assert (await client.post("/score", json=item(0))).status_code == 401


@pytest.mark.parametrize("page", PAGES)
async def test_behind_a_path_prefix_the_assets_carry_it(page: str) -> None:
    html = (await get(page, Settings(backends=[]), root_path="/judge")).text
    assert all(url.startswith("/judge/") for url in referenced_urls(html)), html


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium installed (Debian: apt-get install chromium)")


def render_offline(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran, with every host name but 127.0.0.1 unresolvable."""
    out = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",  # lets the page fetch the spec and render it
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_docs_render_in_a_browser_without_the_internet(procs: Procs, tmp_path: Path) -> None:
    router = procs.router([], ready=False)
    swagger = render_offline(f"{router.url}/docs", tmp_path / "profile")
    # every route of the API is drawn as an operation block
    for path in ("/score", "/score/group", "/ready", "/backends", "/info"):
        assert f'data-path="{path}"' in swagger, path
    redoc = render_offline(f"{router.url}/redoc", tmp_path / "profile")
    assert "/score/group" in redoc and "editjudge" in redoc


def test_fastapis_stock_docs_stay_blank_offline(tmp_path: Path) -> None:
    """The control: the same browser, the same rules, FastAPI's CDN-backed page draws nothing."""
    chromium()  # or skip
    (tmp_path / "stock.py").write_text(
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/x')\ndef x() -> int:\n"
        "    return 1\n"
    )
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "stock:app"]
    server = subprocess.Popen([*cmd, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", "/docs")
        dom = render_offline(f"http://127.0.0.1:{port}/docs", tmp_path / "profile")
    finally:
        server.terminate()
        server.wait(10)
    assert "cdn.jsdelivr.net" in dom and 'data-path="/x"' not in dom
