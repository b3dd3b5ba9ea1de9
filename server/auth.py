"""Bearer-token authentication for the scoring routes.

Keys are compared with :func:`hmac.compare_digest` against every configured key (no early exit on
the first match), as SHA-256 digests, so timing reveals neither which key matched, nor how much of a
guess was right, nor a key's length.
Keys never reach logs: they are ``SecretStr`` in the settings and are not echoed in errors.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from .deps import Ctx
from .errors import Unauthorized


def key_digests(keys: Sequence[bytes]) -> tuple[bytes, ...]:
    """What requests are checked against; computed once per app, not per request."""
    return tuple(hashlib.sha256(key).digest() for key in keys)


def digest_matches(presented: str, digests: Sequence[bytes]) -> bool:
    # Fixed-length digests: compare_digest's time then depends on neither content nor length.
    candidate = hashlib.sha256(presented.encode()).digest()
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched


def key_matches(presented: str, keys: Sequence[bytes]) -> bool:
    return digest_matches(presented, key_digests(keys))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def require_api_key(request: Request, ctx: Ctx) -> None:
    """Dependency: 401 unless auth is off or a valid ``Authorization: Bearer`` key is sent."""
    if not ctx.settings.auth_enabled:
        return
    token = bearer_token(request)
    if token is None or not digest_matches(token, ctx.api_key_digests):
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")


#: Route parameter type: the request is authorized before the handler runs (or 401).
Authorized = Annotated[None, Depends(require_api_key)]
