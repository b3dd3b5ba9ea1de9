"""End to end: the router in front of two real vLLM servers (CPU, tiny random Qwen2-VL)."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import SERVED_NAME, TIMINGS
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
    # The router reads each real engine's running-request gauge to steer its window.
    assert all(b["running"] is not None and b["window"] >= 4 for b in backends), backends


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


def test_every_reply_parses_on_engines_started_without_structured_output_flags(
    router_url: str,
) -> None:
    """The engines run with vLLM's defaults (xgrammar allows any whitespace in JSON): the
    router's compact-JSON constraint alone keeps a random-weight model's replies parseable."""
    for protocol in ("viescore", "edit-rubric"):
        items = [{**edit_item(i), "protocol": protocol} for i in range(12)]
        r = httpx.post(f"{router_url}/score", json={"items": items}, timeout=600)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        parsed = sum(x["status"] == "ok" for x in results)
        assert parsed == len(items), [x["error"] for x in results if x["error"]]


def test_the_engine_renders_text_and_images_on_separate_lines(vllm_servers: list[str]) -> None:
    """Qwen chat templates concatenate content parts; rendered by the real engine, no text runs
    into the next part."""
    from editjudge.server.images import ImageLimits, prepare_image
    from editjudge.server.protocols import Item, VIEScore

    limits = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
    edited = prepare_image(image_bytes((200, 2, 3), size=(256, 256)), limits)
    source = prepare_image(image_bytes((1, 2, 3), size=(256, 256)), limits)
    sc, pq = VIEScore().calls(Item("make the sky purple", edited, source))
    url = vllm_servers[0]
    prompts = []
    for call in (sc, pq):
        messages = [{"role": "user", "content": call.content}]
        tokens = httpx.post(
            f"{url}/tokenize",
            json={"model": SERVED_NAME, "messages": messages, "add_generation_prompt": True},
            timeout=120,
        ).json()["tokens"]
        text = httpx.post(
            f"{url}/detokenize", json={"model": SERVED_NAME, "tokens": tokens}, timeout=60
        ).json()["prompt"]
        prompts.append(re.sub(r"(<\|image_pad\|>)+", "<pads>", text))
    image = "<|vision_start|><pads><|vision_end|>"
    assert f"the edit most likely failed.\nOriginal image:\n{image}\n" in prompts[0]
    assert (
        f"{image}\nEditing instruction: make the sky purple\nEdited image:\n{image}\n"
        in (prompts[0])
    )
    assert f"{image}\nAnswer in JSON" in prompts[1]
