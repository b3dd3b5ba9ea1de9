"""``/score`` JSON bodies with their images cut out before the parse: same objects, same errors."""

from __future__ import annotations

import base64
import random

import orjson
import pytest

from editjudge.server import jsonbody
from editjudge.server.errors import EditJudgeError, InvalidImage
from editjudge.server.images import B64Image, ImageLimits
from editjudge.server.jsonbody import load_json
from editjudge.server.passthrough import prepare_payload
from tests.helpers import fake_engines, router
from tests.server.test_images_header import noisy_jpeg

LIMITS = ImageLimits(10**7, 10**6, frozenset({"JPEG", "PNG"}), check="header")
B64 = base64.b64encode(random.Random(1).randbytes(9000)).decode()  # 12000 chars, no padding


def restored(obj: object, cut: dict[str, B64Image]) -> object:
    """``obj`` with each placeholder replaced by the text it stands for."""
    if isinstance(obj, dict):
        return {k: restored(v, cut) for k, v in obj.items()}
    if isinstance(obj, list):
        return [restored(v, cut) for v in obj]
    if isinstance(obj, str) and obj in cut:
        image = cut[obj]
        text = image.text.decode()
        return f"{image.header},{text}" if image.header else text
    return obj


def check_same(body: bytes, cuts: int) -> None:
    obj, cut = jsonbody.load_score_json(bytearray(body))
    assert len(cut) == cuts
    assert restored(obj, cut) == orjson.loads(body)


def test_images_are_cut_and_stand_for_the_same_values() -> None:
    body = {
        "instruction": 'say "hi" \\ and go \\"',
        "source_image": "data:image/jpeg;base64," + B64,
        "image": B64[:-4] + "AA==",
        "meta": {"k": ["\\\\", '"', "-" * 5000]},  # a long string that is no image stays
        "id": "a",
    }
    check_same(orjson.dumps(body), cuts=2)
    batch = {"items": [body, {"image": B64, "instruction": "b"}], "protocol": "x"}
    check_same(orjson.dumps(batch), cuts=3)


@pytest.mark.parametrize(
    "body",
    [
        {"image": B64, "instruction": "a", "id": B64},  # base64 in a field that is no image
        {"image": B64 + "!", "instruction": "a"},  # not clean base64: intake's error
        {"image": "data:image/jpeg;base64, " + B64, "instruction": "a"},
        {"image": "data:image/\\u00e9;base64," + B64, "instruction": "a"},
        {"items": [{"image": "x", "instruction": "a"}], "image": B64},  # not an item's field
        {"image": B64, "instruction": "a", "meta": {str(i): "" for i in range(200)}},
    ],
)
def test_what_the_cut_cannot_vouch_for_is_parsed_whole(body: dict[str, object]) -> None:
    raw = orjson.dumps(body).replace(b"\\\\u00e9", b"\\u00e9")
    obj, cut = jsonbody.load_score_json(bytearray(raw))
    assert cut == {} and obj == orjson.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"image": "' + B64.encode() + b'", "instruction": "a",}',
        b'{"image": "' + B64.encode() + b'", "instruction": "a"',
        b'["' + B64.encode() + b'"]',
        b'{"image": "' + B64.encode() + b'" "x"}',
        b'{"image": "' + B64.encode() + b'\\", "instruction": "a"}',
    ],
)
def test_bad_bodies_get_the_errors_of_a_whole_parse(raw: bytes) -> None:
    with pytest.raises(EditJudgeError) as whole:
        load_json(bytearray(raw))
    with pytest.raises(EditJudgeError) as cut:
        jsonbody.load_score_json(bytearray(raw))
    assert (cut.value.code, cut.value.message) == (whole.value.code, whole.value.message)


def test_a_cut_image_is_checked_like_its_text() -> None:
    jpeg_b64 = "/9j/" + B64[4:]
    for value in (jpeg_b64, "data:image/jpeg;base64," + jpeg_b64, "data:image/png," + B64):
        (image,) = jsonbody.load_score_json(orjson.dumps({"image": value}))[1].values()
        outcomes = []
        for arg in (value, image):
            try:
                outcomes.append(prepare_payload(arg, LIMITS).b64_bytes)
            except InvalidImage as exc:
                outcomes.append(exc.message)
        assert outcomes[0] == outcomes[1]


async def test_a_cut_image_reaches_the_engine_as_sent() -> None:
    jpeg = base64.b64encode(noisy_jpeg()).decode()
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        for image in (jpeg, "data:image/jpeg;base64," + jpeg):
            r = await c.post("/score", json={"image": image, "instruction": "make it blue"})
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
            sent = orjson.dumps(engines[0][0].requests[-1])
            assert b'"data:image/jpeg;base64,' + jpeg.encode() + b'"' in sent


def test_a_groups_source_and_candidates_are_cut_and_stand_for_the_same_values() -> None:
    group = {
        "source_image": "data:image/jpeg;base64," + B64,
        "instruction": "make it blue",
        "images": [B64, B64[:-4] + "AA==", "data:image/png;base64," + B64],
        "ids": ["a", "b", "c"],
        "meta": {"long": "-" * 5000},
    }
    raw = orjson.dumps(group)
    obj, cut = jsonbody.load_group_json(bytearray(raw))
    assert len(cut) == 4 and restored(obj, cut) == orjson.loads(raw)


@pytest.mark.parametrize(
    "body",
    [
        {"source_image": B64, "images": [B64], "instruction": "a", "ids": [B64]},
        {"source_image": B64, "images": B64, "instruction": "a"},  # not a list: pydantic's 422
        {"image": B64, "instruction": "a"},  # a /score shape sent to /score/group
    ],
)
def test_what_the_group_cut_cannot_vouch_for_is_parsed_whole(body: dict[str, object]) -> None:
    raw = orjson.dumps(body)
    obj, cut = jsonbody.load_group_json(bytearray(raw))
    assert cut == {} and obj == orjson.loads(raw)


async def test_a_groups_cut_images_reach_the_engine_as_sent() -> None:
    jpegs = [base64.b64encode(noisy_jpeg((256 + k, 256))).decode() for k in range(3)]
    body = {"source_image": jpegs[0], "instruction": "make it blue", "images": jpegs[1:]}
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score/group", json=body)
        assert r.status_code == 200, r.text
        assert all(res["status"] == "ok" for res in r.json()["results"])
        sent = b"".join(orjson.dumps(b) for b in engines[0][0].requests)
        for jpeg in jpegs:
            assert b'"data:image/jpeg;base64,' + jpeg.encode() + b'"' in sent
