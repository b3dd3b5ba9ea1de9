"""``imgedit``: ImgEdit's per-edit-type prompts from the user's prompts.json; parse and scale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from editjudge.server.catalog import check_protocols
from editjudge.server.config import Settings
from editjudge.server.engine import ChatReply
from editjudge.server.errors import InvalidRequest
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import ImgEdit, Item, ParseFailure, ReferencePromptsError
from tests.helpers import admits, b64, fake_engines, image_bytes, item, router
from tests.server.imgedit_fixture import PROMPTS

LIMITS = ImageLimits(10**8, 10**8, frozenset({"PNG"}))
IMG = prepare_image(image_bytes((1, 2, 3)), LIMITS)
SRC = prepare_image(image_bytes((9, 8, 7)), LIMITS)


def reply(content: str) -> dict[str, ChatReply]:
    return {"imgedit": ChatReply(content, "stop", None, None, None)}


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(PROMPTS))
    return path


def test_each_edit_type_reads_its_criteria_and_scale_from_its_prompt(prompts_file: Path) -> None:
    imgedit = ImgEdit.from_file(prompts_file)
    add = imgedit.specialize({"edit_type": "add"}).spec  # type: ignore[attr-defined]
    assert add.reasoning_label == "Why"
    assert add.labels == ("Compliance", "Naturalness", "Physical & Detail")
    assert (add.lo, add.hi) == (1, 5)
    style = imgedit.specialize({"edit_type": "style"}).spec  # type: ignore[attr-defined]
    assert style.labels == ("Style Fidelity", "Content", "Quality")  # the reply format's labels


def test_the_message_is_the_references(prompts_file: Path) -> None:
    judge = ImgEdit.from_file(prompts_file).specialize({"edit_type": "add"})
    (call,) = judge.calls(Item("add a <b>hat</b>", IMG, SRC))
    assert call.content == [
        {"type": "text", "text": PROMPTS["add"].replace("<edit_prompt>", "add a <b>hat</b>")},
        {"type": "image_url", "image_url": {"url": SRC.data_url()}},
        {"type": "image_url", "image_url": {"url": IMG.data_url()}},
    ]
    assert call.params == {"max_tokens": 512}


def test_the_reply_is_read_with_the_references_rule(prompts_file: Path) -> None:
    judge = ImgEdit.from_file(prompts_file).specialize({"edit_type": "add"})
    raw = "Why: clean: mostly.\nCompliance: 5\n**Naturalness**: 4\nPhysical & Detail: 4\n"
    out = judge.combine(Item("x", IMG, SRC), reply(raw))
    # ImgEdit's step 1: the mean of the "Label: N" lines, rounded to two decimals
    assert out.scores == {"compliance": 5, "naturalness": 4, "physical_detail": 4, "overall": 4.33}
    assert out.score == pytest.approx((4.33 - 1) / 4 * 10)
    assert out.reasoning == "clean: mostly."


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("Why: x\nCompliance: 5\nNaturalness: 4", "2 score line"),  # the reference averages two
        ("Why: x\nCompliance: 5\nNaturalness: 4\nPhysical & Detail: 3\nOverall: 4", "4 score"),
        ("Why: x\nCompliance: 7\nNaturalness: 4\nPhysical & Detail: 3", "outside [1, 5]"),
        ("Why: x\nCompliance: 0\nNaturalness: 1\nPhysical & Detail: 1", "outside [1, 5]"),
        ("Why: x\nCompliance: \u00b2\nNaturalness: 1\nPhysical & Detail: 1", "not a number"),
        ("I cannot rate this.", "0 score line"),
    ],
)
def test_replies_the_reference_would_average_anyway_are_errors(
    prompts_file: Path, raw: str, why: str
) -> None:
    judge = ImgEdit.from_file(prompts_file).specialize({"edit_type": "add"})
    with pytest.raises(ParseFailure, match=re.escape(why)):
        judge.combine(Item("x", IMG, SRC), reply(raw))


def test_constrained_replies_follow_the_prompts_format(prompts_file: Path) -> None:
    judge = ImgEdit.from_file(prompts_file, constrained=True, reasoning_chars=40)
    (call,) = judge.specialize({"edit_type": "add"}).calls(Item("x", IMG, SRC))
    good = "Why: the hat fits: well.\nCompliance: 5\nNaturalness: 4\nPhysical & Detail: 3"
    assert admits(call.params, good)
    for bad in (good.replace(": 5", ": 6"), good.replace("Why", "Reason"), good + "\n"):
        assert not admits(call.params, bad)
    assert call.params["max_tokens"] >= 512


def test_edit_types_are_told_apart_by_fingerprint(prompts_file: Path) -> None:
    imgedit = ImgEdit.from_file(prompts_file)
    add, style = (imgedit.specialize({"edit_type": t}) for t in ("add", "style"))
    assert add.name == style.name == "imgedit"
    assert len({add.template_hash, style.template_hash, imgedit.template_hash}) == 3
    with pytest.raises(InvalidRequest, match=r"meta\.edit_type, one of: add, style"):
        imgedit.specialize({"edit_type": "teleport"})
    with pytest.raises(InvalidRequest, match=r"meta\.edit_type"):
        imgedit.specialize(None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"add": "Rate it.\nA: 1\nB: 2\n"}, "no <edit_prompt>"),
        ({"add": "Rate it, instruction: <edit_prompt>"}, "no reply format"),
        ({"add": "1  a\n2  b\nWhy: x\nA: n\nB: n\n<edit_prompt>"}, None),
        ({"add": "1  a\n3  b\nWhy: x\nA: n\nB: n\n<edit_prompt>"}, "not a scale"),
        ({"add": 5}, "values must be strings"),
        ([], "non-empty JSON object"),
    ],
)
def test_bad_prompt_files_name_the_file_and_fault(
    tmp_path: Path, content: Any, message: str | None
) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(content))
    if message is None:
        ImgEdit.from_file(path)
        return
    with pytest.raises(ReferencePromptsError, match=message) as info:
        ImgEdit.from_file(path)
    assert "EDITJUDGE_IMGEDIT_PROMPTS=" in str(info.value)


async def test_imgedit_through_the_router(prompts_file: Path) -> None:
    def judge(body: dict[str, Any]) -> str:
        text = body["messages"][0]["content"][0]["text"]
        return (
            "Why: ok\nStyle Fidelity: 2\nContent: 2\nQuality: 1"
            if "style" in text
            else ("Why: ok\nCompliance: 5\nNaturalness: 5\nPhysical & Detail: 4")
        )

    async with (
        fake_engines(1, reply=judge) as engines,
        router([u for _, u in engines], imgedit_prompts=prompts_file) as client,
    ):
        items = [
            item(0, protocol="imgedit", meta={"edit_type": "add"}),
            item(1, protocol="imgedit", meta={"edit_type": "style", "key": "673"}),
            item(2, protocol="imgedit"),
            item(3, protocol="imgedit", meta={"edit_type": "add"}, source_image=None),
        ]
        results = (await client.post("/score", json={"items": items})).json()["results"]
        assert results[0]["scores"]["overall"] == 4.67 and results[0]["status"] == "ok"
        assert results[1]["scores"]["overall"] == 1.67 and results[1]["meta"]["key"] == "673"
        assert (
            results[0]["fingerprint"]["template_hash"] != results[1]["fingerprint"]["template_hash"]
        )
        assert results[2]["error"]["code"] == "invalid_request"
        assert "edit_type" in results[2]["error"]["message"]
        assert "source_image" in results[3]["error"]["message"]
        assert len(engines[0][0].requests) == 2


async def test_without_the_setting_imgedit_says_what_to_set_and_where_the_old_rubric_went() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post("/score", json=item(1, protocol="imgedit"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "protocol_unavailable"
        message = r.json()["error"]["message"]
        assert "EDITJUDGE_IMGEDIT_PROMPTS" in message and "prompts.json" in message
        assert "edit-rubric" in message
    with pytest.raises(ValueError, match="EDITJUDGE_IMGEDIT_PROMPTS"):
        check_protocols(Settings(protocol="imgedit"))


async def test_a_group_takes_its_edit_type_from_the_groups_meta(prompts_file: Path) -> None:
    body = {
        "source_image": b64(image_bytes((1, 2, 3))),
        "instruction": "add a hat",
        "images": [b64(image_bytes((i, 9, 9))) for i in range(3)],
        "protocol": "imgedit",
    }
    reply_text = "Why: ok\nCompliance: 4\nNaturalness: 3\nPhysical & Detail: 2"
    async with (
        fake_engines(1, reply=lambda b: reply_text) as engines,
        router([u for _, u in engines], imgedit_prompts=prompts_file) as client,
    ):
        refused = await client.post("/score/group", json=body)
        assert refused.status_code == 422 and "edit_type" in refused.json()["error"]["message"]
        ok = await client.post("/score/group", json={**body, "meta": {"edit_type": "add"}})
        results = ok.json()["results"]
        assert [r["scores"]["overall"] for r in results] == [3.0] * 3
        assert all(r["meta"] == {"edit_type": "add"} for r in results)
        texts = [b["messages"][0]["content"][0]["text"] for b in engines[0][0].requests]
        assert len(texts) == 3 and all(t.startswith("\nRate a addition edit") for t in texts)
