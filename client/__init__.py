"""editjudge.client: score image edits against an editjudge router (re-exported by ``editjudge``).

>>> from editjudge import Client
>>> with Client("http://gpu-box:8000") as judge:
...     result = judge.score("edit.png", "add a red hat", source_image="source.png")
...     result.score, result.scores

See :class:`Client` / :class:`AsyncClient` for batches (``score_many``) and options.
"""

from __future__ import annotations

from ._client import API_KEY_ENV, DEFAULT_URL, AsyncClient, Client
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    EditJudgeError,
    InputError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
)
from ._models import (
    Capacity,
    ErrorInfo,
    Fingerprint,
    ImageInput,
    Item,
    Limits,
    ScoreResult,
    ServerInfo,
)
from ._retry import RetryPolicy

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_URL",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Capacity",
    "Client",
    "EditJudgeError",
    "ErrorInfo",
    "Fingerprint",
    "ImageInput",
    "InputError",
    "Item",
    "Limits",
    "NotFoundError",
    "RateLimitError",
    "RetryPolicy",
    "ScoreResult",
    "ServerError",
    "ServerInfo",
    "ServiceUnavailableError",
]
