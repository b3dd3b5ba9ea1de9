"""End to end on real vLLM (CPU): the ``expected`` protocol and ``POST /score/group``."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from bench.workload import noisy_image
from editjudge.server.engine import parse_chat_reply
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import ExpectedScore, Item, Sampling, edit_rubric
from editjudge.server.protocols.expected import digit_distribution, expectation
from tests.e2e.conftest import SERVED_NAME, TIMINGS
from tests.helpers import b64

pytestmark = pytest.mark.e2e

LIMITS = ImageLimits(10**8, 10**8, frozenset({"PNG", "JPEG"}))
# The chat template's closing tokens after the user turn; only these differ between the priming
# prompt and the candidates' shared prefix.
TEMPLATE_TAIL_TOKENS = 16
# Long enough that the shared prefix ends a full KV block (128 tokens on the CPU backend) after
# the source image, so reuse of the source image's KV shows in the cached-token counts.
INSTRUCTION = (
    "replace the grey sky with a warm orange sunset, keep the buildings, the street, the people "
    "and the parked cars exactly as they are, and add soft reflections of the sunset on the wet "
    "road surface without changing its texture"
)


def noisy_png(seed: int, size: int = 256) -> bytes:
    """A unique image (so no earlier test has cached its tokens)."""
    return noisy_image(seed, size, 400, "PNG")


def chat(url: str, body: dict[str, object]) -> httpx.Response:
    r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r


@pytest.fixture(scope="module")
def warm(vllm_servers: list[str]) -> Iterator[list[str]]:
    """The first logprobs request with an image costs seconds once per server; pay it here."""
    t = time.monotonic()
    item = Item("warm up", prepare_image(noisy_png(0), LIMITS), prepare_image(noisy_png(1), LIMITS))
    (call,) = ExpectedScore().calls(item)
    for url in vllm_servers:
        chat(url, call.body(SERVED_NAME, Sampling()))
    TIMINGS["logprobs warm-up, both servers (s)"] = time.monotonic() - t
    yield vllm_servers


def test_expected_score_is_the_mean_of_the_engines_digit_distribution(
    router_url: str, warm: list[str]
) -> None:
    images = [noisy_png(100 + i) for i in range(4)]
    source = noisy_png(99)
    items = [
        {"id": f"e{i}", "image": b64(img), "source_image": b64(source), "instruction": "add a hat"}
        for i, img in enumerate(images)
    ]
    r = httpx.post(
        f"{router_url}/score", json={"items": items, "protocol": "expected"}, timeout=300
    )
    assert r.status_code == 200, r.text
    for res, img in zip(r.json()["results"], images, strict=True):
        assert res["status"] == "ok", res
        assert 0 <= res["score"] <= 10
        scores = res["scores"]
        # vLLM applies the choice constraint before logprobs: all mass is on the ten digits
        assert scores["valid_mass"] == pytest.approx(1.0, abs=1e-3)
        assert 0 <= scores["entropy"] <= math.log(10) + 1e-6
        assert scores["answer"] == float(res["raw"])
        # recompute from the engine's own top_logprobs for the same request
        item = Item("add a hat", prepare_image(img, LIMITS), prepare_image(source, LIMITS))
        (call,) = ExpectedScore().calls(item)
        reply = parse_chat_reply(
            chat(res["backend"], call.body(SERVED_NAME, Sampling())).json(), ""
        )
        assert reply.top_logprobs is not None
        mean, entropy = expectation(digit_distribution(reply.top_logprobs[0]))
        assert res["scores"]["expected"] == pytest.approx(mean, abs=1e-3)
        assert res["score"] == pytest.approx(mean * 10 / 9, abs=2e-3)
        assert res["scores"]["entropy"] == pytest.approx(entropy, abs=1e-3)


def block_size(engine: str) -> int:
    metrics = httpx.get(f"{engine}/metrics", timeout=30).text
    found = re.search(r'cache_config_info\{[^}]*\bblock_size="(\d+)"', metrics)
    return int(found.group(1)) if found else 16


@pytest.mark.parametrize("protocol", ["expected", "edit-rubric"])
def test_group_scores_on_one_engine_and_reuses_the_primed_prefix(
    router_url: str, warm: list[str], protocol: str
) -> None:
    seed = 1000 if protocol == "expected" else 2000
    source_png = noisy_png(seed)
    candidates = [noisy_png(seed + 1 + i) for i in range(4)]
    body = {
        "source_image": b64(source_png),
        "instruction": INSTRUCTION,
        "images": [b64(c) for c in candidates],
        "ids": [f"c{i}" for i in range(4)],
        "protocol": protocol,
    }
    t = time.monotonic()
    r = httpx.post(f"{router_url}/score/group", json=body, timeout=300)
    TIMINGS[f"group of 4, {protocol} (s)"] = time.monotonic() - t
    assert r.status_code == 200, r.text
    group = r.json()
    results = group["results"]
    assert [x["id"] for x in results] == ["c0", "c1", "c2", "c3"]
    assert all(x["status"] == "ok" for x in results), results
    engine = group["backend"]
    assert engine in warm and {x["backend"] for x in results} == {engine}
    scores = [x["score"] for x in results]
    assert sorted(x["rank"] for x in results)[0] == 1
    for x in results:
        assert x["rank"] == 1 + sum(s > x["score"] for s in scores)
    assert sum(x["z_score"] for x in results) == pytest.approx(0.0, abs=1e-3)

    # What the priming request covered, measured on the engine itself.
    source = prepare_image(source_png, LIMITS)
    protocol_obj = ExpectedScore() if protocol == "expected" else edit_rubric(0)
    prefix = protocol_obj.prefix(source, INSTRUCTION)
    assert prefix is not None
    prefix_tokens = chat(engine, prefix.body(SERVED_NAME, Sampling())).json()["usage"]
    text_only = _prompt_tokens_before_source(engine, prefix.content)
    block = block_size(engine)
    reusable = (prefix_tokens["prompt_tokens"] - TEMPLATE_TAIL_TOKENS) // block * block
    numbers = {"prefix": prefix_tokens, "before_source": text_only, "block": block}
    assert reusable > text_only, f"the prefix must end a block after the source image: {numbers}"
    assert group["cached_prompt_tokens"] == sum(x["cached_prompt_tokens"] for x in results)
    assert group["prompt_tokens"] >= 4 * prefix_tokens["prompt_tokens"]
    for x in results:
        # every candidate reused the primed prefix, source image included
        assert x["cached_prompt_tokens"] >= reusable, (x["cached_prompt_tokens"], numbers)
    TIMINGS[f"group cached-token ratio, {protocol}"] = (
        group["cached_prompt_tokens"] / group["prompt_tokens"]
    )


def _prompt_tokens_before_source(engine: str, prefix_content: list[dict[str, object]]) -> int:
    """Prompt tokens of the prefix's text before the source image (plus the chat template)."""
    head = []
    for part in prefix_content:
        if part["type"] == "image_url":
            break
        head.append(part)
    body = {"model": SERVED_NAME, "messages": [{"role": "user", "content": head}], "max_tokens": 1}
    return int(chat(engine, body).json()["usage"]["prompt_tokens"])


def test_group_bad_input_is_4xx_on_the_real_router(router_url: str) -> None:
    r = httpx.post(
        f"{router_url}/score/group",
        json={"source_image": "bm90", "instruction": "x", "images": [b64(noisy_png(5))]},
        timeout=60,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
