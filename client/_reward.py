"""``Reward`` and ``AsyncReward``: the judge as a reward function for RL training loops.

One call takes a batch of in-memory images (Pillow, numpy HWC uint8, torch CHW floats in
[0, 1]), their instructions and source images, and returns one float per image, in order. The
batch is cut into units (a request of up to ``batch_size`` items, or one ``/score/group`` request
per group when ``group_ids`` are given); each unit's images are encoded in a worker thread and the
unit is sent as soon as it is ready, with as many units in flight as the router suggests, so
encoding overlaps the network and the judging.

A failed item is ``nan`` (or, with ``on_error="raise"``, a :class:`RewardError`), never a made-up
number. A request that still fails after the client's retries fails its items the same way, so
one bad minute does not end a training run; a wrong URL or API key raises at once.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread

from ._async_client import DEFAULT_URL, AsyncClient
from ._client import Client
from ._exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    EditJudgeError,
    InputError,
    NotFoundError,
)
from ._models import Item, ScoreResult
from ._reward_batch import Batch, Unit, align, plan

OnError = Literal["nan", "raise"]


class RewardError(EditJudgeError):
    """Some items of a reward call have no score (``on_error="raise"``).

    ``results`` holds every result of the call in input order; ``failed`` the failed indices.
    """

    def __init__(self, results: list[ScoreResult]) -> None:
        self.results = results
        self.failed = [i for i, r in enumerate(results) if not r.ok or r.score is None]
        first = results[self.failed[0]]
        why = f"{first.error.code}: {first.error.message}" if first.error else "no score"
        super().__init__(
            f"{len(self.failed)} of {len(results)} items have no score "
            f"(item {self.failed[0]}: {why})"
        )


@dataclass
class _Run:
    """One call's results as they arrive, and the first error that ends it."""

    results: list[ScoreResult | None]
    limiter: anyio.CapacityLimiter
    failure: Exception | None = None

    def fail(self, exc: Exception, scope: anyio.CancelScope) -> None:
        if self.failure is None:
            self.failure = exc
        scope.cancel()


class AsyncReward:
    """The judge as an async reward function: ``await reward(images, instructions)``.

    Args:
        url: the router, e.g. ``"http://gpu-box:8000"``.
        protocol: the scoring protocol (default: the router's).
        api_key: defaults to ``$EDITJUDGE_API_KEY``.
        on_error: ``"nan"`` (a failed item's reward is ``nan``) or ``"raise"``
            (:class:`RewardError` if any item failed; request errors raise as they are).
        lossless: send PNG instead of JPEG (quality 95): exact pixels, at a much higher
            encode cost per image.
        client: an :class:`AsyncClient` to use (and not close); else one is made from ``url``,
            ``api_key`` and ``client_options`` (``timeout``, ``retry``, ``concurrency``,
            ``batch_size``, ``max_pixels``, ``transport``, ...).

    ``last_results`` keeps the full results of the last call (sub-scores, reasoning, errors,
    fingerprint, and ``rank``/``z_score`` for groups) for logging.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        protocol: str | None = None,
        api_key: str | None = None,
        on_error: OnError = "nan",
        *,
        lossless: bool = False,
        client: AsyncClient | None = None,
        **client_options: Any,
    ) -> None:
        if on_error not in ("nan", "raise"):
            raise ValueError(f"on_error must be 'nan' or 'raise', not {on_error!r}")
        self.protocol, self.on_error, self.lossless = protocol, on_error, lossless
        self._owns_client = client is None
        self.client = client or AsyncClient(url, api_key=api_key, **client_options)
        self.last_results: list[ScoreResult] = []

    async def __aenter__(self) -> AsyncReward:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    @property
    def last_z_scores(self) -> list[float]:
        """``z_score`` of each item of the last call (``nan`` where there is none: a failed
        item, or a call without ``group_ids``): GRPO's group-normalised advantages."""
        return [_float(r.z_score) for r in self.last_results]

    async def __call__(
        self,
        images: Iterable[Any],
        instructions: str | Iterable[str],
        source_images: Iterable[Any] | None = None,
        *,
        group_ids: Iterable[Hashable] | None = None,
    ) -> list[float]:
        """One reward per image, in order: ``score`` of its result, ``nan`` if it failed.

        ``instructions`` is one string for all images or one per image; ``source_images`` one
        per image (or None). With ``group_ids`` (one per image), images that share an id are
        scored together through ``/score/group`` (one engine, shared prompt prefix, ``rank`` and
        ``z_score`` in :attr:`last_results`); a group's images must share their instruction and
        source image (the group's first source is sent). Raises ``TypeError``/``ValueError`` for
        inputs that cannot work, before anything is sent.
        """
        self.last_results = []
        images = list(images)
        group_ids = None if group_ids is None else list(group_ids)
        texts, sources = align(images, instructions, source_images, group_ids)
        if not images:
            return []
        info = await self.client.info()
        batch = Batch(images, texts, sources, self.client._images(info), self.lossless)
        units = plan(len(images), texts, sources, group_ids, self.client.batch_size_for(info))
        run = _Run([None] * len(images), anyio.CapacityLimiter(self.client.concurrency_for(info)))
        async with anyio.create_task_group() as tg:
            for unit in units:
                tg.start_soon(self._unit, batch, unit, run, tg.cancel_scope)
        if run.failure is not None:
            raise run.failure
        self.last_results = [r for r in run.results if r is not None]
        if self.on_error == "raise" and any(not r.ok or r.score is None for r in self.last_results):
            raise RewardError(self.last_results)
        return [_float(r.score) if r.ok else math.nan for r in self.last_results]

    async def _unit(self, batch: Batch, unit: Unit, run: _Run, scope: anyio.CancelScope) -> None:
        try:
            async with run.limiter:
                got = await self._send(batch, unit)
        except (AuthenticationError, NotFoundError) as exc:
            run.fail(exc, scope)  # the URL or key is wrong: no later call can succeed either
            return
        except (APIError, APIConnectionError, InputError) as exc:
            if self.on_error == "raise":
                run.fail(exc, scope)
                return
            got = [_failed(i, exc) for i in unit.indices]
        except Exception as exc:  # a bug: raised as itself, not inside an exception group
            run.fail(exc, scope)
            return
        for i, result in zip(unit.indices, got, strict=True):
            run.results[i] = result

    async def _send(self, batch: Batch, unit: Unit) -> list[ScoreResult]:
        ids = [str(i) for i in unit.indices]
        if unit.group:
            first = unit.indices[0]
            candidates, source = await anyio.to_thread.run_sync(
                lambda: ([batch.image(i) for i in unit.indices], batch.group_source(unit))
            )
            answer = await self.client.score_group(
                candidates, batch.instructions[first], source, ids=ids, protocol=self.protocol
            )
            return answer.results
        items = await anyio.to_thread.run_sync(
            lambda: [
                Item(batch.image(i), batch.instructions[i], batch.source(i), str(i))
                for i in unit.indices
            ]
        )
        return await self.client.score_many(items, protocol=self.protocol)


class Reward:
    """The judge as a reward function for a training loop: ``reward(images, instructions)``.

    The blocking twin of :class:`AsyncReward` (same arguments), for the usual synchronous
    trainer::

        reward = Reward("http://gpu-box:8000")
        scores = reward(images, instructions, source_images)  # list[float], nan = failed
        reward.last_results[0].reasoning

    Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        protocol: str | None = None,
        api_key: str | None = None,
        on_error: OnError = "nan",
        *,
        lossless: bool = False,
        **client_options: Any,
    ) -> None:
        self._client = Client(url, api_key=api_key, **client_options)
        try:
            self._async = AsyncReward(
                protocol=protocol,
                on_error=on_error,
                lossless=lossless,
                client=self._client._async,
            )
        except BaseException:
            self._client.close()
            raise

    def __enter__(self) -> Reward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and stop the event-loop thread (idempotent)."""
        self._client.close()

    @property
    def client(self) -> Client:
        """The blocking :class:`Client` underneath (``info()``, ``score()``, ...)."""
        return self._client

    @property
    def last_results(self) -> list[ScoreResult]:
        """Full results of the last call, in input order."""
        return self._async.last_results

    @property
    def last_z_scores(self) -> list[float]:
        """See :attr:`AsyncReward.last_z_scores`."""
        return self._async.last_z_scores

    def __call__(
        self,
        images: Iterable[Any],
        instructions: str | Iterable[str],
        source_images: Iterable[Any] | None = None,
        *,
        group_ids: Iterable[Hashable] | None = None,
    ) -> list[float]:
        """One reward per image, in order; see :meth:`AsyncReward.__call__`."""
        return self._client._call(
            lambda: self._async(images, instructions, source_images, group_ids=group_ids)
        )


def _failed(index: int, exc: EditJudgeError) -> ScoreResult:
    code = getattr(exc, "code", None)
    if code is None:
        code = "timeout" if "Timeout" in type(exc).__name__ else "connection_error"
    return ScoreResult.failed(str(index), str(code), str(exc))


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)
