"""``POST /score`` JSON bodies parsed without turning their images into Python strings.

A body is mostly its images' base64 text (~120 KB each for the usual 512x512 JPEG), which orjson
would validate and copy into ``str`` objects that intake then encodes back to bytes. Instead, each
long string of the body that is an image's text (bare base64 or a base64 data URL, its alphabet
checked) is cut out as bytes (a :class:`~editjudge.server.images.B64Image`) and replaced by a short
placeholder; orjson parses what is left. Strings are found with ``bytes.find`` (memchr) between
their quotes, so the Python work is per string, never per byte, and bounded: a body with more
strings than ``MAX_STRINGS`` is parsed whole, as before.

Whatever the cut cannot vouch for takes the old way, orjson on the whole body, so answers do not
change: a body that is not valid JSON (orjson's own error message), a long string that is not
clean base64 (intake's image error), a placeholder anywhere but an item's ``image`` or
``source_image`` (a field that is not an image keeps its text). A cut string holds only base64
characters, valid JSON string content, so the rest parses exactly as the whole body would.
A placeholder carries a random per-process nonce, so no caller can forge one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import orjson

from .b64 import valid_b64
from .errors import InvalidJSON, InvalidRequest
from .images import B64Image

_NONCE = "~ej" + secrets.token_hex(12) + "c"
#: Strings shorter than this stay in the JSON: cutting them would cost more than it saves.
MIN_CUT = 4096
#: Strings looked at before giving up on cutting (a body of many small strings is parsed whole).
MAX_STRINGS = 128
_MAX_HEADER = 256  # a data URL's header ("data:image/jpeg;base64") is far shorter
_MAX_BACKSLASHES = 64  # a quote after a longer run of them: the whole body goes to orjson
_BACKSLASH = ord("\\")
#: Longer than any placeholder the cut leaves: a longer string is never looked up.
TOKEN_MAX = len(_NONCE) + 8


def load_score_json(body: bytes | bytearray) -> tuple[dict[str, Any], dict[str, B64Image]]:
    """A ``/score`` body as a JSON object, its image strings as placeholders (keys of the second
    value); errors as :func:`load_json` raises them."""
    return _load_cut(body, _score_images)


def load_group_json(body: bytes | bytearray) -> tuple[dict[str, Any], dict[str, B64Image]]:
    """A ``/score/group`` body, as :func:`load_score_json` does a ``/score`` one: its
    ``source_image`` and ``images`` cut out."""
    return _load_cut(body, _group_images)


def _load_cut(
    body: bytes | bytearray, image_fields: Callable[[dict[str, Any]], list[Any] | None]
) -> tuple[dict[str, Any], dict[str, B64Image]]:
    cut = _cut(body)
    if cut is not None:
        skeleton, images = cut
        try:
            obj = orjson.loads(skeleton)
        except orjson.JSONDecodeError:
            obj = None  # the whole body reports its own error below
        if isinstance(obj, dict) and _placed(image_fields(obj), images):
            return obj, images
    return load_json(body), {}


def load_json(body: bytes | bytearray) -> dict[str, Any]:
    """A JSON object body, or the 4xx for what it is instead."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidRequest("body must be a JSON object")
    return obj


def _cut(body: bytes | bytearray) -> tuple[bytes, dict[str, B64Image]] | None:
    """The body with its image strings replaced by placeholders; None: parse it whole."""
    with memoryview(body) as view:  # released on return: a bytearray body may be cleared next
        return _cut_view(body, view)


def _cut_view(
    body: bytes | bytearray, view: memoryview
) -> tuple[bytes, dict[str, B64Image]] | None:
    pieces: list[bytes] = []
    images: dict[str, B64Image] = {}
    start = pos = 0
    for _ in range(MAX_STRINGS):
        first = body.find(b'"', pos)
        if first < 0:
            break
        end = _string_end(body, first + 1)
        if end < 0:
            return None
        image = _image(body, view, first + 1, end) if end - first > MIN_CUT else None
        if image is not None:
            token = f"{_NONCE}{len(images)}"
            pieces += (bytes(view[start : first + 1]), token.encode())
            images[token] = image
            start = end
        pos = end + 1
    else:
        return None
    if not images:
        return None
    pieces.append(bytes(view[start:]))
    return b"".join(pieces), images


def _string_end(body: bytes | bytearray, pos: int) -> int:
    """Where the JSON string whose text starts at ``pos`` ends (its closing quote), or -1."""
    while True:
        end = body.find(b'"', pos)
        if end < 0:
            return -1
        run = 0
        while run <= _MAX_BACKSLASHES and body[end - 1 - run] == _BACKSLASH:
            run += 1
        if run > _MAX_BACKSLASHES:
            return -1
        if run % 2 == 0:
            return end
        pos = end + 1  # an escaped quote: the string goes on


def _image(body: bytes | bytearray, view: memoryview, start: int, end: int) -> B64Image | None:
    """The string ``body[start:end]`` as an image's text, if it is clean base64 (bare or after a
    data URL header of printable ASCII)."""
    header = ""
    if body.startswith(b"data:", start):
        comma = body.find(b",", start, min(end, start + _MAX_HEADER))
        if comma < 0:
            return None
        head = bytes(view[start:comma])
        if not head.isascii() or b"\\" in head or not head.decode("ascii").isprintable():
            return None
        header, start = head.decode("ascii"), comma + 1
    text = bytes(view[start:end])
    return B64Image(header, text) if valid_b64(text) else None


def _score_images(obj: dict[str, Any]) -> list[Any] | None:
    """The values of every item's ``image`` and ``source_image`` (None: not a ``/score`` shape)."""
    items = obj.get("items") if "items" in obj else [obj]
    if not isinstance(items, list):
        return None
    keys = ("image", "source_image")
    return [item.get(k) for item in items if isinstance(item, dict) for k in keys]


def _group_images(obj: dict[str, Any]) -> list[Any] | None:
    """The values of ``source_image`` and of every ``images`` entry (None: not a group shape)."""
    images = obj.get("images")
    return [obj.get("source_image"), *images] if isinstance(images, list) else None


def _placed(values: list[Any] | None, images: dict[str, B64Image]) -> bool:
    """Whether every placeholder is one of the image fields' ``values``, once each (anything
    else, such as a long base64 ``id``, must keep its text)."""
    if values is None:
        return False
    found = sum(isinstance(v, str) and len(v) < TOKEN_MAX and v in images for v in values)
    return found == len(images)
