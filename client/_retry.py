"""When and how long to wait before trying again.

Retried: 429, 502 and 503 (the router, or a proxy in front of it, is busy or has no engine for
the moment), timeouts, connections that broke mid-request, and batch items that failed only
because no backend could take them (``no_healthy_backend``, ``backend_unavailable``). A server
that cannot be reached at all (refused, unknown host, no connection within the connect timeout)
is retried only once this client has had an answer from it: then the router is most likely
restarting; before that, the URL is most likely wrong, and waiting would only hide it. Never
retried: any other 4xx (the request is wrong), other 5xx (a 500 is a bug, a 504 means the work
itself took too long), and items the judge answered.

Scoring is deterministic (temperature 0, fixed seed), so sending an item twice cannot change its
score; a retry only costs time.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

from ._exceptions import APIConnectionError, APIError, EditJudgeError
from ._models import ScoreResult


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter that honours ``Retry-After``.

    The n-th wait (n = 0, 1, ...) is uniform in ``[0, min(max_delay_s, base_delay_s * 2**n)]``,
    but never shorter than the server's ``Retry-After`` (itself capped at ``max_delay_s``).
    ``max_attempts`` counts the first try: 1 disables retries.
    """

    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 502, 503})
    retry_item_codes: frozenset[str] = field(
        default_factory=lambda: frozenset({"no_healthy_backend", "backend_unavailable"})
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_s))
        return wait

    def should_retry(self, error: EditJudgeError, attempt: int, *, reached: bool = True) -> bool:
        """Whether ``error`` after try ``attempt`` (0-based) deserves another try.

        ``reached``: whether the server has answered this client before, or this request's
        connection stood before it failed. A connection error with ``reached=False`` is not
        retried (see the module doc)."""
        if attempt + 1 >= self.max_attempts:
            return False
        if isinstance(error, APIConnectionError):
            return reached
        return isinstance(error, APIError) and error.status in self.retry_statuses

    def retry_item(self, result: ScoreResult) -> bool:
        """Whether a batch item's error is the service's momentary state, not the item's."""
        return result.error is not None and result.error.code in self.retry_item_codes


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date. ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
