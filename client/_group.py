"""``POST /score/group`` on the client side: the request body out, the group's results in.

A candidate image that cannot be prepared here becomes an error result in its place and is not
sent, exactly as the router treats a candidate it cannot read: the others are still scored and
ranked among themselves. A source image or instruction that cannot be sent fails the whole
group, as on the router.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from ._exceptions import InputError
from ._images import ImagePolicy, prepare
from ._models import GroupResult, ImageInput, Limits, ScoreResult
from ._wire import _invalid, _json, json_with_data_urls


@dataclass
class GroupRequest:
    """The body to post (None when no candidate could be prepared), which candidates it carries,
    and the error results of those left out."""

    body: bytes | None
    ids: list[str]
    sent: list[int] = field(default_factory=list)
    failed: dict[int, ScoreResult] = field(default_factory=dict)

    def merge(self, answer: GroupResult) -> GroupResult:
        """The router's answer with the left-out candidates' errors put back in their places."""
        results = dict(self.failed)
        results.update(zip(self.sent, answer.results, strict=True))
        merged = [results[i] for i in range(len(self.ids))]
        return answer.model_copy(update={"results": merged})


def group_request(
    images: Sequence[ImageInput],
    instruction: str,
    source_image: ImageInput,
    ids: Sequence[str] | None,
    protocol: str | None,
    policy: ImagePolicy,
    limits: Limits,
) -> GroupRequest:
    """Prepare every image (CPU-bound: run it in a worker thread) and build the body."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError("instruction must be a non-empty string", "invalid_request")
    if not images:
        raise InputError("a group needs at least one candidate image", "invalid_request")
    if len(images) > limits.max_batch_items:
        raise InputError(
            f"group has {len(images)} images; the router takes at most {limits.max_batch_items}",
            "too_many_items",
        )
    names = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(images))]
    if len(names) != len(images):
        raise InputError(f"{len(names)} ids for {len(images)} images", "invalid_request")
    request = GroupRequest(None, names)
    urls: list[str] = []
    for i, image in enumerate(images):
        try:
            urls.append(prepare(image, policy).data_url())
        except InputError as exc:
            message = f"images.{i}: {exc.message}"
            request.failed[i] = ScoreResult.failed(names[i], exc.code, message)
        else:
            request.sent.append(i)
    if not request.sent:
        return request
    try:
        source = prepare(source_image, policy).data_url()
    except InputError as exc:
        raise InputError(f"source_image: {exc.message}", exc.code) from None
    ids = [names[i] for i in request.sent]
    fields: dict[str, object] = {"instruction": instruction, "ids": ids}
    if protocol is not None:
        fields["protocol"] = protocol
    request.body = json_with_data_urls(fields, {"source_image": source, "images": urls})
    if len(request.body) > limits.max_body_bytes:
        raise InputError(
            f"the group's request is {len(request.body)} bytes; the router takes at most "
            f"{limits.max_body_bytes} (send fewer or smaller images)",
            "body_too_large",
        )
    return request


def parse_group(response: httpx.Response, expected: int) -> GroupResult:
    try:
        answer = GroupResult.model_validate(_json(response))
    except ValidationError:
        raise _invalid(response, "the reply is not a group result") from None
    if len(answer.results) != expected:
        raise _invalid(response, f"sent {expected} images, got {len(answer.results)} results")
    return answer
