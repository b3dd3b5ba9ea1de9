"""``gedit`` and ``imgedit`` on real vLLM (CPU, random weights), with synthetic reference files.

A random-weight judge never writes a parseable free-text reply, so this router constrains the
reference protocols' replies (``EDITJUDGE_REFERENCE_REPLY=constrained``): the real engines must
accept those regular expressions and every reply must parse. The engine's own rendering of a gedit
prompt shows the reference's layout: the images, then the one text part with nothing in between.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import GEdit, Item
from tests.e2e.conftest import SERVED_NAME, router_process
from tests.helpers import b64, image_bytes
from tests.server import gedit_fixture, imgedit_fixture

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prompt_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("reference-prompts")
    return gedit_fixture.write_prompts(folder), imgedit_fixture.write_prompts(folder)


@pytest.fixture(scope="module")
def reference_router(vllm_servers: list[str], prompt_files: tuple[Path, Path]) -> Iterator[str]:
    with router_process(
        vllm_servers,
        EDITJUDGE_GEDIT_PROMPTS=str(prompt_files[0]),
        EDITJUDGE_IMGEDIT_PROMPTS=str(prompt_files[1]),
        EDITJUDGE_REFERENCE_REPLY="constrained",
    ) as url:
        yield url


def edit(i: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"ref-{i}",
        "image": b64(image_bytes((40 + 20 * i, 90, 200 - 15 * i), size=(200, 150))),
        "source_image": b64(image_bytes((30, 160, 60), size=(256, 192))),
        "instruction": f"paint square {i} orange",
        **extra,
    }


def test_constrained_reference_replies_parse_on_real_engines(reference_router: str) -> None:
    items = [edit(i, protocol="gedit", meta={"task_type": "color_alter"}) for i in range(4)]
    items += [
        edit(10 + i, protocol="imgedit", meta={"edit_type": t})
        for i, t in enumerate(["add", "style", "add", "style"])
    ]
    r = httpx.post(f"{reference_router}/score", json={"items": items}, timeout=600)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["ok"] * 8, [x["error"] for x in results]
    for x in results[:4]:
        assert 0 <= x["score"] <= 10 and x["meta"] == {"task_type": "color_alter"}
        assert set(x["scores"]) >= {"semantic_consistency", "perceptual_quality"}
        assert x["raw"].startswith('SC: {\n"score" : [')
    for x in results[4:]:
        assert 1 <= x["scores"]["overall"] <= 5 and x["raw"].startswith("Why: ")


def test_the_engine_renders_gedit_prompts_as_the_reference_lays_them_out(
    vllm_servers: list[str], prompt_files: tuple[Path, Path]
) -> None:
    limits = ImageLimits(10**7, 10**7, frozenset({"PNG"}))
    gedit = GEdit.from_file(prompt_files[0])
    item = gedit.prepare(
        Item(
            "make the sky purple",
            prepare_image(image_bytes((200, 2, 3), size=(200, 150)), limits),
            prepare_image(image_bytes((1, 2, 3), size=(256, 192)), limits),
        )
    )
    sc, pq = gedit.calls(item)
    rendered = []
    for call in (sc, pq):
        tokens = httpx.post(
            f"{vllm_servers[0]}/tokenize",
            json={
                "model": SERVED_NAME,
                "messages": [{"role": "user", "content": call.content}],
                "add_generation_prompt": True,
            },
            timeout=120,
        ).json()["tokens"]
        text = httpx.post(
            f"{vllm_servers[0]}/detokenize",
            json={"model": SERVED_NAME, "tokens": tokens},
            timeout=60,
        ).json()["prompt"]
        rendered.append(re.sub(r"(<\|image_pad\|>)+", "<pads>", text))
    image = "<|vision_start|><pads><|vision_end|>"
    assert f"{image}{image}{gedit.sc_text('make the sky purple')}<|im_end|>" in rendered[0]
    assert f"<|im_start|>user\n{image}{gedit.pq_text}<|im_end|>" in rendered[1]
