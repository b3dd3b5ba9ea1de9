"""A real headless Chromium for page tests, driven with Playwright, and the page's own reports.

The browser is the system's (Debian's ``chromium``; ``make test`` installs it where it can), or
``$EDITJUDGE_CHROMIUM``. Without one, page tests skip on a developer's machine and fail in CI
(``CI=true``), so a CI machine without a browser cannot pass them silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("EDITJUDGE_TEST_ARTIFACTS", REPO / "test-artifacts"))
FLAGS = [
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    configured = os.environ.get("EDITJUDGE_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI must run the page tests (make test installs the browser)")
    pytest.skip(why)


def launch() -> Iterator[Any]:
    """A browser for a module's tests (a fresh profile: Playwright makes a temporary one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium found (apt-get install chromium, or set EDITJUDGE_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page, and everything it said or asked for that a clean page would not."""

    page: Any
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        foreign = [u for u in self.requests if not u.startswith(("file://", "data:"))]
        return self.console + [f"request: {u}" for u in foreign]


def open_page(browser: Any, path: Path, width: int = 1400) -> Watched:
    page = browser.new_page(viewport={"width": width, "height": 1000})
    watched = Watched(page)
    page.on(
        "console",
        lambda m: m.type in ("error", "warning") and watched.console.append(f"{m.type}: {m.text}"),
    )
    page.on("pageerror", lambda e: watched.console.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: watched.console.append(f"failed: {r.url} {r.failure}"))
    page.on("request", lambda r: watched.requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=15_000)
    return watched


def screenshot(watched: Watched, name: str) -> Path:
    """Keep what the page looked like, for people and CI artifacts: ``test-artifacts/NAME``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    watched.page.screenshot(path=str(path), full_page=True)
    return path
