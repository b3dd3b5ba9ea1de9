"""End to end: the router in front of two real vLLM servers (CPU, tiny random Qwen2-VL)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import TIMINGS
from tests.helpers import b64, data_url, image_bytes

pytestmark = pytest.mark.e2e


def edit_item(i: int) -> dict[str, object]:
    return {
        "id": f"edit-{i}",
        "image": b64(image_bytes((40 + 25 * i, 90, 200 - 20 * i), size=(256, 256))),
        "source_image": data_url(image_bytes((30, 160, 60), size=(256, 256))),
        "instruction": f"paint the square number {i} orange",
    }


def test_batch_of_8_in_order_on_both_servers(router_url: str, vllm_servers: list[str]) -> None:
    t = time.monotonic()
    r = httpx.post(
        f"{router_url}/score", json={"items": [edit_item(i) for i in range(8)]}, timeout=300
    )
    TIMINGS["batch of 8 through the router (s)"] = time.monotonic() - t
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == [f"edit-{i}" for i in range(8)]
    for x in results:
        assert x["status"] == "ok", x
        assert 0 <= x["score"] <= 10
        assert set(x["scores"]) >= {
            "instruction_following",
            "over_editing",
            "naturalness",
            "artifacts",
        }
        assert x["fingerprint"]["model"] == "tiny-qwen2vl"
    assert {x["backend"] for x in results} == set(vllm_servers)
    backends = httpx.get(f"{router_url}/backends").json()
    assert all(b["served"] > 0 and b["healthy"] for b in backends)


def test_multipart_with_curl(router_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "edit.png").write_bytes(image_bytes((250, 10, 10), size=(256, 256)))
    (tmp_path / "src.png").write_bytes(image_bytes((10, 10, 250), size=(256, 256)))
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-F",
            f"image=@{tmp_path / 'edit.png'}",
            "-F",
            f"source_image=@{tmp_path / 'src.png'}",
            "-F",
            "instruction=add a hat",
            f"{router_url}/score",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = httpx.Response(200, content=out.stdout).json()
    assert result["status"] == "ok" and 0 <= result["score"] <= 10


def test_router_reports_the_real_engine(router_url: str) -> None:
    info = httpx.get(f"{router_url}/info").json()
    assert info["model"] == "tiny-qwen2vl"
    assert info["vllm_version"] and info["vllm_version"].startswith("0.")
    assert httpx.get(f"{router_url}/ready").status_code == 200
