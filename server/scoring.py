"""Fan-out: score items on the pool's backends, with failover, and turn outcomes into results.

Every item is one unit of placement: all of its protocol calls go to the same engine, so the
engine's encoder and prefix caches see each of its images once. A call that fails for a retryable
reason (connection refused, timeout, 5xx) fails the whole item on that engine, and the item is sent
again to another backend, up to ``max_attempts`` times within the request deadline. Calls are
deterministic (temperature 0, fixed seed), so a retry cannot change a score; an item is reported
once, whatever happened to its attempts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .bodies import item_bodies
from .engine import Body, ChatReply, EngineClient, chat
from .errors import (
    BackendError,
    BackendTimeout,
    DeadlineExceeded,
    EditJudgeError,
    NoHealthyBackend,
    ServiceError,
)
from .fairqueue import flow
from .metrics import Metrics
from .pool import Backend, BackendPool
from .protocols import Item, ParseFailure, Rejected, Sampling, ScoringProtocol
from .protocols.parsing import complete_replies
from .schemas import ErrorInfo, Fingerprint, ScoreResult

if TYPE_CHECKING:
    from .cache import ScoreCache

log = logging.getLogger("editjudge.scoring")
T = TypeVar("T")


@dataclass
class EngineInfo:
    """Facts about the served model, discovered from the backends."""

    model: str | None = None
    vllm_version: str | None = None


@dataclass(frozen=True)
class ScoringConfig:
    sampling: Sampling = field(default_factory=Sampling)
    request_timeout_s: float = 120.0
    max_attempts: int = 3
    image_policy: str = "passthrough"


@dataclass(frozen=True)
class Attempt:
    """What a successful placement produced."""

    replies: dict[str, ChatReply]
    backend: str


class Scorer:
    """Scores items on a :class:`BackendPool` through an :class:`EngineClient`."""

    def __init__(
        self,
        pool: BackendPool,
        client: EngineClient,
        config: ScoringConfig,
        metrics: Metrics,
        info: EngineInfo,
        cache: ScoreCache | None = None,
    ) -> None:
        self.pool, self.client, self.config = pool, client, config
        self.metrics, self.info = metrics, info
        self.cache = cache
        self._fingerprints: dict[tuple[str, str, str | None, str | None], Fingerprint] = {}
        self._discovering = asyncio.Lock()

    def fingerprint(self, protocol: ScoringProtocol) -> Fingerprint:
        """What determines a score; built once per protocol and discovered engine facts."""
        key = (protocol.name, protocol.template_hash, self.info.model, self.info.vllm_version)
        found = self._fingerprints.get(key)
        if found is None:
            found = self._fingerprints[key] = Fingerprint(
                model=self.info.model,
                vllm_version=self.info.vllm_version,
                protocol=protocol.name,
                template_hash=protocol.template_hash,
                sampling=protocol.sampling(self.config.sampling),
                image_policy=self.config.image_policy,
            )
        return found

    async def score_many(
        self,
        items: Sequence[Item | Rejected],
        protocols: Sequence[ScoringProtocol],
        deadline: float,
    ) -> list[ScoreResult]:
        """Score ``items`` concurrently; an input error stays an error item in its place."""

        async def one(entry: Item | Rejected, protocol: ScoringProtocol) -> ScoreResult:
            if isinstance(entry, Rejected):
                result = error_result_of(entry.id, entry.error)
                result.meta = entry.meta
                return result
            return await self.score(entry, protocol, deadline)

        pairs = list(zip(items, protocols, strict=True))
        with flow():  # this request's items share one turn in the router's fair queue
            if len(pairs) == 1:  # the common case: no task of its own, no gather
                return [await one(*pairs[0])]
            return list(await asyncio.gather(*(one(e, p) for e, p in pairs)))

    async def score(self, item: Item, protocol: ScoringProtocol, deadline: float) -> ScoreResult:
        """Score one item; never raises for backend or judge trouble (those become error items)."""
        if self.cache is not None and self.info.model is not None:
            key = self.cache.key(self.fingerprint(protocol), item)
            compute = functools.partial(self._score, item, protocol, deadline)
            result = await self.cache.get_or_compute(key, item.id, compute)
        else:
            result = await self._score(item, protocol, deadline)
        result.meta = item.meta  # the caller's, also on a result shared from the cache
        return result

    async def _score(self, item: Item, protocol: ScoringProtocol, deadline: float) -> ScoreResult:
        t0 = time.perf_counter()
        try:
            attempt = await self._place(item, protocol, deadline)
        except (BackendError, ServiceError) as exc:
            result = error_result_of(item.id, exc)
        else:
            result = self.result_of(item, protocol, attempt)
        result.latency_ms = round((time.perf_counter() - t0) * 1000, 3)
        result.fingerprint = self.fingerprint(protocol)
        self.metrics.items.labels(protocol.name, result.status).inc()
        return result

    def result_of(self, item: Item, protocol: ScoringProtocol, attempt: Attempt) -> ScoreResult:
        """The result the protocol makes of an attempt's replies (an error item if unparseable)."""
        cached = _cached_tokens(attempt.replies.values())
        try:
            outcome = protocol.combine(item, complete_replies(attempt.replies))
        except ParseFailure as failure:
            self.metrics.scores_failed.inc()
            result = error_result(item.id, failure.code, failure.message, raw=failure.raw)
            result.backend = attempt.backend
            return result
        self.metrics.scores_parsed.inc()
        return ScoreResult(
            id=item.id,
            status="ok",
            score=round(outcome.score, 4),
            scores=outcome.scores,
            reasoning=outcome.reasoning,
            raw=outcome.raw,
            backend=attempt.backend,
            cached_prompt_tokens=cached,
        )

    async def _place(self, item: Item, protocol: ScoringProtocol, deadline: float) -> Attempt:
        """Run the item's calls on one backend, failing over to others on retryable errors."""
        model = await self.require_model()
        bodies = item_bodies(protocol.calls, item, model, self.config.sampling)
        # Only affinity routing reads the key; a digest may cost a base64 decode and a hash.
        affinity = self.pool.config.policy == "affinity"
        key = (item.source or item.image).digest if affinity else None
        tried: set[str] = set()
        for attempt in range(1, self.config.max_attempts + 1):
            if time.monotonic() >= deadline:
                raise DeadlineExceeded("the request deadline passed before the item was scored")
            try:
                return await self.run_on_backend(bodies, key, frozenset(tried), deadline)
            except BackendError as exc:
                tried.add(exc.backend)
                if not exc.retryable or attempt == self.config.max_attempts:
                    raise
                self.metrics.retries.labels(exc.code).inc()
                log.info("item %s: %s on %s; retrying elsewhere", item.id, exc.code, exc.backend)
        raise AssertionError("unreachable")

    async def run_on_backend(
        self,
        bodies: Mapping[str, Body],
        key: str | None,
        avoid: frozenset[str],
        deadline: float,
    ) -> Attempt:
        """Lease one backend and run every body on it concurrently."""
        lease = self.pool.lease(weight=len(bodies), key=key, avoid=avoid, deadline=deadline)
        async with lease as b:
            left = deadline - time.monotonic()
            timeout = self.call_timeout(deadline)
            t = time.perf_counter()
            try:
                replies = await gather_or_cancel(
                    [chat(self.client, b.url, body, timeout) for body in bodies.values()]
                )
            except BackendError as exc:
                raise self.charge(b, exc, left) from None
            self.record_call_success(b, time.perf_counter() - t)
            return Attempt(dict(zip(bodies, replies, strict=True)), b.url)

    def call_timeout(self, deadline: float) -> float:
        """One call's timeout: the per-call limit, or what is left of the request's deadline."""
        return max(0.001, min(self.config.request_timeout_s, deadline - time.monotonic()))

    def charge(
        self, backend: Backend, exc: BackendError, left_s: float
    ) -> BackendError | DeadlineExceeded:
        """Count a failed call against ``backend``, unless the caller's deadline caused it.

        ``left_s`` is what remained of the deadline when the call started: a timeout shorter
        than the per-call limit is the request's budget running out, not the engine failing.
        """
        if isinstance(exc, BackendTimeout) and left_s < self.config.request_timeout_s:
            return DeadlineExceeded(f"request deadline passed while waiting on {backend.url}")
        self.pool.record_failure(backend, exc)
        return exc

    def record_call_success(self, backend: Backend, elapsed_s: float) -> None:
        self.pool.record_success(backend, elapsed_s)
        self.metrics.backend_latency.labels(backend.url).observe(elapsed_s)

    async def require_model(self) -> str:
        """The served model name, discovered from a healthy backend on first need."""
        if self.info.model is None:
            # One lookup for a burst of items arriving before the model is known, not one each.
            async with self._discovering:
                if self.info.model is None:
                    await discover(self.pool, self.client, self.info)
        if self.info.model is None:
            raise NoHealthyBackend("no backend has reported its model yet", retry_after_s=2.0)
        return self.info.model


async def discover(pool: BackendPool, client: EngineClient, info: EngineInfo) -> None:
    """Fill ``info`` from the first healthy backend that answers ``/v1/models``."""
    for backend in pool.backends:
        if not backend.healthy:
            continue
        try:
            if info.model is None:
                models = await client.get_json(f"{backend.url}/v1/models", 10.0)
                info.model = models["data"][0]["id"]
                log.info("serving model %s (from %s)", info.model, backend.url)
            if info.vllm_version is None:
                version = await client.get_json(f"{backend.url}/version", 10.0)
                info.vllm_version = str(version.get("version"))
            return
        except (BackendError, KeyError, IndexError, TypeError, AttributeError) as exc:
            log.warning("could not read model info from %s: %s", backend.url, exc)


async def gather_or_cancel(aws: Sequence[Awaitable[T]]) -> list[T]:
    """Like ``asyncio.gather``, but the first failure cancels the siblings."""
    if len(aws) == 1:
        return [await aws[0]]
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _cached_tokens(replies: Any) -> int | None:
    counts = [r.cached_tokens for r in replies if r.cached_tokens is not None]
    return sum(counts) if counts else None


def error_result_of(item_id: str | None, exc: EditJudgeError) -> ScoreResult:
    """The error item for ``exc`` (its code and message)."""
    return error_result(item_id, exc.code, exc.message)


def error_result(
    item_id: str | None, code: str, message: str, raw: str | None = None
) -> ScoreResult:
    return ScoreResult(
        id=item_id, status="error", error=ErrorInfo(code=code, message=message), raw=raw
    )
