"""editjudge.client: score image edits against an editjudge router (re-exported by ``editjudge``).

>>> from editjudge import Client
>>> with Client("http://gpu-box:8000") as judge:
...     result = judge.score("edit.png", "add a red hat", source_image="source.png")
...     result.score, result.scores

See :class:`Client` / :class:`AsyncClient` for batches (``score_many``) and options.
"""

from __future__ import annotations

from ._async_client import API_KEY_ENV, DEFAULT_URL, AsyncClient
from ._client import Client
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
    GroupResult,
    ImageInput,
    Item,
    Limits,
    ScoreResult,
    ServerInfo,
)
from ._retry import RetryPolicy
from ._reward import AsyncReward, Reward, RewardError

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_URL",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncReward",
    "AuthenticationError",
    "BadRequestError",
    "Capacity",
    "Client",
    "EditJudgeError",
    "ErrorInfo",
    "Fingerprint",
    "GroupResult",
    "ImageInput",
    "InputError",
    "Item",
    "Limits",
    "NotFoundError",
    "RateLimitError",
    "RetryPolicy",
    "Reward",
    "RewardError",
    "ScoreResult",
    "ServerError",
    "ServerInfo",
    "ServiceUnavailableError",
]
