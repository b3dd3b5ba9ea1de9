"""Several samples per item at a temperature, averaged (the practice of EditScore-style judges).

A judge trained to reason before it scores is sampled ``samples`` times at ``temperature``; the
item's ``score`` and each sub-score are the means over the samples, and ``scores.sample_std`` is the
population standard deviation of the samples' ``score``. Every sample is reproducible: sample k is
sent with the router's seed + k, so the same item gets the same samples on any engine and on a
retry. All samples of an item go to one engine with the item's other calls (its images are encoded
once). An item is scored only when every sample is: one unparseable sample makes it an error item
that names the sample, rather than a mean over fewer samples than asked for.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine import ChatReply
from ..images import PreparedImage
from .base import Call, Item, Meta, Outcome, ParseFailure, Sampling, ScoringProtocol, fingerprint_of

SEP = "#"  # call names: "<inner call>#<sample>"


class Sampled(ScoringProtocol):
    """``inner`` sampled ``samples`` times at ``temperature`` / ``top_p``; outcomes averaged."""

    def __init__(
        self, inner: ScoringProtocol, samples: int, temperature: float, top_p: float = 1.0
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if samples > 1 and temperature <= 0:
            raise ValueError("several samples at temperature 0 would all be the same reply")
        self.inner, self.samples = inner, samples
        self.temperature, self.top_p = temperature, top_p
        self.name, self.description = inner.name, inner.description
        # prepare() is the inner protocol's: so is where it must run (a worker when it decodes)
        self.decodes_at_intake = inner.decodes_at_intake
        self._params = {"temperature": temperature, "top_p": top_p}
        self._hash = fingerprint_of(inner.template_hash, samples, self._params)

    @property
    def template_hash(self) -> str:
        return self._hash

    def sampling(self, base: Sampling) -> dict[str, Any]:
        return {**base.as_dict(), **self._params, "samples": self.samples}

    def specialize(self, meta: Meta | None) -> ScoringProtocol:
        inner = self.inner.specialize(meta)
        if inner is self.inner:
            return self
        return Sampled(inner, self.samples, self.temperature, self.top_p)

    def prepare(self, item: Item) -> Item:
        return self.inner.prepare(item)

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        return self.inner.prefix(source, instruction)

    def calls(self, item: Item) -> Sequence[Call]:
        inner = self.inner.calls(item)
        return [
            Call(f"{c.name}{SEP}{k}", c.content, {**c.params, **self._params}, c.seed_offset + k)
            for k in range(self.samples)
            for c in inner
        ]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        outcomes = []
        for k in range(self.samples):
            suffix = f"{SEP}{k}"
            mine = {n.removesuffix(suffix): r for n, r in replies.items() if n.endswith(suffix)}
            try:
                outcomes.append(self.inner.combine(item, mine))
            except ParseFailure as exc:
                raw = "\n".join(f"{name}: {r.content}" for name, r in replies.items())
                raise ParseFailure(f"sample {k}: {exc.message}", raw, exc.code) from None
        return average(outcomes)


def average(outcomes: Sequence[Outcome]) -> Outcome:
    """The mean outcome: ``score`` and every sub-score all samples have, plus ``sample_std``."""
    scores = [o.score for o in outcomes]
    common = [k for k in outcomes[0].scores if all(k in o.scores for o in outcomes)]
    means = {k: statistics.fmean(o.scores[k] for o in outcomes) for k in common}
    means["sample_std"] = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    reasons = [f"#{k}: {o.reasoning}" for k, o in enumerate(outcomes) if o.reasoning]
    raw = "\n".join(f"#{k}: {o.raw}" for k, o in enumerate(outcomes))
    return Outcome(statistics.fmean(scores), means, "\n".join(reasons) or None, raw)
