"""editjudge: judge image edits with a vision-language model, on every GPU of a box.

The client is what most code needs::

    from editjudge import Client

    with Client("http://gpu-box:8000") as judge:
        result = judge.score("edit.png", "add a red hat", source_image="source.png")
        print(result.status, result.score, result.scores)

:class:`AsyncClient` is its asyncio twin. :class:`Reward` (and :class:`AsyncReward`) turns the
judge into a reward function for RL training loops: in-memory images in, one float each out. The
router (``editjudge.server``), the GPU box's tooling (``editjudge.server.box``) and the fake engine
for tests (``editjudge.server.testing``) need the ``server`` extra.
"""

from __future__ import annotations

import pathlib as _pathlib

__version__ = "0.1.0"


def _checkout_layout() -> None:
    """In a checkout (an editable install, or the repository on ``sys.path``) the client and the
    router live in the top-level folders ``client/`` and ``server/`` beside this one; an installed
    wheel carries them inside this package. Either way they import as ``editjudge.client`` and
    ``editjudge.server``."""
    here = _pathlib.Path(__file__).resolve().parent
    root = here.parent
    if not (here / "client").is_dir() and (root / "client" / "__init__.py").is_file():
        __path__.append(str(root))


_checkout_layout()

from .client import (  # noqa: E402 - needs the path set up above
    API_KEY_ENV,
    DEFAULT_URL,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncClient,
    AsyncReward,
    AuthenticationError,
    BadRequestError,
    Capacity,
    Client,
    EditJudgeError,
    ErrorInfo,
    Fingerprint,
    GroupResult,
    ImageInput,
    InputError,
    Item,
    Limits,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    Reward,
    RewardError,
    ScoreResult,
    ServerError,
    ServerInfo,
    ServiceUnavailableError,
)

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
    "__version__",
]
