"""Every kind of bad input is a 4xx with a machine-readable code, never a 5xx."""

from __future__ import annotations

import asyncio
import base64
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


# --- A corpus of malformed images ------------------------------------------------------------
# Each is sent as the edited image of an otherwise valid JSON item; none may reach the engine.


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return struct.pack(">I", len(payload)) + kind + payload + crc


def _png(width: int, height: int, extra: bytes = b"") -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + idat + _chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF) is rewritten to claim ``width`` x ``height``."""
    data = image_bytes(fmt="JPEG", size=(64, 48))
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]


def _webp_claiming(side: int) -> bytes:
    """A real lossy WEBP whose VP8 frame header is rewritten to claim ``side`` x ``side``."""
    data = bytearray(image_bytes(fmt="WEBP", size=(64, 48)))
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    data[26:30] = struct.pack("<HH", side, side)
    return bytes(data)


def _webp_canvas(side: int) -> bytes:
    """A WEBP whose extended header (VP8X) declares a ``side`` x ``side`` canvas."""
    vp8 = image_bytes(fmt="WEBP", size=(64, 48))[12:]
    dims = (side - 1).to_bytes(3, "little") * 2
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + dims + vp8
    return b"RIFF" + struct.pack("<I", len(body)) + body


_PNG = image_bytes()
_JPEG = image_bytes(fmt="JPEG", size=(128, 128))
_WEBP = image_bytes(fmt="WEBP", size=(128, 128))
_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'

_JPEG_URL = "data:image/jpeg;base64,/9j/"

IMAGE_CASES: list[tuple[str, str, int, str]] = [
    ("zero bytes (data URL)", "data:image/png;base64,", 422, "invalid_image"),
    ("zero width png", b64(_png(0, 10)), 422, "invalid_image"),
    ("png 1 x 2^31-1", b64(_png(1, 2**31 - 1)), 413, "too_many_pixels"),
    ("jpeg claiming 65000x65000", b64(_jpeg_claiming(65000, 65000)), 413, "too_many_pixels"),
    ("webp claiming 16383x16383", b64(_webp_claiming(16383)), 413, "too_many_pixels"),
    ("webp canvas 10^6 x 10^6", b64(_webp_canvas(1_000_000)), 413, "too_many_pixels"),
    ("png wrong magic", b64(b"\x89PNX" + _PNG[4:]), 422, "invalid_image"),
    ("garbage before png", b64(b"GARBAGE" + _PNG), 422, "invalid_image"),
    ("png header only", b64(_PNG[:20]), 422, "invalid_image"),
    ("truncated png", b64(_PNG[: len(_PNG) // 2]), 422, "invalid_image"),
    ("truncated jpeg", b64(_JPEG[: len(_JPEG) // 2]), 422, "invalid_image"),
    ("truncated webp", b64(_WEBP[: len(_WEBP) // 2]), 422, "invalid_image"),
    (
        "png zTXt bomb (50 MB text)",
        b64(_png(10, 10, _chunk(b"zTXt", b"k\0\0" + zlib.compress(b"A" * 50_000_000)))),
        422,
        "invalid_image",
    ),
    (
        "png iCCP bomb (100 MB profile)",
        b64(_png(10, 10, _chunk(b"iCCP", b"p\0\0" + zlib.compress(b"\0" * 100_000_000)))),
        422,
        "invalid_image",
    ),
    ("svg", b64(_SVG), 422, "invalid_image"),
    ("gif", b64(image_bytes(fmt="GIF")), 415, "unsupported_image_format"),
    ("tiff", b64(image_bytes(fmt="TIFF")), 415, "unsupported_image_format"),
    ("ico", b64(image_bytes(fmt="ICO")), 415, "unsupported_image_format"),
    ("base64 of random bytes", b64(bytes(range(256)) * 40), 422, "invalid_image"),
    ("encoded size over max_image_bytes", "A" * 300_000, 413, "image_too_large"),
    ("file:// URL", "file:///etc/passwd", 422, "invalid_image"),
    ("ftp URL", "ftp://127.0.0.1/x.png", 422, "invalid_image"),
    ("HTTP URL, upper case", "HTTP://127.0.0.1/x.png", 422, "invalid_image"),
    ("protocol-relative URL", "//127.0.0.1/x.png", 422, "invalid_image"),
    ("data URL not base64", "data:image/png,abc", 422, "invalid_image"),
    ("data URL without comma", "data:image/png;base64", 422, "invalid_image"),
    ("url-safe base64 alphabet", "-_-_" * 100, 422, "invalid_image"),
    ("base64 with embedded newline", b64(_PNG)[:12] + "\n" + b64(_PNG)[12:], 422, "invalid_image"),
    # long enough to be cut out of the body before the JSON parse (editjudge.server.jsonbody)
    ("long base64, a stray character", "/9j/" + "A" * 6000 + "*AAA", 422, "invalid_image"),
    ("long data URL, bad padding", _JPEG_URL + "A" * 6001, 422, "invalid_image"),
    ("long data URL, not base64", "data:image/jpeg,/9j/" + "A" * 6001, 422, "invalid_image"),
]


@pytest.mark.parametrize(
    ("name", "image", "status", "code"), IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES]
)
async def test_malformed_image_corpus(name: str, image: str, status: int, code: str) -> None:
    async with (
        fake_engines(1) as engines,
        router([u for _, u in engines], max_image_bytes=200_000) as c,
    ):
        for field in ("image", "source_image"):
            body = {**item(0), field: image}
            r = await c.post("/score", json=body)
            assert r.status_code == status, (field, r.text)
            err = r.json()["error"]
            assert err["code"] == code and err["message"].startswith(field)
            # the same image inside a batch sinks only its own item
            r = await c.post("/score", json={"items": [item(1), body]})
            assert r.status_code == 200
            res = r.json()["results"]
            assert res[0]["status"] == "ok" and res[1]["error"]["code"] == code
        # the same bytes as an uploaded file (text that is not base64 is uploaded as it is)
        try:
            raw = base64.b64decode(image.rsplit(",", 1)[-1], validate=True)
        except ValueError:
            raw = image.encode()
        files = {"image": ("x.png", raw, "image/png")}
        r = await c.post("/score", files=files, data={"instruction": "x"})
        assert 400 <= r.status_code < 500, r.text
        if raw and raw != image.encode():
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
        assert len(engines[0][0].requests) == 4  # only the two good batch items got through


async def test_multipart_malformed_files() -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        for data, code in [
            (b"", "invalid_image"),
            (_PNG[: len(_PNG) // 2], "invalid_image"),
            (_png(1, 2**31 - 1), "too_many_pixels"),
            (_jpeg_claiming(65000, 65000), "too_many_pixels"),
            (_SVG, "invalid_image"),
            (image_bytes(fmt="GIF"), "unsupported_image_format"),
        ]:
            r = await c.post(
                "/score",
                files={"image": ("x.png", data, "image/png")},
                data={"instruction": "x"},
            )
            assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, r.text
        assert engines[0][0].requests == []


# Accepted on purpose: decoders ignore what follows the image's end marker (phones append such
# trailers to JPEGs), and the declared MIME type of a data URL is not trusted - the content is.
ACCEPTED_CASES = [
    ("png + trailing script", b64(_PNG + b"<script>alert(1)</script>" * 40), "image/png"),
    ("jpeg + appended zip (polyglot)", b64(_JPEG + b"PK\x03\x04" + bytes(1000)), "image/jpeg"),
    ("png declared as text/html", "data:text/html;base64," + b64(_PNG), "image/png"),
]


@pytest.mark.parametrize(
    ("name", "image", "mime"), ACCEPTED_CASES, ids=[c[0] for c in ACCEPTED_CASES]
)
async def test_images_accepted_by_content(name: str, image: str, mime: str) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", json={**item(0), "image": image})
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        sent = engines[0][0].requests[0]["messages"][0]["content"]
        urls = [p["image_url"]["url"] for p in sent if p["type"] == "image_url"]
        assert urls[-1].startswith(f"data:{mime};base64,")


async def test_image_urls_are_never_fetched() -> None:
    """SSRF guard: an image given as a URL to a listening socket gets no connection."""
    hits = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
            for url in (
                f"http://127.0.0.1:{port}/x.png",
                f"https://127.0.0.1:{port}/x.png",
                f"data:image/png;base64,http://127.0.0.1:{port}/x.png",
            ):
                r = await c.post("/score", json={**item(0), "image": url})
                assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
                r = await c.post("/score", json={**item(0), "source_image": url})
                assert r.status_code == 422
            await asyncio.sleep(0.1)
    finally:
        server.close()
    assert hits == 0


# --- A corpus of malformed bodies -----------------------------------------------------------

_GOOD = b64(_PNG).encode()
_JSON = "application/json"

BODY_CASES: list[tuple[str, bytes, str, int, str]] = [
    ("zero-byte body", b"", _JSON, 400, "invalid_json"),
    ("whitespace body", b"  \n ", _JSON, 400, "invalid_json"),
    ("json null", b"null", _JSON, 422, "invalid_request"),
    ("json string", b'"hello"', _JSON, 422, "invalid_request"),
    ("arrays nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, _JSON, 400, "invalid_json"),
    (
        "items nested 10000 deep",
        b'{"items":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        _JSON,
        400,
        "invalid_json",
    ),
    (
        "objects nested 1000 deep",
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        _JSON,
        422,
        "invalid_request",
    ),
    ("objects nested 2000 deep", b'{"a":' * 2000 + b"1" + b"}" * 2000, _JSON, 400, "invalid_json"),
    (
        "instruction is a nested object",
        b'{"image":"' + _GOOD + b'","instruction":' + b'{"a":' * 200 + b"1" + b"}" * 201,
        _JSON,
        422,
        "invalid_request",
    ),
    (
        "2 MB instruction",
        b'{"image":"' + _GOOD + b'","instruction":"' + b"x" * 2_000_000 + b'"}',
        _JSON,
        422,
        "invalid_request",
    ),
    (
        "100 kB id",
        b'{"image":"' + _GOOD + b'","instruction":"x","id":"' + b"i" * 100_000 + b'"}',
        _JSON,
        422,
        "invalid_request",
    ),
    (
        "1 MB protocol name",
        b'{"image":"' + _GOOD + b'","instruction":"x","protocol":"' + b"p" * 1_000_000 + b'"}',
        _JSON,
        422,
        "invalid_request",
    ),
    (
        "blank instruction",
        b'{"image":"' + _GOOD + b'","instruction":" \\t\\n "}',
        _JSON,
        422,
        "invalid_request",
    ),
    (
        "non-UTF-8 bytes",
        b'{"image":"' + _GOOD + b'","instruction":"\xff\xfe"}',
        _JSON,
        400,
        "invalid_json",
    ),
    ("UTF-16 body", '{"image":"x","instruction":"y"}'.encode("utf-16"), _JSON, 400, "invalid_json"),
    (
        "UTF-8 BOM",
        b'\xef\xbb\xbf{"image":"' + _GOOD + b'","instruction":"x"}',
        _JSON,
        400,
        "invalid_json",
    ),
    (
        "lone surrogate escape",
        b'{"image":"' + _GOOD + b'","instruction":"\\ud800"}',
        _JSON,
        400,
        "invalid_json",
    ),
    (
        "NaN literal",
        b'{"image":"' + _GOOD + b'","instruction":"x","id":NaN}',
        _JSON,
        400,
        "invalid_json",
    ),
    (
        "trailing garbage",
        b'{"image":"' + _GOOD + b'","instruction":"x"}xyz',
        _JSON,
        400,
        "invalid_json",
    ),
    ("text/plain", b"hello", "text/plain", 415, "unsupported_media_type"),
    ("application/xml", b"<score/>", "application/xml", 415, "unsupported_media_type"),
    (
        "form-urlencoded",
        b"image=x&instruction=y",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    ("image/png body", _PNG, "image/png", 415, "unsupported_media_type"),
    ("multipart without boundary", b"abc", "multipart/form-data", 422, "invalid_request"),
    (
        "multipart, wrong boundary",
        b'--other\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--other--\r\n',
        "multipart/form-data; boundary=xyz",
        422,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "ctype", "status", "code"), BODY_CASES, ids=[c[0] for c in BODY_CASES]
)
async def test_malformed_body_corpus(
    name: str, body: bytes, ctype: str, status: int, code: str
) -> None:
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        r = await c.post("/score", content=body, headers={"content-type": ctype})
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["code"] == code and err["message"]
        assert len(r.content) < 2000  # errors never echo the (possibly huge) input
        assert engines[0][0].requests == []


async def test_multipart_limits() -> None:
    png = ("a.png", _PNG, "image/png")
    async with fake_engines(1) as engines, router([u for _, u in engines]) as c:
        three_files = [("image", png), ("source_image", png), ("image", png)]
        r = await c.post("/score", files=three_files, data={"instruction": "x"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        many_fields = {f"f{i}": "1" for i in range(20)}
        r = await c.post("/score", files={"image": png}, data=many_fields)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = await c.post("/score", files={"image": png}, data={"instruction": "x" * 9000})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = await c.post("/score", files={"image": png}, data={"instruction": "x", "id": "i" * 600})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        text_image = {"image": "not a file", "instruction": "x"}
        r = await c.post("/score", files={"source_image": png}, data=text_image)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        assert engines[0][0].requests == []
        r = await c.post(  # non-UTF-8 text in a form field is decoded leniently, not a 5xx
            "/score",
            content=b'--b\r\nContent-Disposition: form-data; name="instruction"\r\n\r\n\xff\xfe'
            b'\r\n--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + _PNG + b"\r\n--b--\r\n",
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert r.status_code < 500, r.text
