"""A bench-only scoring protocol that makes exactly one engine call per item.

VIEScore makes two calls per item (SC and PQ), while a client talking straight to vLLM sends one
chat completion. To compare like with like, the overhead benchmark serves this protocol: one call
carrying both images (rubric, source, instruction, edited image, question, in VIEScore's order),
schema-constrained to a single 0-10 score, so the router sends the same body a direct client would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from editjudge.server.engine import ChatReply
from editjudge.server.protocols import Call, Item, Outcome, ScoringProtocol
from editjudge.server.protocols.base import fingerprint_of, image, text
from editjudge.server.protocols.parsing import parse_scores, score_schema
from editjudge.server.protocols.viescore import SC_RUBRIC

FIELDS = ("instruction_following",)
QUESTION = "Answer in JSON with the score."


class SingleCall(ScoringProtocol):
    """One chat completion per item: ``score`` = the judge's instruction-following score."""

    name = "single"
    description = "Bench-only: one call per item (both images), score = instruction_following."

    def __init__(self) -> None:
        schema = score_schema(FIELDS, 0, 10, 0)
        self._params = {"max_tokens": 32, "structured_outputs": {"json": schema}}
        self._hash = fingerprint_of(self.name, SC_RUBRIC, QUESTION, self._params)

    @property
    def template_hash(self) -> str:
        return self._hash

    def calls(self, item: Item) -> Sequence[Call]:
        content = [text(SC_RUBRIC)]
        if item.source is not None:
            content += [text("Original image:"), image(item.source)]
        content += [
            text(f"Editing instruction: {item.instruction}"),
            text("Edited image:"),
            image(item.image),
            text(QUESTION),
        ]
        return [Call("single", content, self._params)]

    def combine(self, item: Item, replies: Mapping[str, ChatReply]) -> Outcome:
        raw = replies["single"].content
        scores, reasoning = parse_scores(raw, FIELDS, 0, 10)
        return Outcome(scores[FIELDS[0]], scores, reasoning, raw)
