"""Every kind of bad input is a 4xx with a machine-readable code, never a 5xx."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.helpers import b64, fake_engines, image_bytes, item, router


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))


CASES = [
    ("malformed json", b"{not json", 400, "invalid_json"),
    ("json array", b"[1, 2]", 422, "invalid_request"),
    ("empty object", b"{}", 422, "invalid_request"),
    ("missing instruction", {"image": b64(image_bytes())}, 422, "invalid_request"),
    ("empty instruction", {"image": b64(image_bytes()), "instruction": ""}, 422, "invalid_request"),
    ("wrong type", {"image": 42, "instruction": "x"}, 422, "invalid_request"),
    ("unknown field", {**item(0), "colour": "red"}, 422, "invalid_request"),
    ("not base64", {"image": "@@@@", "instruction": "x"}, 422, "invalid_image"),
    ("not an image", {"image": b64(b"plain text here"), "instruction": "x"}, 422, "invalid_image"),
    (
        "truncated",
        {"image": b64(image_bytes(fmt="JPEG", size=(128, 128))[:300]), "instruction": "x"},
        422,
        "invalid_image",
    ),
    ("url", {"image": "http://169.254.169.254/latest", "instruction": "x"}, 422, "invalid_image"),
    (
        "bmp",
        {"image": b64(image_bytes(fmt="BMP")), "instruction": "x"},
        415,
        "unsupported_image_format",
    ),
    (
        "pixel bomb",
        {"image": b64(_bomb_png(30000, 30000)), "instruction": "x"},
        413,
        "too_many_pixels",
    ),
    ("bad source", {**item(0), "source_image": "%%%"}, 422, "invalid_image"),
    ("unknown protocol", {**item(0), "protocol": "nope"}, 422, "unknown_protocol"),
    ("empty batch", {"items": []}, 422, "invalid_request"),
    ("batch not list", {"items": "abc"}, 422, "invalid_request"),
    ("too many items", {"items": [item(0)] * 5}, 413, "too_many_items"),
    ("unknown batch protocol", {"items": [item(0)], "protocol": "nope"}, 422, "unknown_protocol"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_json_input(name: str, body: object, status: int, code: str) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines], max_batch_items=4) as c:
        if isinstance(body, bytes):
            r = await c.post("/score", content=body, headers={"content-type": "application/json"})
        else:
            r = await c.post("/score", json=body)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["code"] == code and err["message"]
        assert engines[0][0].requests == []  # nothing reached the engine


async def test_body_over_limit_is_413_before_reading() -> None:
    body = item(0, instruction="x" * 2000)
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], max_body_bytes=1000) as c,
    ):
        r = await c.post("/score", json=body)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "body_too_large"


async def test_streamed_body_over_limit_without_content_length() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 500

    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], max_body_bytes=1000) as c,
    ):
        r = await c.post("/score", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


async def test_unsupported_content_type() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", content=b"hello", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("files", "data", "code"),
    [
        ({}, {"instruction": "x"}, "invalid_request"),
        ({"image": ("a.png", image_bytes(), "image/png")}, {}, "invalid_request"),
        (
            {"image": ("a.png", image_bytes(), "image/png")},
            {"instruction": "  "},
            "invalid_request",
        ),
        ({"image": ("a.png", b"garbage", "image/png")}, {"instruction": "x"}, "invalid_image"),
        (
            {"image": ("a.png", image_bytes(), "image/png")},
            {"instruction": "x", "evil": "1"},
            "invalid_request",
        ),
        (
            {"image": ("a.png", image_bytes(), "image/png")},
            {"instruction": "x", "protocol": "no"},
            "unknown_protocol",
        ),
    ],
)
async def test_bad_multipart(files: dict[str, object], data: dict[str, str], code: str) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", files=files or {"other": ("x", b"1")}, data=data)  # type: ignore[arg-type]
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"]["code"] == code


async def test_broken_multipart_body_is_a_4xx() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post(
            "/score",
            content=b"--xyz\r\nnonsense",
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert 400 <= r.status_code < 500, r.text
        assert "code" in r.json()["error"]


async def test_one_bad_item_never_sinks_the_batch() -> None:
    async with fake_engines(2) as engines, router([u for _, u in engines]) as c:
        items = [
            item(0),
            {"image": "%%%", "instruction": "x", "id": "bad"},
            item(2),
            {"instruction": "no image"},
            item(4, image=b64(image_bytes(fmt="BMP"))),
        ]
        r = await c.post("/score", json={"items": items})
        assert r.status_code == 200
        res = r.json()["results"]
        assert [x["status"] for x in res] == ["ok", "error", "ok", "error", "error"]
        assert [x["id"] for x in res] == ["item-0", "bad", "item-2", "3", "item-4"]
        assert res[1]["error"]["code"] == "invalid_image"
        assert res[3]["error"]["code"] == "invalid_request"
        assert res[4]["error"]["code"] == "unsupported_image_format"
        assert all(x["score"] is None for x in res if x["status"] == "error")


async def test_unknown_route_and_method_are_json_errors() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.get("/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await c.get("/score")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
