"""Bearer-token authentication for the scoring routes.

Keys are compared with :func:`hmac.compare_digest` against every configured key (no early exit on
the first match), as SHA-256 digests, so timing reveals neither which key matched, nor how much of a
guess was right, nor a key's length.
Keys never reach logs: they are ``SecretStr`` in the settings and are not echoed in errors.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from .context import Ctx
from .errors import Unauthorized


def key_matches(presented: str, keys: list[bytes]) -> bool:
    # Fixed-length digests: compare_digest's time then depends on neither content nor length.
    candidate = hashlib.sha256(presented.encode()).digest()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, hashlib.sha256(key).digest())
    return matched


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
    keys = [k.get_secret_value().encode() for k in ctx.settings.api_keys]
    if token is None or not key_matches(token, keys):
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>'")
