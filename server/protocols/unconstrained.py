"""A protocol's calls without their reply constraint (``EDITJUDGE_CONSTRAIN_REPLIES=false``).

Every built-in protocol asks vLLM to hold each reply to its format (``structured_outputs``), so
that every reply parses, even a random-weight model's. The constraint has a price beyond its
token masks: with async scheduling, vLLM samples a batch holding a constrained request only after
the host has accepted the previous step's tokens, so each decode step waits for that host work
instead of overlapping it (``BENCHMARKS.md``, issue 17). A trained judge writes the format
unaided; without the constraint its replies are parsed the same lenient way, and one that does
not parse is an ``unparseable_reply`` item with its raw text, never a guessed score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..engine import ChatReply
from ..images import PreparedImage
from .base import Call, Item, Meta, Outcome, Sampling, ScoringProtocol, fingerprint_of

CONSTRAINT = "structured_outputs"


class Unconstrained(ScoringProtocol):
    """``inner`` with every call's reply constraint removed; everything else is ``inner``'s."""

    def __init__(self, inner: ScoringProtocol) -> None:
        self.inner = inner
        self.name, self.description = inner.name, inner.description
        self.decodes_at_intake = inner.decodes_at_intake
        self._hash = fingerprint_of(inner.template_hash, "unconstrained")

    @property
    def template_hash(self) -> str:
        return self._hash

    def sampling(self, base: Sampling) -> dict[str, Any]:
        return self.inner.sampling(base)

    def specialize(self, meta: Meta | None) -> ScoringProtocol:
        inner = self.inner.specialize(meta)
        return self if inner is self.inner else Unconstrained(inner)

    def prepare(self, item: Item) -> Item:
        return self.inner.prepare(item)

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        call = self.inner.prefix(source, instruction)
        return None if call is None else _free(call)

    def calls(self, item: Item) -> Sequence[Call]:
        return [_free(c) for c in self.inner.calls(item)]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        return self.inner.combine(item, replies)


def _free(call: Call) -> Call:
    params = {k: v for k, v in call.params.items() if k != CONSTRAINT}
    return Call(call.name, call.content, params, call.seed_offset)
