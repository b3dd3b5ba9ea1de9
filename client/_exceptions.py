"""Typed errors of the client. Every one has a one-line ``str()`` fit for a terminal.

::

    EditJudgeError
    ├── InputError                 an image or item could not be prepared here (nothing was sent)
    ├── APIConnectionError         no HTTP answer: refused, reset, DNS, TLS
    │   └── APITimeoutError        no answer within the timeout
    └── APIError                   the server answered with an error: status, code, message
        ├── BadRequestError        4xx the request is wrong (retrying it unchanged will not help)
        │   ├── AuthenticationError    401 / 403
        │   └── NotFoundError          404 (wrong URL: not an editjudge router?)
        ├── RateLimitError         429 (retried; raised once retries are spent)
        ├── ServiceUnavailableError 503 (retried; raised once retries are spent)
        └── ServerError            other 5xx, and replies that are not what the API promises

Per-item failures inside a batch are not exceptions: they come back as results with
``status == "error"``.
"""

from __future__ import annotations


class EditJudgeError(Exception):
    """Root of every error the client raises on purpose."""


class InputError(EditJudgeError):
    """An input could not be turned into a request (missing file, not an image, too large)."""

    def __init__(self, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class APIConnectionError(EditJudgeError):
    """The server could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """No answer within the configured timeout."""


class APIError(EditJudgeError):
    """The server answered with an error body ``{"error": {"code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequestError(APIError):
    """A 4xx answer other than 429: the request itself is wrong."""


class AuthenticationError(BadRequestError):
    """401/403: a missing or wrong API key."""


class NotFoundError(BadRequestError):
    """404: the URL does not point at an editjudge router."""


class RateLimitError(APIError):
    """429: the router is at capacity."""


class ServiceUnavailableError(APIError):
    """503: no healthy scoring backend (or a proxy in front has none)."""


class ServerError(APIError):
    """A 5xx other than 503, or a reply that does not match the API."""


def error_for_status(
    status: int, code: str, message: str, retry_after: float | None = None
) -> APIError:
    """The most specific :class:`APIError` subclass for an HTTP status."""
    cls: type[APIError]
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = RateLimitError
    elif status == 503:
        cls = ServiceUnavailableError
    elif 400 <= status < 500:
        cls = BadRequestError
    else:
        cls = ServerError
    return cls(status, code, message, retry_after)
