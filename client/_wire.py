"""The HTTP API's shapes on the client side: request bodies out, results and errors in."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError

from ._exceptions import APIError, InputError, ServerError, error_for_status
from ._images import ImagePolicy, prepare
from ._models import ImageInput, Item, Limits, ScoreResult, ServerInfo
from ._retry import parse_retry_after

_BATCH_HEAD = b'{"items":['


def item_json(item: Item, item_id: str | None, policy: ImagePolicy) -> bytes:
    """One item as the JSON the router expects, with its images prepared (CPU-bound)."""
    if not isinstance(item.instruction, str) or not item.instruction.strip():
        raise InputError("instruction must be a non-empty string", "invalid_request")
    urls: dict[str, str | list[str]] = {"image": _image(item.image, "image", policy)}
    if item.source_image is not None:
        urls["source_image"] = _image(item.source_image, "source_image", policy)
    body: dict[str, Any] = {"instruction": item.instruction}
    if item_id is not None:
        body["id"] = item_id
    if item.protocol is not None:
        body["protocol"] = item.protocol
    if item.meta is not None:
        body["meta"] = item.meta
    return json_with_data_urls(body, urls)


def json_with_data_urls(fields: dict[str, Any], urls: dict[str, str | list[str]]) -> bytes:
    """``fields`` as a compact JSON object, with the ``urls`` fields (data URLs made by
    :meth:`Encoded.data_url`) spliced in as they are.

    A data URL is a mime type and base64: nothing in it needs escaping in JSON, and passing its
    hundreds of kilobytes through ``json.dumps`` would only scan them again (about 1 ms for a
    megapixel JPEG, as much as a quarter of what encoding it costs).
    """
    parts = [
        f'"{key}":"{value}"' if isinstance(value, str) else f'"{key}":["' + '","'.join(value) + '"]'
        for key, value in urls.items()
    ]
    rest = json.dumps(fields, separators=(",", ":"))[1:-1]
    if rest:
        parts.append(rest)
    return ("{" + ",".join(parts) + "}").encode()


def _image(value: ImageInput, field: str, policy: ImagePolicy) -> str:
    try:
        return prepare(value, policy).data_url()
    except InputError as exc:
        raise InputError(f"{field}: {exc.message}", exc.code) from None


def batch_tail(protocol: str | None) -> bytes:
    if protocol is None:
        return b"]}"
    return b'],"protocol":' + json.dumps(protocol).encode() + b"}"


def batch_body(parts: Sequence[bytes], protocol: str | None) -> bytes:
    return _BATCH_HEAD + b",".join(parts) + batch_tail(protocol)


def pack(sizes: Sequence[int], protocol: str | None, limits: Limits) -> list[list[int]]:
    """Group item indices into batch bodies within ``max_body_bytes`` and ``max_batch_items``.

    Every size must fit on its own (callers turn oversized items into error results first).
    """
    overhead = len(_BATCH_HEAD) + len(batch_tail(protocol))
    groups: list[list[int]] = []
    current: list[int] = []
    used = overhead
    for index, size in enumerate(sizes):
        extra = size + (1 if current else 0)  # the comma
        if current and (
            used + extra > limits.max_body_bytes or len(current) >= limits.max_batch_items
        ):
            groups.append(current)
            current, used, extra = [], overhead, size
        current.append(index)
        used += extra
    if current:
        groups.append(current)
    return groups


def sized_item_json(
    item: Item, item_id: str | None, policy: ImagePolicy, protocol: str | None, limits: Limits
) -> bytes:
    """:func:`item_json`, refused with :class:`InputError` if it cannot fit any request."""
    body = item_json(item, item_id, policy)
    if not fits_alone(len(body), protocol, limits):
        raise InputError("item is larger than the router's max_body_bytes", "body_too_large")
    return body


def fits_alone(size: int, protocol: str | None, limits: Limits) -> bool:
    return len(_BATCH_HEAD) + size + len(batch_tail(protocol)) <= limits.max_body_bytes


def error_from_response(response: httpx.Response) -> APIError:
    """The typed error for a non-2xx answer, from its ``{"error": {...}}`` body if it has one."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    code, message = f"http_{status}", response.reason_phrase or "error"
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        pass  # e.g. an HTML page from a proxy: the status line says enough
    return error_for_status(status, code, message, retry_after)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _invalid(response, "the reply is not JSON") from None


def _invalid(response: httpx.Response, why: str) -> APIError:
    return ServerError(response.status_code, "invalid_response", f"{why} (is this a router?)")


def parse_info(response: httpx.Response) -> ServerInfo:
    try:
        return ServerInfo.model_validate(_json(response))
    except ValidationError:
        raise _invalid(response, "the reply is not GET /info's") from None


def parse_result(response: httpx.Response) -> ScoreResult:
    try:
        return ScoreResult.model_validate(_json(response))
    except ValidationError:
        raise _invalid(response, "the reply is not a score result") from None


def parse_batch(response: httpx.Response, expected: int) -> list[ScoreResult]:
    data = _json(response)
    try:
        results = [ScoreResult.model_validate(r) for r in data["results"]]
    except (KeyError, TypeError, ValidationError):
        raise _invalid(response, "the reply is not a batch result") from None
    if len(results) != expected:
        raise _invalid(response, f"sent {expected} items, got {len(results)} results")
    return results
