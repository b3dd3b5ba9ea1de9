"""API keys: who gets in, which routes stay open, and that keys never reach logs or responses."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import fake_engines, item, router
from tests.processes import ROOT, Procs

KEY = "sk-editjudge-7f3a9c2e41b8d6f0"
OTHER = "sk-editjudge-second-key-0042"


def _h(value: str) -> dict[str, str]:
    return {"authorization": value}


async def test_auth_is_off_without_keys() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        assert (await c.post("/score", json=item(0))).status_code == 200
        assert (await c.get("/info")).json()["auth"] is False


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (_h(""), 401),
        (_h("Bearer"), 401),
        (_h("Bearer "), 401),
        (_h(f"Basic {KEY}"), 401),
        (_h(f"Token {KEY}"), 401),
        (_h(KEY), 401),
        (_h(f"Bearer {KEY[:-1]}"), 401),
        (_h(f"Bearer {KEY}x"), 401),
        (_h(f"Bearer {KEY.upper()}"), 401),
        (_h(f"Bearer {KEY} {KEY}"), 401),
        ({"authorization": b"Bearer \xe9t\xe9"}, 401),  # not ASCII
        (_h(f"Bearer {KEY}"), 200),
        (_h(f"bearer {KEY}"), 200),  # the scheme is case-insensitive (RFC 7235)
        (_h(f"Bearer {OTHER}"), 200),
    ],
    ids=lambda v: repr(v)[:40],
)
async def test_scoring_needs_a_valid_bearer_key(headers: dict[str, object], status: int) -> None:
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], api_keys=[KEY, OTHER]) as c,
    ):
        for request in (
            c.post("/score", json=item(0), headers=headers),
            c.post("/score", json={"items": [item(0)]}, headers=headers),
            c.post("/score", files={"image": ("a.png", b"x")}, data={"instruction": "x"}),
            c.get("/backends", headers=headers),
        ):
            r = await request
            if r.request.url.path == "/score" and "multipart" in r.request.headers["content-type"]:
                if "authorization" not in r.request.headers:
                    assert r.status_code == 401
                continue
            if status == 401:
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
                assert KEY not in r.text and OTHER not in r.text
            else:
                assert r.status_code == 200, r.text
        if status == 401:
            assert engines[0][0].requests == []  # nothing reached an engine


async def test_auth_is_checked_before_the_body_is_parsed() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines], api_keys=[KEY]) as c:
        r = await c.post(
            "/score", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 401


async def test_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# team keys\n\n  {KEY}  \n# {OTHER} revoked\n")
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], api_keys_file=keys) as c,
    ):
        assert (await c.post("/score", json=item(0))).status_code == 401
        ok = await c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}"))
        assert ok.status_code == 200
        revoked = await c.post("/score", json=item(0), headers=_h(f"Bearer {OTHER}"))
        assert revoked.status_code == 401
        hashed = await c.post("/score", json=item(0), headers=_h("Bearer # team keys"))
        assert hashed.status_code == 401


async def test_health_ready_info_stay_open_and_metrics_only_when_configured() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines], api_keys=[KEY]) as c:
        for path in ("/health", "/ready", "/info", "/metrics"):
            assert (await c.get(path)).status_code == 200, path
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], api_keys=[KEY], protect_metrics=True) as c,
    ):
        for path in ("/health", "/ready", "/info"):
            assert (await c.get(path)).status_code == 200, path
        r = await c.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert (await c.get("/metrics", headers=_h(f"Bearer {KEY}"))).status_code == 200


async def test_cors_is_off_by_default_and_on_only_for_listed_origins() -> None:
    preflight = {
        "origin": "https://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
    }
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.options("/score", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/health", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], cors_origins=["https://ok.example"]) as c,
    ):
        r = await c.options("/score", headers=preflight)
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"
        r = await c.options("/score", headers={**preflight, "origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"


async def test_keys_never_reach_in_process_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], api_keys=[KEY, OTHER], log_level="debug") as c,
    ):
        await c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}"))
        await c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}-wrong"))
        await c.get("/metrics", headers=_h(f"Bearer {OTHER}"))
    assert caplog.records  # the router did log
    assert KEY not in caplog.text and OTHER not in caplog.text


def test_keys_never_reach_the_router_process_output(procs: Procs, tmp_path: Path) -> None:
    """The deployed router at debug level, keys from env and file, right and wrong keys sent."""
    keys_file = tmp_path / "keys"
    keys_file.write_text(OTHER + "\n")
    engine = procs.engine()
    env = {
        "EDITJUDGE_API_KEYS": KEY,
        "EDITJUDGE_API_KEYS_FILE": str(keys_file),
        "EDITJUDGE_LOG_LEVEL": "debug",
        "EDITJUDGE_PROTECT_METRICS": "true",
        "EDITJUDGE_NO_BACKEND_WAIT_S": "0.5",
    }
    r_proc = procs.router([engine.url], env=env)
    with httpx.Client(base_url=r_proc.url, timeout=30) as c:
        assert c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}")).status_code == 200
        assert c.post("/score", json=item(0), headers=_h(f"Bearer {OTHER}")).status_code == 200
        assert c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}X")).status_code == 401
        assert c.get("/metrics", headers=_h(f"Basic {KEY}")).status_code == 401
        assert c.get(f"/score?key={KEY}").status_code == 405
        assert c.get(f"/nope/{KEY}").status_code == 404
    engine.kill9()  # make the router log a backend failure too
    with httpx.Client(base_url=r_proc.url, timeout=30) as c:
        c.post("/score", json=item(0), headers=_h(f"Bearer {KEY}"))
    r_proc.popen.terminate()
    r_proc.popen.wait(30)
    output = r_proc.log()
    assert "DEBUG" in output or "INFO" in output  # the log was captured
    assert KEY not in output and OTHER not in output


def test_config_errors_do_not_print_keys(tmp_path: Path) -> None:
    """A bad setting next to a key: the error names the problem, never the key's value."""
    env = {"EDITJUDGE_API_KEYS": KEY, "EDITJUDGE_API_KEYS_FILE": str(tmp_path / "missing")}
    out = subprocess.run(
        [sys.executable, "-m", "editjudge.server"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "EDITJUDGE_API_KEYS_FILE" in out.stderr
    assert KEY not in out.stderr + out.stdout
