"""Group scoring: K candidate edits of one source under one instruction, on one engine.

A GRPO step asks for a reward for each of K candidates that share the source image and the
instruction. Their prompts share a long prefix (rubric, source image, instruction), so the whole
group is leased onto one engine (the source digest is the placement key, so the ``affinity`` policy
keeps a source on one engine across requests), a one-token priming request for that prefix runs
first, and only then the candidates' calls, concurrently: vLLM computes the prefix's KV blocks and
the source image's encoder output once and reuses them for every candidate.

Failover works per candidate: a candidate whose call fails for a retryable reason is retried with
the other unfinished candidates on another engine (primed again), up to ``max_attempts``; finished
candidates are kept. Results carry ``rank`` (1 = best; ties share the better rank) and ``z_score``
(``(score - mean) / population std`` over the group's successful candidates; 0 when they are all
equal). The response's token counts sum the candidates' calls of this request; the priming call is
not included.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .bodies import EngineBody, item_bodies, prefix_body
from .cache import ScoreCache
from .engine import ChatReply, chat
from .errors import BackendError, DeadlineExceeded, ServiceError
from .fairqueue import flow
from .images import PreparedImage
from .protocols import Item, Rejected, ScoringProtocol
from .schemas import ScoreResult
from .scoring import Attempt, Scorer, error_result_of, gather_or_cancel

log = logging.getLogger("editjudge.group")

Bodies = dict[int, dict[str, EngineBody]]  # candidate index -> call name -> request body


@dataclass
class GroupOutcome:
    """Per-candidate results in request order, plus the group's engine and token counts."""

    results: list[ScoreResult]
    backend: str | None = None
    prompt_tokens: int | None = None
    cached_prompt_tokens: int | None = None

    def count(self, replies: Mapping[str, ChatReply]) -> None:
        for reply in replies.values():
            if reply.prompt_tokens is not None:
                self.prompt_tokens = (self.prompt_tokens or 0) + reply.prompt_tokens
            if reply.cached_tokens is not None:
                self.cached_prompt_tokens = (self.cached_prompt_tokens or 0) + reply.cached_tokens


@dataclass(frozen=True)
class _Round:
    backend: str
    replies: dict[int, dict[str, ChatReply]]
    failures: dict[int, BackendError | DeadlineExceeded]


class GroupScorer:
    """Scores a group through a :class:`~editjudge.server.scoring.Scorer`'s pool, client, cache."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    async def score(
        self,
        source: PreparedImage,
        instruction: str,
        entries: list[Item | Rejected],
        protocol: ScoringProtocol,
        deadline: float,
    ) -> GroupOutcome:
        """Score every entry (rejected ones become error items); never raises for engine trouble."""
        t0 = time.perf_counter()
        fingerprint = self.scorer.fingerprint(protocol)
        cache = self.scorer.cache if fingerprint.model is not None else None
        found = {
            i: error_result_of(e.id, e.error)
            for i, e in enumerate(entries)
            if isinstance(e, Rejected)
        }
        pending = {i: e for i, e in enumerate(entries) if not isinstance(e, Rejected)}
        keys = (
            {i: ScoreCache.key(fingerprint, e) for i, e in pending.items()}
            if cache is not None
            else {}
        )
        if cache is not None and keys:
            hits = await cache.get_many([(keys[i], pending[i].id) for i in keys])
            for i, hit in zip(list(keys), hits, strict=True):
                if hit is not None:
                    del pending[i]
                    found[i] = hit
        outcome = GroupOutcome([])
        with flow():
            computed = await self._compute(
                pending, protocol, source, instruction, deadline, outcome
            )
        elapsed = round((time.perf_counter() - t0) * 1000, 3)
        for result in computed.values():
            result.latency_ms, result.fingerprint = elapsed, fingerprint
            self.scorer.metrics.items.labels(protocol.name, result.status).inc()
        if cache is not None:
            await cache.put_many([(keys[i], result) for i, result in computed.items()])
        found.update(computed)
        outcome.results = [found[i] for i in range(len(entries))]
        for result, entry in zip(outcome.results, entries, strict=True):
            result.meta = entry.meta
        rank_group(outcome.results)
        return outcome

    async def _compute(
        self,
        pending: dict[int, Item],
        protocol: ScoringProtocol,
        source: PreparedImage,
        instruction: str,
        deadline: float,
        outcome: GroupOutcome,
    ) -> dict[int, ScoreResult]:
        """Run the pending candidates, failing over unfinished ones; every one gets a result."""
        if not pending:
            return {}
        out: dict[int, ScoreResult] = {}
        try:
            model = await self.scorer.require_model()
        except ServiceError as exc:
            return {i: error_result_of(it.id, exc) for i, it in pending.items()}
        prime, bodies = self._bodies(model, pending, protocol, source, instruction)
        attempts = self.scorer.config.max_attempts
        tried: set[str] = set()
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            if time.monotonic() >= deadline:
                expired = DeadlineExceeded(
                    "the request deadline passed before the group was scored"
                )
                return out | _errors(pending, bodies, expired)
            try:
                done = await self._round(prime, bodies, source.digest, frozenset(tried), deadline)
            except BackendError as exc:  # the priming call failed: this engine is unfit now
                tried.add(exc.backend)
                if exc.retryable and not last:
                    self.scorer.metrics.retries.labels(exc.code).inc()
                    continue
                return out | _errors(pending, bodies, exc)
            except ServiceError as exc:
                return out | _errors(pending, bodies, exc)
            tried.add(done.backend)
            outcome.backend = done.backend
            retry = self._absorb(done, pending, protocol, last, out, outcome)
            bodies = {i: bodies[i] for i in retry}
            if not bodies:
                break
        return out

    def _bodies(
        self,
        model: str,
        pending: Mapping[int, Item],
        protocol: ScoringProtocol,
        source: PreparedImage,
        instruction: str,
    ) -> tuple[EngineBody | None, Bodies]:
        """The priming request (None if the protocol has no shared prefix) and every call."""
        sampling = self.scorer.config.sampling
        prime = prefix_body(protocol.prefix, source, instruction, model, sampling)
        bodies = {i: item_bodies(protocol.calls, it, model, sampling) for i, it in pending.items()}
        return prime, bodies

    def _absorb(
        self,
        done: _Round,
        pending: Mapping[int, Item],
        protocol: ScoringProtocol,
        last: bool,
        out: dict[int, ScoreResult],
        outcome: GroupOutcome,
    ) -> set[int]:
        """Turn a round's replies and failures into results; return the candidates to retry."""
        for i, replies in done.replies.items():
            outcome.count(replies)
            out[i] = self.scorer.result_of(pending[i], protocol, Attempt(replies, done.backend))
        retry = {
            i
            for i, exc in done.failures.items()
            if isinstance(exc, BackendError) and exc.retryable and not last
        }
        for i, exc in done.failures.items():
            if i in retry:
                self.scorer.metrics.retries.labels(exc.code).inc()
            else:
                out[i] = error_result_of(pending[i].id, exc)
        return retry

    async def _round(
        self,
        prime: EngineBody | None,
        bodies: Bodies,
        key: str,
        avoid: frozenset[str],
        deadline: float,
    ) -> _Round:
        """Lease one engine for the whole group: the priming call, then every candidate."""
        scorer = self.scorer
        weight = sum(len(calls) for calls in bodies.values()) + (prime is not None)
        async with scorer.pool.lease(weight=weight, key=key, avoid=avoid, deadline=deadline) as b:
            left = deadline - time.monotonic()
            t = time.perf_counter()
            if prime is not None:
                try:
                    await chat(scorer.client, b.url, prime, scorer.call_timeout(deadline))
                except BackendError as exc:
                    if exc.retryable:
                        raise scorer.charge(b, exc, left) from None
                    # e.g. a 400 for this prompt shape: priming only saves time, so go on.
                    log.warning("priming request refused by %s: %s", b.url, exc.message)
            runs = [self._candidate(b.url, calls, deadline) for calls in bodies.values()]
            outcomes = await asyncio.gather(*runs, return_exceptions=True)
            replies: dict[int, dict[str, ChatReply]] = {}
            failures: dict[int, BackendError | DeadlineExceeded] = {}
            for i, result in zip(bodies, outcomes, strict=True):
                if isinstance(result, BackendError):
                    failures[i] = result
                elif isinstance(result, BaseException):
                    raise result
                else:
                    replies[i] = result
            if failures:
                first = next(iter(failures.values()))
                assert isinstance(first, BackendError)
                if isinstance(scorer.charge(b, first, left), DeadlineExceeded):
                    expired = DeadlineExceeded(f"request deadline passed while waiting on {b.url}")
                    failures = dict.fromkeys(failures, expired)
            else:
                scorer.record_call_success(b, time.perf_counter() - t)
            return _Round(b.url, replies, failures)

    async def _candidate(
        self, url: str, calls: dict[str, EngineBody], deadline: float
    ) -> dict[str, ChatReply]:
        timeout = self.scorer.call_timeout(deadline)
        replies = await gather_or_cancel(
            [chat(self.scorer.client, url, body, timeout) for body in calls.values()]
        )
        return dict(zip(calls, replies, strict=True))


def _errors(
    pending: Mapping[int, Item], bodies: Bodies, exc: BackendError | ServiceError
) -> dict[int, ScoreResult]:
    return {i: error_result_of(pending[i].id, exc) for i in bodies}


def rank_group(results: list[ScoreResult]) -> None:
    """Set ``rank`` and ``z_score`` on the successful results, in place."""
    ok = [r for r in results if r.status == "ok" and r.score is not None]
    scores = [float(r.score) for r in ok if r.score is not None]
    if not scores:
        return
    mean = statistics.fmean(scores)
    std = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    for r, s in zip(ok, scores, strict=True):
        r.rank = 1 + sum(other > s for other in scores)
        r.z_score = round((s - mean) / std, 4) if std > 0 else 0.0
