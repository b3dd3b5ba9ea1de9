"""``gedit``: reference prompts read with ast; the reference layout, images, budget and parse."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from editjudge.server.catalog import check_protocols
from editjudge.server.config import Settings
from editjudge.server.engine import ChatReply
from editjudge.server.errors import InvalidRequest
from editjudge.server.images import ImageLimits, prepare_image
from editjudge.server.protocols import GEdit, Item, ParseFailure, ReferencePromptsError
from editjudge.server.protocols.gedit_images import MAX_PIXELS, smart_size
from editjudge.server.protocols.gedit_reply import parse_reply
from tests.helpers import admits, b64, fake_engines, image_bytes, item, router
from tests.server.gedit_fixture import PQ_TEXT, SC_TEMPLATE, write_prompts

LIMITS = ImageLimits(10**8, 10**8, frozenset({"PNG", "JPEG"}))


def png(
    size: tuple[int, int], color: tuple[int, int, int] = (200, 40, 40), mode: str = "RGB"
) -> bytes:
    return image_bytes(color, size) if mode == "RGB" else _converted(size, color, mode)


def _converted(size: tuple[int, int], color: tuple[int, int, int], mode: str) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(image_bytes(color, size))).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def decoded(part: dict[str, Any]) -> Image.Image:
    import base64

    return Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))


def reply(content: str) -> ChatReply:
    return ChatReply(content, "stop", None, None, None)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return write_prompts(tmp_path)


def test_prompts_are_read_without_running_the_file(prompts: Path) -> None:
    gedit = GEdit.from_file(prompts)  # the file ends in raise SystemExit: it never ran
    assert gedit.sc_text("add a <b>hat</b>") == SC_TEMPLATE.replace(
        "<instruction>", "add a <b>hat</b>"
    )
    assert gedit.pq_text == PQ_TEXT
    # the reference's str.replace: every placeholder, the instruction itself left alone
    assert gedit.sc_text("say <instruction>").count("say <instruction>") == 1


def test_messages_are_the_references_layout(prompts: Path) -> None:
    src = prepare_image(png((56, 56), (1, 2, 3)), LIMITS)
    edit = prepare_image(png((56, 56), (9, 9, 9)), LIMITS)
    sc, pq = GEdit.from_file(prompts).calls(Item("make it red", edit, src))
    assert [p["type"] for p in sc.content] == ["image_url", "image_url", "text"]
    assert [p["type"] for p in pq.content] == ["image_url", "text"]
    # one text part, exactly the reference's string: no separator added before it
    assert sc.content[2]["text"] == SC_TEMPLATE.replace("<instruction>", "make it red")
    assert pq.content[1]["text"] == PQ_TEXT
    assert sc.content[0]["image_url"]["url"] == src.data_url()
    assert sc.content[1]["image_url"]["url"] == edit.data_url() == pq.content[0]["image_url"]["url"]
    # free text, as the reference decodes: no constraint, the reference's 512-token budget
    assert sc.params == pq.params == {"max_tokens": 512}


def test_constrained_replies_take_the_prompts_own_layout(prompts: Path) -> None:
    free, constrained = GEdit.from_file(prompts), GEdit.from_file(prompts, constrained=True)
    src = prepare_image(png((56, 56)), LIMITS)
    (sc, _) = constrained.calls(Item("x", src, src))
    good = '{\n"score" : [7, 10],\n"reasoning" : "The hat is there."\n}'
    assert admits(sc.params, good)
    for bad in (good.replace("[7, 10]", "[7, 11]"), good.replace(" : ", ": "), '{"score":[7,10]}'):
        assert not admits(sc.params, bad)
    assert sc.params["max_tokens"] >= 512 and sc.params["max_tokens"] > len(good)
    assert free.template_hash != constrained.template_hash


def test_missing_constants_and_bad_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vie_prompts.py"
    path.write_text('_context_no_delimit = "only this"\n')
    with pytest.raises(
        ReferencePromptsError,
        match=r"EDITJUDGE_GEDIT_PROMPTS=.*vie_prompts.py.*_prompts_0shot_two_image_edit_rule",
    ):
        GEdit.from_file(path)
    path.write_text("def broken(:\n")
    with pytest.raises(ReferencePromptsError, match="not valid Python"):
        GEdit.from_file(path)
    with pytest.raises(ReferencePromptsError, match="cannot read"):
        GEdit.from_file(tmp_path / "absent.py")
    with pytest.raises(ValueError, match="EDITJUDGE_GEDIT_PROMPTS"):
        check_protocols(Settings(gedit_prompts=tmp_path / "absent.py"))


def test_images_are_resized_as_the_reference_does(prompts: Path) -> None:
    gedit = GEdit.from_file(prompts)
    source = prepare_image(png((300, 200), (10, 200, 10), mode="P"), LIMITS)
    edited = prepare_image(png((150, 90), (200, 10, 10), mode="L"), LIMITS)
    prepared = gedit.prepare(Item("x", edited, source))
    assert prepared.source is not None
    got_source, got_edited = (
        decoded({"image_url": {"url": prepared.source.data_url()}}),
        decoded({"image_url": {"url": prepared.image.data_url()}}),
    )
    assert got_source.size == got_edited.size == smart_size(300, 200) == (308, 196)
    # the reference's steps, one by one, with Pillow directly
    raw_src = Image.open(io.BytesIO(source.data))
    raw_edit = Image.open(io.BytesIO(edited.data)).convert("RGB").resize(raw_src.size)
    want_src = raw_src.convert("RGB").resize((308, 196))
    want_edit = raw_edit.resize((308, 196))
    assert got_source.convert("RGB").tobytes() == want_src.tobytes()
    assert got_edited.convert("RGB").tobytes() == want_edit.tobytes()


def test_an_image_already_as_the_judge_sees_it_passes_through(prompts: Path) -> None:
    gedit = GEdit.from_file(prompts)
    src = prepare_image(png((560, 420), (1, 2, 3)), LIMITS)
    edit = prepare_image(png((560, 420), (4, 5, 6)), LIMITS)
    prepared = gedit.prepare(Item("x", edit, src))
    assert prepared.source is src and prepared.image is edit


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (512, 384, (504, 392)),  # rounded to the 28 grid
        (30, 20, (84, 56)),  # under 4*28*28 pixels: scaled up
        (5000, 4000, (4004, 3192)),  # over 16384*28*28 pixels: scaled down
        (1024, 1024, (1036, 1036)),
    ],
)
def test_smart_size_follows_qwen_vl_utils(
    width: int, height: int, expected: tuple[int, int]
) -> None:
    assert smart_size(width, height) == expected
    w, h = expected
    assert w % 28 == 0 and h % 28 == 0 and w * h <= MAX_PIXELS


def test_too_elongated_or_sourceless_items_are_refused(prompts: Path) -> None:
    gedit = GEdit.from_file(prompts)
    edit = prepare_image(png((56, 56)), LIMITS)
    with pytest.raises(InvalidRequest, match="source_image"):
        gedit.prepare(Item("x", edit, None))
    long = prepare_image(png((2010, 10)), LIMITS)
    with pytest.raises(InvalidRequest, match="aspect ratio"):
        gedit.prepare(Item("x", edit, long))


@pytest.mark.parametrize(
    ("raw", "scores"),
    [
        ('{\n"score" : [8, 9],\n"reasoning" : "fine"\n}', [8, 9]),
        ('```json\n{"score": [6, 4], "reasoning": "x"}\n```', [6, 4]),
        ('||V^=^V||\n{"score": [5, 10]}\n||V^=^V|| {stray}', [5, 10]),
        ('{"score": 7}', [7]),  # a scalar score becomes a list
        ("[6, 0]", [6, 0]),  # a bare pair of integers
        (" 7 ", [7]),  # a bare integer 0-10
        ("{score: 8, reasoning: good edit}", [8]),  # repaired: bare keys and values quoted
        ('{"score": [8, 9], "reasoning": "line\none"}', [8, 9]),  # newlines removed
        ('{"score": [8, 9]', [8, 9]),  # no closing brace: the list is read
        ('[{"score": [4, 6]}]', [4, 6]),  # first "{" to last "}"
        ('{"score": [7.5, 8]}', [7.5, 8]),
    ],
)
def test_replies_are_read_as_the_reference_reads_them(raw: str, scores: list[float]) -> None:
    assert parse_reply(raw)[0] == scores


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "seven",
        "11",  # a bare integer off the scale
        "[6,  0]",  # the bare-pair rule allows one space at most
        '{"reasoning": "no score"}',
        '{"score": []}',
        '{"score": ["8", "9"]}',
        '{"score": [11, 5]}',  # the reference would take 5 from this list
        '{"score": [true, 8]}',
        '{"score": [NaN, 5]}',
        "{'score': [8, 9]}",
        '{"result": {"score": [8, 9]}}',
        "||V^=^V||||V^=^V||",
        "rate_limit_exceeded",
    ],
)
def test_what_the_reference_would_retry_guess_or_drop_is_an_error(raw: str) -> None:
    with pytest.raises(ParseFailure):
        parse_reply(raw)


def test_combine_is_the_square_root_of_the_two_minima(prompts: Path) -> None:
    gedit = GEdit.from_file(prompts)
    img = prepare_image(png((56, 56)), LIMITS)
    out = gedit.combine(
        Item("x", img, img),
        {"sc": reply('{"score": [8, 5], "reasoning": "ok"}'), "pq": reply('{"score": [9]}')},
    )
    assert out.score == pytest.approx(math.sqrt(5 * 9))
    assert out.scores["semantic_consistency"] == 5 and out.scores["perceptual_quality"] == 9
    assert out.scores["instruction_following"] == 8 and out.scores["over_editing"] == 5
    assert "naturalness" not in out.scores  # one PQ score: no names to give
    assert out.reasoning == "SC: ok"


async def test_without_the_setting_gedit_is_a_4xx_that_says_what_to_set() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as client:
        r = await client.post("/score", json=item(1, protocol="gedit"))
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "protocol_unavailable"
        assert (
            "EDITJUDGE_GEDIT_PROMPTS" in error["message"] and "vie_prompts.py" in error["message"]
        )
    with pytest.raises(ValueError, match="EDITJUDGE_GEDIT_PROMPTS"):
        check_protocols(Settings(protocol="gedit"))


async def test_gedit_through_the_router(prompts: Path) -> None:
    def judge(body: dict[str, Any]) -> str:
        content = body["messages"][0]["content"]
        return '{"score": [6, 8], "reasoning": "sc"}' if len(content) == 3 else '{"score": [9, 7]}'

    async with (
        fake_engines(1, reply=judge) as engines,
        router([u for _, u in engines], gedit_prompts=prompts) as client,
    ):
        info = (await client.get("/info")).json()
        assert "gedit" in info["protocols"]
        res = (await client.post("/score", json=item(1, protocol="gedit"))).json()
        assert res["status"] == "ok", res
        assert res["score"] == pytest.approx(math.sqrt(6 * 7), abs=1e-4)
        assert res["fingerprint"]["protocol"] == "gedit"
        bodies = engines[0][0].requests
        assert {b["max_tokens"] for b in bodies} == {512} and all(
            b["temperature"] == 0 for b in bodies
        )
        assert not any("structured_outputs" in b for b in bodies)
        no_source = {k: v for k, v in item(2, protocol="gedit").items() if k != "source_image"}
        r = await client.post("/score", json=no_source)
        assert r.status_code == 422 and "source_image" in r.json()["error"]["message"]


async def test_an_unparseable_free_reply_is_an_error_item_never_a_guess(prompts: Path) -> None:
    async with (
        fake_engines(1, reply=lambda body: "I think it is fine.") as engines,
        router([u for _, u in engines], gedit_prompts=prompts) as client,
    ):
        items = [item(i, protocol="gedit") for i in range(3)]
        results = (await client.post("/score", json={"items": items})).json()["results"]
        assert all(r["status"] == "error" and r["score"] is None for r in results)
        assert {r["error"]["code"] for r in results} == {"unparseable_reply"}


async def test_constrained_gedit_always_parses(prompts: Path) -> None:
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], gedit_prompts=prompts, reference_reply="constrained") as c,
    ):
        items = [item(i, protocol="gedit") for i in range(4)]
        results = (await c.post("/score", json={"items": items})).json()["results"]
        assert all(r["status"] == "ok" for r in results), results
        bodies = engines[0][0].requests
        assert all(b["max_tokens"] >= 512 and "regex" in b["structured_outputs"] for b in bodies)
        sc_reply = results[0]["raw"].removeprefix("SC: ").split("\nPQ: ")[0]
        assert re.fullmatch(bodies[0]["structured_outputs"]["regex"], sc_reply)


async def test_group_primes_the_judges_source_image(prompts: Path) -> None:
    source = image_bytes((1, 2, 3), (100, 80))
    body = {
        "source_image": b64(source),
        "instruction": "make it blue",
        "images": [b64(image_bytes((i, 80, 9), (50, 40))) for i in range(3)],
        "protocol": "gedit",
    }
    async with (
        fake_engines(1, reply=lambda b: '{"score": [5, 5]}') as engines,
        router([u for _, u in engines], gedit_prompts=prompts) as client,
    ):
        results = (await client.post("/score/group", json=body)).json()["results"]
        assert all(r["status"] == "ok" for r in results)
        prime, *calls = engines[0][0].requests
        assert prime["max_tokens"] == 1
        primed = prime["messages"][0]["content"][0]["image_url"]["url"]
        sc_sources = {
            c["messages"][0]["content"][0]["image_url"]["url"]
            for c in calls
            if len(c["messages"][0]["content"]) == 3
        }
        assert sc_sources == {primed}  # every SC call starts with the primed (resized) source
        assert decoded(prime["messages"][0]["content"][0]).size == smart_size(100, 80)
